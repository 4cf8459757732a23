"""Explicit wiring of the bot's services, shared by `run`, `replay`, `import` and the tests.

Everything is built here from the config and handed down by constructor; nothing is created at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.banquets import BanquetAlerts
from bot.clock import Clock
from bot.config import Config
from bot.directory import Directory, read_roster
from bot.ingest import ImageInbox, Ingest
from bot.media import MediaStore
from bot.ocr.pool import OcrPool
from bot.ocr.service import ImageReader
from bot.outbox import OutboxService
from bot.retention import Retention
from bot.rule_editor import RuleEditor
from bot.scheduler import Scheduler
from bot.speech import SpeechHook
from bot.stats import Stats
from bot.templates import Templates
from bot.tickets import TicketWorkflow
from classifiers import ClassifierHolder, load_classifier
from storage.engine import SessionFactory, make_engine, make_session_factory
from storage.migrate import upgrade


@dataclass
class Services:
    config: Config
    engine: AsyncEngine
    sessions: SessionFactory
    clock: Clock
    classifiers: ClassifierHolder
    directory: Directory
    templates: Templates
    outbox: OutboxService
    media: MediaStore
    workflow: TicketWorkflow
    ingest: Ingest
    scheduler: Scheduler
    stats: Stats
    images: ImageReader
    rule_editor: RuleEditor

    async def close(self) -> None:
        await self.ingest.drain()
        self.stats.flush()
        self.images.close()
        await self.engine.dispose()


def build_image_reader(
    config: Config, *, sessions: SessionFactory, ingest: Ingest, media: MediaStore, inbox: ImageInbox, clock: Clock
) -> ImageReader:
    """The OCR pool (its worker processes start on the first image) and the reader of this process's accounts."""
    ocr = config.ocr
    pool = OcrPool(
        workers=ocr.workers,
        timeout=ocr.timeout_seconds,
        max_pixels=ocr.max_pixels,
        max_side=ocr.max_side,
        memory_mb=ocr.memory_mb,
    )
    return ImageReader(
        pool=pool,
        sessions=sessions,
        ingest=ingest,
        media=media,
        inbox=inbox,
        accounts=[account.name for account in config.accounts],
        clock=clock,
    )


def load_rules(config: Config) -> ClassifierHolder:
    """Load the rule set once at start-up; a bad rule file stops the start with file and line."""
    return ClassifierHolder(config.rules_dir, load_classifier(config.rules_dir))


async def build_services(
    config: Config,
    *,
    clock: Clock,
    db_url: str | None = None,
    media_root: Path | None = None,
    classifiers: ClassifierHolder | None = None,
    migrate: bool = True,
    batch: bool = False,
) -> Services:
    """Everything the bot runs on. ``batch`` is for a replay or an import: nothing but the database waits
    on the event loop, so SQLite statements run on its thread (``storage.sqlite_driver.InlineConnection``)."""
    templates = Templates(config.templates)
    holder = classifiers or load_rules(config)
    roster = read_roster(config.roster, config) if config.roster else []
    engine = make_engine(db_url or config.storage_url(), inline=batch, pre_ping=False)  # retried: no pings
    if migrate:
        await upgrade(engine)
    sessions = make_session_factory(engine)
    directory = Directory(config)
    async with sessions() as session:
        await directory.sync_config(session)
        await session.flush()
        for entry in roster:
            await directory.add_member(session, entry)
        await session.commit()
    media = MediaStore(media_root or (config.data_dir / "media"))
    outbox = OutboxService(session_factory=sessions, clock=clock, config=config)
    workflow = TicketWorkflow(
        session_factory=sessions,
        outbox=outbox,
        templates=templates,
        config=config,
        clock=clock,
        classifiers=holder,
        media=media,
        directory=directory,
    )
    stats = Stats()
    inbox = ImageInbox(enabled=config.ocr.enabled)
    ingest = Ingest(
        session_factory=sessions,
        classifiers=holder,
        directory=directory,
        workflow=workflow,
        media=media,
        clock=clock,
        stats=stats,
        images=inbox,
    )
    if config.speech.url:
        ingest.after_voice = SpeechHook(config.speech, ingest)
    images = build_image_reader(config, sessions=sessions, ingest=ingest, media=media, inbox=inbox, clock=clock)
    banquet_alerts = BanquetAlerts(
        session_factory=sessions, service=workflow.service, config=config.banquets, timezone=config.schedule.timezone
    )
    retention = Retention(session_factory=sessions, config=config.retention, timezone=config.schedule.timezone)
    scheduler = Scheduler(
        session_factory=sessions,
        clock=clock,
        jobs=[*workflow.jobs(), *banquet_alerts.jobs(), *retention.jobs()],
        owner=",".join(sorted(account.name for account in config.accounts)),
    )
    rule_editor = RuleEditor(sessions=sessions, holder=holder, clock=clock)
    if migrate:
        await rule_editor.sync()  # the rule files changed from the dashboard, as the database keeps them
    return Services(
        config=config,
        engine=engine,
        sessions=sessions,
        clock=clock,
        classifiers=holder,
        directory=directory,
        templates=templates,
        outbox=outbox,
        media=media,
        workflow=workflow,
        ingest=ingest,
        scheduler=scheduler,
        stats=stats,
        images=images,
        rule_editor=rule_editor,
    )
