"""`villagewatch`: the command line. Each command is an entry point with its own error boundary."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bot.config import Config, ConfigError, load_config
from bot.errors import VillagewatchError

log = logging.getLogger("villagewatch")

DEFAULT_CONFIGS = ("config.toml", "config.example.toml")


def resolve_config(path: str | None) -> Config:
    """--config, else $VILLAGEWATCH_CONFIG, else ./config.toml, else ./config.example.toml, else defaults."""
    chosen = path or os.environ.get("VILLAGEWATCH_CONFIG")
    if chosen:
        return load_config(Path(chosen))
    for candidate in DEFAULT_CONFIGS:
        if Path(candidate).is_file():
            return load_config(Path(candidate))
    return Config()


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("jieba", "aiohttp.access", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _db_url(args: argparse.Namespace, config: Config) -> str:
    return str(args.db) if getattr(args, "db", None) else config.storage_url()


# --- commands -------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from bot.app import run_service

    config = resolve_config(args.config)
    _setup_logging(config.log_level)
    return asyncio.run(run_service(config))


def cmd_classify(args: argparse.Namespace) -> int:
    from classifiers.jsonl import run_classify

    rules = Path(args.rules) if args.rules else resolve_config(None).rules_dir
    infile = open(args.input, "rb") if args.input and args.input != "-" else sys.stdin.buffer  # noqa: SIM115
    outfile = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        return run_classify(rules, infile, outfile, sys.stderr)
    finally:
        if infile is not sys.stdin.buffer:
            infile.close()
        if outfile is not sys.stdout:
            outfile.close()


def cmd_eval(args: argparse.Namespace) -> int:
    from classifiers.evaluation import run_eval

    rules = Path(args.rules) if args.rules else resolve_config(None).rules_dir
    datasets = [Path(p) for p in args.datasets] or [Path("tests/data/dev.jsonl"), Path("tests/data/holdout.jsonl")]
    return run_eval(rules, datasets, sys.stdout)


def cmd_replay(args: argparse.Namespace) -> int:
    from bot.replay import run_replay

    config = resolve_config(args.config)
    _setup_logging("WARNING" if config.log_level == "INFO" else config.log_level)
    db_url = args.db
    if not db_url:
        folder = Path(tempfile.mkdtemp(prefix="villagewatch-replay-"))
        db_url = f"sqlite+aiosqlite:///{folder / 'replay.db'}"
        print(f"replay database: {db_url}", file=sys.stderr)
    media_root = _sqlite_folder(db_url)
    out = open(args.transcript, "w", encoding="utf-8") if args.transcript else sys.stdout  # noqa: SIM115
    try:
        asyncio.run(
            run_replay(
                Path(args.script),
                config=config,
                db_url=db_url,
                transcript=out,
                media_root=media_root / "media" if media_root else None,
            )
        )
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _sqlite_folder(db_url: str) -> Path | None:
    """The folder of a SQLite database file: a replay keeps its photos beside its database."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent
    return None


