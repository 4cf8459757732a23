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

from bot.config import Config, ConfigError, LoggingConfig, load_config
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


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _setup_logging(level: str, config: Config | None = None) -> None:
    """stderr always (journald under systemd); with ``[logging] file``, also a size-rotated file."""
    logging.basicConfig(level=getattr(logging, level), format=LOG_FORMAT, stream=sys.stderr)
    log_file = config.log_file() if config is not None else None
    if log_file is not None:
        logging.getLogger().addHandler(rotating_handler(log_file, config.logging))  # type: ignore[union-attr]
    for noisy in ("jieba", "aiohttp.access", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def rotating_handler(path: Path, settings: LoggingConfig) -> logging.Handler:
    """A file handler rotated at ``max_bytes``, keeping ``backups`` old files (``.1`` the newest)."""
    from logging.handlers import RotatingFileHandler

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            path, maxBytes=settings.max_bytes, backupCount=settings.backups, encoding="utf-8", delay=True
        )
    except OSError as exc:
        raise ConfigError(f"[logging] file = {path}: cannot be written: {exc.strerror or exc}") from exc
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler


def _db_url(args: argparse.Namespace, config: Config) -> str:
    return str(args.db) if getattr(args, "db", None) else config.storage_url()


# --- commands -------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from bot.app import run_service

    config = resolve_config(args.config)
    _setup_logging(config.log_level, config)
    return asyncio.run(run_service(config))


def cmd_dashboard(args: argparse.Namespace) -> int:
    from bot.app import run_dashboard

    config = resolve_config(args.config)
    _setup_logging(config.log_level, config)
    return asyncio.run(run_dashboard(config))


def cmd_backup(args: argparse.Namespace) -> int:
    from bot.backup import backup, sqlite_path

    config = resolve_config(args.config)
    info = backup(sqlite_path(_db_url(args, config)), Path(args.file))
    print(f"已备份到 {args.file}(迁移版本 {info.revision},消息 {info.messages} 条,工单 {info.tickets} 个)。")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from bot.backup import known_revisions, restore, sqlite_path

    config = resolve_config(args.config)
    db_path = sqlite_path(_db_url(args, config))
    info, kept = restore(Path(args.file), db_path, force=args.force)
    print(f"已从 {args.file} 恢复到 {db_path}(消息 {info.messages} 条,工单 {info.tickets} 个)。")
    if kept is not None:
        print(f"原数据库已另存为 {kept}。")
    if info.revision != known_revisions()[-1]:
        print("备份的数据库版本较旧,下次启动(或 villagewatch db upgrade)时会自动升级。")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from classifiers.jsonl import default_jobs, run_classify

    rules = Path(args.rules) if args.rules else resolve_config(None).rules_dir
    infile = open(args.input, "rb") if args.input and args.input != "-" else sys.stdin.buffer  # noqa: SIM115
    outfile = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        return run_classify(rules, infile, outfile, sys.stderr, jobs=args.jobs or default_jobs())
    finally:
        if infile is not sys.stdin.buffer:
            infile.close()
        if outfile is not sys.stdout:
            outfile.close()


def cmd_train(args: argparse.Namespace) -> int:
    from classifiers.retrain import print_outcome, retrain
    from classifiers.training import TrainingDataError, data_files

    config = resolve_config(args.config)
    rules = Path(args.rules) if args.rules else config.rules_dir
    train_files = [Path(p) for p in args.train] or data_files("train")
    heldout_files = [Path(p) for p in args.heldout] or data_files("heldout")
    extra = asyncio.run(_staff_examples(_db_url(args, config))) if args.staff else []
    if args.staff:
        print(f"staff feedback: {len(extra)} examples", file=sys.stderr)
    try:
        outcome = retrain(
            rules,
            train_files,
            heldout_files,
            extra=extra,
            force=args.force,
            progress=lambda s: print(s, file=sys.stderr),
        )
    except TrainingDataError as e:
        print(f"villagewatch train: {e}; nothing was trained", file=sys.stderr)
        return 2
    print_outcome(outcome, sys.stdout)
    return 0 if outcome.installed else 1


async def _staff_examples(db_url: str) -> list[Any]:
    from bot.teaching import staff_examples
    from storage.engine import make_engine, make_session_factory
    from storage.migrate import upgrade

    engine = make_engine(db_url)
    try:
        await upgrade(engine)
        return await staff_examples(make_session_factory(engine))
    finally:
        await engine.dispose()


