"""`villagewatch run`: adapters, pipeline, outbox sender, scheduler, rule watcher, dashboard and health.

Wiring is explicit here; each long-running part is a task with its own error boundary, and Ctrl-C or
SIGTERM stops them in order, within a few seconds whatever connections are open: adapters first, so
nothing new comes in, then the messages already received are given a moment to be handled, then the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.adapters.base import Adapter
from bot.adapters.sim import SimAdapter
from bot.backup import run_lock
from bot.clock import Clock, SystemClock
from bot.config import AccountConfig, Config
from bot.dispatch import ChatDispatcher
from bot.health import health_handler
from bot.messages import IncomingMessage
from bot.metrics import ProcessCounters, metrics_app, metrics_token
from bot.services import Services, build_services
from storage.engine import make_engine, make_session_factory
from storage.repos import directory as directory_repo

log = logging.getLogger("villagewatch")

STOP_GRACE = 5.0
"""Seconds the messages received before a stop get to be handled."""
SHUTDOWN_TIMEOUT = 2.0
"""Seconds a web server waits for open requests when it stops (aiohttp's default is a minute)."""


def _groups_of(config: Config, account: AccountConfig) -> list[str]:
    every = [g for c in config.counties for t in c.townships for v in t.villages for g in v.groups]
    return account.groups or every


def make_adapter(config: Config, account: AccountConfig, services: Services, *, index: int) -> Adapter:
    """The adapter an account's config asks for; only the wechaty branch touches the Wechaty module."""
    if account.adapter == "wechaty":
        from bot.adapters.wechaty import WechatyAdapter

        assert account.wechaty is not None
        return WechatyAdapter(
            account.name,
            endpoint=account.wechaty.endpoint,
            token=account.wechaty.token(),
            tls=account.wechaty.tls,
            media_root=services.media.root,
            sent_journal=config.data_dir / "wechaty" / f"{account.name}.sent.jsonl",
        )

    async def people() -> dict[str, list[dict[str, str]]]:
        async with services.sessions() as session:
            return await directory_repo.people_by_group(session)

    return SimAdapter(
        account.name,
        groups=_groups_of(config, account),
        people=people,
        media_root=services.media.root,
        clock=services.clock,
        bind=config.sim.bind,
        port=config.sim.port + index if config.sim.port else 0,
        journal=config.data_dir / "sim" / f"{account.name}.jsonl",
        history=config.sim.history,
    )


@dataclass
class Running:
    services: Services
    adapters: dict[str, Adapter]
    dispatcher: ChatDispatcher
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    runners: list[web.AppRunner] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    first_login: tuple[str, str] | None = None
    counters: ProcessCounters = field(default_factory=ProcessCounters)
    engines: list[AsyncEngine] = field(default_factory=list)
    """Engines besides the services' own (the dashboard's pool)."""
    held: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    """The SQLite run lock (restore refuses a database in use), released last."""

    async def stop(self) -> None:
        for adapter in self.adapters.values():
            with contextlib.suppress(Exception):
                await adapter.stop()
        await self.dispatcher.close(grace=STOP_GRACE)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for runner in self.runners:
            await runner.cleanup()
        for engine in self.engines:
            await engine.dispose()
        await self.services.close()
        self.held.close()


def _pipeline(
    services: Services, adapters: dict[str, Adapter], counters: ProcessCounters
) -> Callable[[IncomingMessage], Awaitable[object]]:
    async def handle(message: IncomingMessage) -> object:
        counters.received[message.account] += 1
        adapter = adapters.get(message.account)
        return await services.ingest.handle(message, download=adapter.download if adapter else None)

    return handle


async def _dashboard(
    config: Config, services: Services, adapters: dict[str, Adapter], running: Running
) -> web.Application:
    """The dashboard app, on a connection pool of its own (disposed by ``running``): pages never take the
    connections the bot's messages wait for, and its pool pings each connection it takes (the bot's does
    not), so a page is not answered 500 on a connection the server dropped."""
    from bot.staff import StaffBroadcaster, StaffPipeline, StaffRuleBench, StaffTicketActions
    from bot.staff_roster import StaffRoster
    from bot.teaching import StaffModelTeacher
    from dashboards.app import create_app
    from dashboards.security import new_secret
    from dashboards.settings import DashboardSettings

    secret = config.dashboard.secret()
    if secret is None:
        log.warning(
            "%s is not set: dashboard sessions end when this process stops, and several dashboards "
            "would not share them",
            config.dashboard.secret_env,
        )
    settings = DashboardSettings(
        secret=secret or new_secret(),
        session_minutes=config.dashboard.session_minutes,
        secure_cookies=config.dashboard.public_url.startswith("https://"),
        media_dir=services.media.root,
        category_names={**services.templates.category_names, **config.category_names},
    )
    sessions = services.sessions
    if services.engine.url.database not in (None, "", ":memory:"):  # an in-memory SQLite exists once
        engine = make_engine(services.engine.url.render_as_string(hide_password=False))
        running.engines.append(engine)
        sessions = make_session_factory(engine)
    app = create_app(
        session_factory=sessions,
        settings=settings,
        ticket_actions=StaffTicketActions(services.workflow.actions),
        broadcaster=StaffBroadcaster(services),
        rule_bench=StaffRuleBench(services),
        rule_editor=services.rule_editor,
        pipeline=StaffPipeline(services),
        model_teacher=StaffModelTeacher(services),
        roster=StaffRoster(config=config, directory=services.directory, sessions=services.sessions),
        clock=services.clock.now,
    )
    app.router.add_get("/health", health_handler(services, adapters))
    return app


async def start_service(config: Config, *, clock: Clock | None = None) -> Running:
    services = await build_services(config, clock=clock or SystemClock())
    adapters: dict[str, Adapter] = {}
    for index, account in enumerate(config.accounts):
        adapters[account.name] = make_adapter(config, account, services, index=index)
    # Every adapter hands its messages to one dispatcher: in order within a chat, chats side by side.
    counters = ProcessCounters()
    running = Running(services, adapters, ChatDispatcher(_pipeline(services, adapters, counters)), counters=counters)
    try:
        if services.engine.dialect.name == "sqlite" and services.engine.url.database not in (None, "", ":memory:"):
            running.held.enter_context(run_lock(Path(str(services.engine.url.database)).resolve()))
        token = metrics_token(config.metrics) if config.metrics.enabled else ""
        for adapter in adapters.values():
            if isinstance(adapter, SimAdapter):
                # The simulator's API answers once the message is committed (its client can send again).
                await adapter.start(running.dispatcher.accept)
                running.urls[f"simulator ({adapter.account})"] = adapter.url
            else:
                await adapter.start(running.dispatcher)
        running.tasks.append(asyncio.create_task(services.outbox.run(adapters), name="outbox"))
        running.tasks.append(
            asyncio.create_task(
                services.scheduler.run_forever(poll_seconds=config.schedule.poll_seconds), name="scheduler"
            )
        )
        running.tasks.append(asyncio.create_task(services.classifiers.watch(), name="rules-watch"))
        if services.images.enabled:
            running.tasks.append(asyncio.create_task(services.images.run(), name="ocr"))
        running.tasks.append(asyncio.create_task(services.rule_editor.watch(), name="rules-sync"))
        running.tasks.append(asyncio.create_task(_stats_ticker(services), name="stats"))
        if config.dashboard.enabled:
            await _serve_dashboard(config, running)
        if config.metrics.enabled:
            runner = web.AppRunner(metrics_app(services, adapters, running.counters, token=token), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, config.metrics.bind, config.metrics.port).start()
            running.runners.append(runner)
            port = runner.addresses[0][1]
            running.urls["metrics"] = f"http://{config.metrics.bind}:{port}/metrics"
    except BaseException:
        await running.stop()
        raise
    return running


async def _serve_dashboard(config: Config, running: Running, *, shared_port: bool = False) -> None:
    from dashboards.users import ensure_first_admin

    running.first_login = await ensure_first_admin(running.services.sessions)
    app = await _dashboard(config, running.services, running.adapters, running)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    # shared_port: several dashboard processes listen on one port, the kernel spreads the connections
    await web.TCPSite(runner, config.dashboard.bind, config.dashboard.port, reuse_port=shared_port or None).start()
    running.runners.append(runner)
    port = runner.addresses[0][1]
    running.urls["dashboard"] = f"http://{config.dashboard.bind}:{port}/"
    running.urls["health"] = f"http://{config.dashboard.bind}:{port}/health"


async def start_dashboard_only(config: Config, *, clock: Clock | None = None) -> Running:
    """`villagewatch dashboard`: the dashboard (and its /health) alone, against the bot's database.

    No adapters, no outbox sender, no scheduler: what staff do here (a ticket step, a broadcast, a re-run)
    is committed to the database, with its replies as outbox rows that the bot processes send. Started
    several times with the same config, the processes share the port (SO_REUSEPORT) and, with the secret
    set, their sessions: pages then use as many cores, and never share an event loop with messages.
    """
    services = await build_services(config, clock=clock or SystemClock())
    running = Running(services, {}, ChatDispatcher(_refuse))
    try:
        await _serve_dashboard(config, running, shared_port=True)
    except BaseException:
        await running.stop()
        raise
    return running


async def _refuse(message: IncomingMessage) -> object:
    raise RuntimeError("a dashboard process handles no messages")


async def run_dashboard(config: Config) -> int:
    running = await start_dashboard_only(config)
    print("villagewatch 看板已启动 / dashboard is running:", flush=True)
    for name, url in running.urls.items():
        print(f"  {name}: {url}", flush=True)
    if running.first_login:
        user, password = running.first_login
        print(f"  首个管理员 / first admin login: {user} / {password}", flush=True)
    await _until_stopped()
    await running.stop()
    return 0


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")


async def _stats_ticker(services: Services) -> None:
    while True:
        await asyncio.sleep(services.stats.interval)
        services.stats.flush()


async def run_service(config: Config) -> int:
    running = await start_service(config)
    print("villagewatch 已启动 / is running:", flush=True)
    for name, url in running.urls.items():
        print(f"  {name}: {url}", flush=True)
    if running.first_login:
        user, password = running.first_login
        print(
            f"  首个管理员 / first admin login: {user} / {password}  (首次登录时须修改 / changed at first login)",
            flush=True,
        )
    print("按 Ctrl-C 停止 / press Ctrl-C to stop.", flush=True)
    await _until_stopped()
    await running.stop()
    return 0