async def _with_session(db_url: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from storage.engine import make_engine, make_session_factory
    from storage.migrate import upgrade

    engine = make_engine(db_url)
    try:
        await upgrade(engine)
        async with make_session_factory(engine)() as session:
            return await work(session)
    finally:
        await engine.dispose()


def cmd_tickets(args: argparse.Namespace) -> int:
    from bot.tickets.report import tickets_as_json, tickets_as_text

    config = resolve_config(args.config)
    tickets = asyncio.run(_with_session(_db_url(args, config), tickets_as_json))
    if args.json:
        print(json.dumps(tickets, ensure_ascii=False, indent=1))
    else:
        print(tickets_as_text(tickets))
    return 0


def cmd_flags(args: argparse.Namespace) -> int:
    from bot.reports import flags_as_json, flags_as_text

    config = resolve_config(args.config)
    flags = asyncio.run(_with_session(_db_url(args, config), flags_as_json))
    print(json.dumps(flags, ensure_ascii=False, indent=1) if args.json else flags_as_text(flags))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.engine import make_engine
    from storage.migrate import current_revision, upgrade

    config = resolve_config(args.config)

    async def _go() -> str | None:
        engine = make_engine(_db_url(args, config))
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    print(f"database is at revision {asyncio.run(_go())}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from bot.history import import_history

    config = resolve_config(args.config)
    _setup_logging("WARNING")
    stored, duplicates = asyncio.run(import_history(Path(args.file), config=config, db_url=_db_url(args, config)))
    print(f"已导入 {stored} 条消息,跳过重复 {duplicates} 条。")
    return 0


def cmd_reclassify(args: argparse.Namespace) -> int:
    from bot.history import reclassify

    config = resolve_config(args.config)
    _setup_logging("WARNING")
    changed, total = asyncio.run(reclassify(config=config, db_url=_db_url(args, config), progress=sys.stderr))
    print(f"重新分类 {total} 条消息,其中 {changed} 条结果有变化。")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    import secrets

    from dashboards.users import UserError, add_user
    from storage.engine import make_engine, make_session_factory
    from storage.migrate import upgrade

    config = resolve_config(args.config)
    problem = config.scope_problem(county=args.county or "", township=args.township or "", village=args.village or "")
    if problem is not None:
        raise UserError(f"{problem};请核对 --county/--township/--village")
    password = args.password or secrets.token_urlsafe(12)

    async def _go() -> None:
        engine = make_engine(_db_url(args, config))
        try:
            await upgrade(engine)
            await add_user(
                make_session_factory(engine),
                username=args.username,
                password=password,
                role=args.role,
                county=args.county or "",
                township=args.township or "",
                village=args.village or "",
                display_name=args.name or args.username,
            )
        finally:
            await engine.dispose()

    asyncio.run(_go())
    print(f"已创建账号 {args.username}({args.role})" + ("" if args.password else f",初始密码:{password}"))
    return 0


# --- parser ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="villagewatch", description="监督服务群机器人 / village supervision-group bot"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser, db: bool = False) -> argparse.ArgumentParser:
        p.add_argument("--config", help="config file (default: config.toml or config.example.toml)")
        if db:
            p.add_argument("--db", help="database URL (default: the config's storage)")
        return p

    p = with_config(sub.add_parser("run", help="the service: adapters, bot, scheduler, dashboard"))
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("classify", help="JSON lines in, classification JSON lines out")
    p.add_argument("--rules", help="rules folder (default: the config's rules_dir)")
    p.add_argument("input", nargs="?", help="input file (default stdin)")
    p.add_argument("output", nargs="?", help="output file (default stdout)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("eval", help="precision/recall of the rules on labelled sets")
    p.add_argument("--rules")
    p.add_argument("datasets", nargs="*")
    p.set_defaults(func=cmd_eval)

    p = with_config(sub.add_parser("replay", help="run a scripted conversation on a simulated clock"), db=True)
    p.add_argument("script")
    p.add_argument("--transcript", help="write the bot's messages here (default stdout)")
    p.set_defaults(func=cmd_replay)

    p = with_config(sub.add_parser("tickets", help="every ticket with its state and history"), db=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tickets)

    p = with_config(sub.add_parser("flags", help="every flagged message"), db=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_flags)

    p = with_config(sub.add_parser("import", help="load a chat history (replay message lines)"), db=True)
    p.add_argument("file")
    p.set_defaults(func=cmd_import)

    p = with_config(sub.add_parser("reclassify", help="re-run the rules over stored messages"), db=True)
    p.set_defaults(func=cmd_reclassify)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    p = with_config(db.add_parser("upgrade", help="apply migrations"), db=True)
    p.set_defaults(func=cmd_db_upgrade)

    user = sub.add_parser("user", help="dashboard accounts").add_subparsers(dest="user_command", required=True)
    p = with_config(user.add_parser("add", help="add a staff account"), db=True)
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=["admin", "county_staff", "township_staff", "cadre"])
    p.add_argument("--password", help="default: a random one, printed")
    p.add_argument("--name", help="display name")
    p.add_argument("--county")
    p.add_argument("--township")
    p.add_argument("--village")
    p.set_defaults(func=cmd_user_add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from bot.adapters.base import AdapterError
    from classifiers import RuleLoadError
    from dashboards.users import UserError
    from storage.engine import StorageError

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (VillagewatchError, ConfigError, RuleLoadError, StorageError, AdapterError, UserError) as exc:
        print(f"villagewatch: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a port in use, a folder that cannot be written: say which, no traceback
        print(f"villagewatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
