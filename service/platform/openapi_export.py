"""Write the OpenAPI document that /docs/openapi.json serves to openapi/openapi.json.

    python -m service.platform.openapi_export           # regenerate the committed spec
    python -m service.platform.openapi_export --check   # exit 1 when the committed spec is stale
    python -m service.platform.openapi_export --output - # print it

The app is built with placeholder settings and never started: no database is needed.
Run it whenever a route or its documentation changes, and commit the result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sanic import Sanic

SOURCE_TREE = Path(__file__).resolve().parent.parent
# The repository's copy when run from a checkout (editable install), else ./openapi/.
ROOT = SOURCE_TREE if (SOURCE_TREE / "setup.cfg").exists() else Path.cwd()
DEFAULT_OUTPUT = ROOT / "openapi" / "openapi.json"

# Only their syntax is checked: nothing connects, nothing is signed.
PLACEHOLDER_ENV = {
    "DATABASE_URL": "postgresql://journal@localhost:5432/journal",
    "JWT_SECRET": "openapi-export-placeholder-secret-not-used-for-signing",
    "CREDENTIAL_SIGNING_KEY": "00" * 32,  # a placeholder: the export signs nothing
    "LOG_LEVEL": "WARNING",
}


def build_document_text() -> str:
    from service.app import create_app
    from service.platform.docs import openapi_document, render_document
    from service.platform.settings import Settings

    Sanic.test_mode = True  # no "app name already in use" when called twice in one process
    app = create_app(Settings.from_env(dict(PLACEHOLDER_ENV)))
    app.router.finalize()  # what server start-up does; the routes are all registered by now
    return render_document(openapi_document(app))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.platform.openapi_export",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed spec differs")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="where to write ('-' for stdout)")
    args = parser.parse_args(argv)

    text = build_document_text()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    output = Path(args.output)
    current = output.read_text(encoding="utf-8") if output.exists() else None
    if args.check:
        if current == text:
            print(f"{output} is up to date.")
            return 0
        print(f"{output} is stale: run `python -m service.platform.openapi_export` and commit it.", file=sys.stderr)
        return 1
    if current != text:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"Wrote {output}.")
    else:
        print(f"{output} is up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
