"""The spec is the SDK (API.md "C"): clients generated from the committed openapi/openapi.json
by the mainstream generators build without hand edits.

- TypeScript: openapi-typescript's types and an SPA module written with openapi-fetch
  (tests/clients/spa.ts: login, a filtered list, a minimal create, a one-field PATCH with
  If-Match, a review, reading a ValidationProblem) type-check under ``tsc --strict``.
- Python: openapi-python-client generates a client whose models are named after the schemas.

npm comes from the machine (Node 20 here); the packages are pinned in tests/clients/package.json.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "openapi.json"
CLIENTS = ROOT / "tests" / "clients"


def run(command: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_typescript_client_type_checks_under_strict(tmp_path):
    work = tmp_path / "spa"
    work.mkdir()
    for name in ("package.json", "tsconfig.json", "spa.ts"):
        shutil.copy(CLIENTS / name, work / name)
    run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], work)
    run(["npx", "--no-install", "openapi-typescript", str(SPEC), "-o", "api.d.ts"], work)
    run(["npx", "--no-install", "tsc", "-p", "tsconfig.json"], work)
    # The check has teeth: a call the spec does not allow fails to compile.
    broken = work / "spa.ts"
    broken.write_text(broken.read_text().replace('decision: "approved"', 'decision: "maybe"'))
    failed = subprocess.run(["npx", "--no-install", "tsc", "-p", "tsconfig.json"], cwd=work, capture_output=True,
                            text=True, timeout=300)
    assert failed.returncode != 0 and "maybe" in failed.stdout


def test_python_client_models_are_named_after_the_schemas(tmp_path):
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    if generator is None:
        pytest.skip("openapi-python-client is in the dev extra")
    out = tmp_path / "client"
    run([generator, "generate", "--path", str(SPEC), "--output-path", str(out), "--meta", "none"], tmp_path)
    models = {path.stem for path in (out / "models").glob("*.py")}
    assert {"achievement", "achievement_page", "achievement_create", "achievement_patch", "validation_problem",
            "problem", "user", "token_response", "stats", "audit_event_page", "category", "status"} <= models
    run([sys.executable, "-c", "import client.models as m; m.Achievement; m.AchievementPage; m.ValidationProblem"],
        tmp_path)