def cmd_eval(args: argparse.Namespace) -> int:
    from classifiers.evaluation import run_eval
    from classifiers.training import data_files

    rules = Path(args.rules) if args.rules else resolve_config(None).rules_dir
    datasets = [Path(p) for p in args.datasets] or data_files("train") + data_files("heldout")
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


def cmd_db_reindex_search(args: argparse.Namespace) -> int:
    """Index every stored message for search again (after a restore from an old backup, or a change of the
    terms); the migration that made the index filled it once. Batches of its own transaction each."""
    from storage.engine import make_engine, make_session_factory
    from storage.migrate import upgrade
    from storage.repos.search import reindex

    config = resolve_config(args.config)

    async def _go() -> int:
        engine = make_engine(_db_url(args, config))
        try:
            await upgrade(engine)
            sessions = make_session_factory(engine)
            last, done = 0, 0
            while True:
                async with sessions() as session, session.begin():
                    upto = await reindex(session, after_id=last, limit=args.batch)
                if not upto:
                    return done
                done += 1
                last = upto
                print(f"\r已建索引至第 {last} 条消息", end="", file=sys.stderr, flush=True)
        finally:
            await engine.dispose()

    batches = asyncio.run(_go())
    print(f"\n搜索索引已重建({batches} 批)。", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from bot.history import import_history

    config = resolve_config(args.config)
    _setup_logging("WARNING")
    stored, duplicates = asyncio.run(import_history(Path(args.file), config=config, db_url=_db_url(args, config)))
    print(f"已导入 {stored} 条消息,跳过重复 {duplicates} 条。")
    return 0


def cmd_reclassify(args: argparse.Namespace) -> int:
    from bot.history import rerun_kept_raw
    from storage.repos.messages import count_kept_raw

    config = resolve_config(args.config)
    _setup_logging("WARNING")
    db_url = _db_url(args, config)
    if args.raw:
        result = asyncio.run(rerun_kept_raw(config=config, db_url=db_url))
        print(f"重新处理原样保存的消息:{result.handled} 条已分类并交流程处理,{result.failed} 条仍然失败(见日志)。")
        if result.remaining:
            print(f"仍有 {result.remaining} 条原样保存的消息未处理。")
        return 1 if result.failed else 0
    from bot.history import reclassify

    changed, total = asyncio.run(reclassify(config=config, db_url=db_url, progress=sys.stderr))
    print(f"重新分类 {total} 条消息,其中 {changed} 条结果有变化。")
    kept = asyncio.run(_with_session(db_url, count_kept_raw))
    if kept:
        print(f"另有 {kept} 条消息处理失败后原样保存,未重新分类;请运行 villagewatch reclassify --raw 重新处理。")
    return 0


def _accounts(args: argparse.Namespace, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``work(session_factory)`` on the configured (or --db) database, migrated first."""
    from storage.engine import make_engine, make_session_factory
    from storage.migrate import upgrade

    config = resolve_config(args.config)

    async def _go() -> Any:
        engine = make_engine(_db_url(args, config))
        try:
            await upgrade(engine)
            return await work(make_session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(_go())


def cmd_user_add(args: argparse.Namespace) -> int:
    from dashboards.labels import STAFF_ROLES
    from dashboards.users import Hierarchy, add_user, random_password

    config = resolve_config(args.config)
    password = args.password or random_password()

    async def _add(factory: Any) -> None:
        await add_user(
            factory,
            username=args.username,
            password=password,
            role=args.role or "",
            county=args.county or "",
            township=args.township or "",
            village=args.village or "",
            display_name=args.name or args.username,
            hierarchy=Hierarchy.of(config.places()),
            must_change=not args.password,
            flag_style=True,
        )

    _accounts(args, _add)
    print(
        f"已创建账号 {args.username}({STAFF_ROLES.get(args.role, args.role)})"
        + ("" if args.password else f",初始密码:{password}(首次登录后须修改)")
    )
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from dashboards.labels import STAFF_ROLES
    from storage.repos import users as users_repo

    async def _list(factory: Any) -> list[Any]:
        async with factory() as session:
            return list(await users_repo.list_users(session))

    for user in _accounts(args, _list):
        scope = " ".join(p for p in (user.county, user.township, user.village) if p) or "全部"
        state = "可用" if user.active else "已停用"
        print(f"{user.username}\t{user.display_name}\t{STAFF_ROLES.get(user.role, user.role)}\t{scope}\t{state}")
    return 0


def cmd_user_password(args: argparse.Namespace) -> int:
    from dashboards.users import reset_password, set_password

    async def _reset(factory: Any) -> str:
        if args.password:
            await set_password(factory, username=args.username, password=args.password)
            return ""
        return await reset_password(factory, username=args.username)

    generated = _accounts(args, _reset)
    print(f"账号 {args.username} 的密码已重设" + (f",新密码:{generated}(登录后须修改)" if generated else ""))
    return 0


def cmd_user_active(args: argparse.Namespace) -> int:
    from dashboards.users import set_active

    active = args.user_command == "enable"

    async def _set(factory: Any) -> None:
        await set_active(factory, username=args.username, active=active)

    _accounts(args, _set)
    print(f"账号 {args.username} 已{'启用' if active else '停用'}")
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

    p = with_config(
        sub.add_parser("dashboard", help="the dashboard alone (several may share its port), beside bot processes")
    )
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("classify", help="JSON lines in, classification JSON lines out")
    p.add_argument("--rules", help="rules folder (default: the config's rules_dir)")
    p.add_argument("input", nargs="?", help="input file (default stdin)")
    p.add_argument("output", nargs="?", help="output file (default stdout)")
    p.add_argument("--jobs", type=int, default=0, help="processes sharing a long input (default: one per core)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("eval", help="precision/recall of the rules on labelled sets")
    p.add_argument("--rules")
    p.add_argument("datasets", nargs="*")
    p.set_defaults(func=cmd_eval)

    p = with_config(
        sub.add_parser("train", help="train the classifier's model; install it unless it is worse"), db=True
    )
    p.add_argument("--staff", action="store_true", help="also learn from staff corrections in the database")
    p.add_argument("--rules", help="rules folder (default: the config's rules_dir)")
    p.add_argument("--train", action="append", default=[], help="training file (default: classifiers/data/train)")
    p.add_argument("--heldout", action="append", default=[], help="set-aside file (default: classifiers/data/heldout)")
    p.add_argument("--force", action="store_true", help="install even if worse on the set-aside data")
    p.set_defaults(func=cmd_train)

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
    p.add_argument(
        "--raw",
        action="store_true",
        help="instead, run the messages kept raw after a failure through the whole pipeline "
        "(classification, flags, tickets and the bot's replies)",
    )
    p.set_defaults(func=cmd_reclassify)

    p = with_config(sub.add_parser("backup", help="copy the SQLite database to FILE (safe while running)"), db=True)
    p.add_argument("file")
    p.set_defaults(func=cmd_backup)

    p = with_config(sub.add_parser("restore", help="put a backup FILE in place of the SQLite database"), db=True)
    p.add_argument("file")
    p.add_argument("--force", action="store_true", help="restore even while a villagewatch run uses the database")
    p.set_defaults(func=cmd_restore)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    p = with_config(db.add_parser("upgrade", help="apply migrations"), db=True)
    p.set_defaults(func=cmd_db_upgrade)
    p = with_config(db.add_parser("reindex-search", help="index every stored message for search again"), db=True)
    p.add_argument("--batch", type=int, default=5000, help="messages per transaction (default 5000)")
    p.set_defaults(func=cmd_db_reindex_search)

    user = sub.add_parser("user", help="dashboard accounts").add_subparsers(dest="user_command", required=True)
    p = with_config(user.add_parser("add", help="add a staff account"), db=True)
    p.add_argument("username")
    p.add_argument("--role", help="admin, county_staff, township_staff or cadre")
    p.add_argument("--password", help="default: a random one, printed")
    p.add_argument("--name", help="display name")
    p.add_argument("--county")
    p.add_argument("--township")
    p.add_argument("--village")
    p.set_defaults(func=cmd_user_add)
    p = with_config(user.add_parser("list", help="list the staff accounts"), db=True)
    p.set_defaults(func=cmd_user_list)
    p = with_config(user.add_parser("password", help="reset an account's password"), db=True)
    p.add_argument("username")
    p.add_argument("--password", help="default: a random one, printed, to be changed at the next login")
    p.set_defaults(func=cmd_user_password)
    for name, text in (("disable", "disable an account (its sessions end)"), ("enable", "enable an account again")):
        p = with_config(user.add_parser(name, help=text), db=True)
        p.add_argument("username")
        p.set_defaults(func=cmd_user_active)
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
