"""Command line: ``python -m service serve | migrate | makemigrations | create-admin | seed-demo``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from functools import partial

from service.platform.settings import ConfigError, Settings


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _ensure_database_url() -> None:
    """Without DATABASE_URL every command uses the same private PostgreSQL under ./.data/."""
    if os.environ.get("DATABASE_URL"):
        return
    from service.platform.localdb import LocalDatabaseUnavailable, start_local_database

    print("DATABASE_URL is not set: using the private PostgreSQL under ./.data/postgres", file=sys.stderr)
    try:
        os.environ["DATABASE_URL"] = start_local_database()
    except LocalDatabaseUnavailable as exc:
        _fail(str(exc))


def _settings(development: bool) -> Settings:
    try:
        return Settings.from_env(development=development)
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable


def _migrate(settings: Settings) -> None:
    from service.platform.database import run_migrations

    applied = asyncio.run(run_migrations(settings))
    print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> None:
    _ensure_database_url()
    settings = _settings(development=True)
    # The workers are fresh processes that build their settings from the environment:
    # hand them the development secret the same way.
    os.environ["JWT_SECRET"] = settings.jwt_secret
    os.environ["CREDENTIAL_SIGNING_KEY"] = settings.credential_signing_key
    _migrate(settings)

    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from service.app import create_app

    loader = AppLoader(factory=partial(create_app))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=args.workers, single_process=args.workers == 1,
                motd=False, access_log=False, dev=False)
    print(f"database: {_redacted(settings.database_url)}", file=sys.stderr)
    print(f"serving on http://{args.host}:{args.port} (docs at /docs)", file=sys.stderr)
    Sanic.serve(primary=app, app_loader=loader)


def _redacted(url: str) -> str:
    """The database URL with its password hidden: fit for a terminal or a log."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def cmd_migrate(args: argparse.Namespace) -> None:
    _ensure_database_url()
    _migrate(_settings_for_tools())


def _settings_for_tools() -> Settings:
    """Commands that never sign tokens do not need JWT_SECRET."""
    env = dict(os.environ)
    env.setdefault("JWT_SECRET", "x" * 32 + "-not-used-by-this-command")
    env.setdefault("CREDENTIAL_SIGNING_KEY", "0" * 64)  # these commands sign nothing
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        _fail(str(exc))
        raise


def cmd_create_admin(args: argparse.Namespace) -> None:
    _ensure_database_url()
    settings = _settings_for_tools()
    _migrate(settings)
    from service.admin_cli import create_admin

    password = os.environ.get("ADMIN_PASSWORD")
    try:
        asyncio.run(create_admin(settings, args.email, args.full_name, password, promote=args.promote))
    except ValueError as exc:
        _fail(str(exc), code=1)


def cmd_makemigrations(args: argparse.Namespace) -> None:
    from service.platform.database import make_migrations

    changes = asyncio.run(make_migrations(check=args.check, name=args.name))
    if not changes:
        print("No changes: the migrations match the models.")
        return
    for migration, operations in changes:
        verb = "would be written" if args.check else "written"
        print(f"models.{migration} {verb}:")
        for operation in operations:
            print(f"  - {operation}")
    if args.check:
        print("The models and the migrations disagree: run `python -m service makemigrations` and commit "
              "the migration.")
        sys.exit(1)


def cmd_seed_demo(args: argparse.Namespace) -> None:
    _ensure_database_url()
    settings = _settings_for_tools()
    _migrate(settings)
    from service.demo import seed_demo

    asyncio.run(seed_demo(settings, students=args.students, per_student=args.per_student))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description="Achievement Journal API")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service locally (development mode)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply pending migrations to DATABASE_URL")
    migrate.set_defaults(func=cmd_migrate)

    admin = commands.add_parser("create-admin", help="create an admin (or, with --promote, promote one)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--full-name", required=True)
    admin.add_argument("--promote", action="store_true",
                       help="make an existing account an admin, replace its password, revoke its sessions")
    admin.set_defaults(func=cmd_create_admin)

    makemigrations = commands.add_parser(
        "makemigrations", help="write a migration for what changed in the models (no database needed)")
    makemigrations.add_argument("--check", action="store_true",
                                help="write nothing; exit 1 when the models and the migrations disagree")
    makemigrations.add_argument("--name", help="the new migration's name (after its number)")
    makemigrations.set_defaults(func=cmd_makemigrations)

    demo = commands.add_parser("seed-demo", help="fill the database with demo data")
    demo.add_argument("--students", type=int, default=20)
    demo.add_argument("--per-student", type=int, default=25)
    demo.set_defaults(func=cmd_seed_demo)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
