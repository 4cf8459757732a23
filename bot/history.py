"""Chat history: `villagewatch import` loads old messages, `reclassify` re-runs the rules over stored ones,
`reclassify --raw` runs the messages kept raw after a failure through the whole pipeline.

Imported history is stored, classified and flagged but opens no tickets and sends nothing: the events are
over, and the villagers must not be answered about last year.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from bot.batch import BatchRunner
from bot.clock import CHINA, SimulatedClock, SystemClock
from bot.config import Config
from bot.directory import Directory, RosterEntry, read_roster
from bot.ingest import (
    OFFICIAL_ROLES,
    ImageInbox,
    Ingest,
    NoWorkflow,
    RerunResult,
    banquet_values,
    build_flag,
    classification_row,
)
from bot.media import MediaStore
from bot.replay import MemberLine, MessageLine, _incoming, parse_script
from bot.services import build_image_reader, build_services, load_rules
from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade
from storage.models import Classification
from storage.repos import banquets as banquets_repo
from storage.repos import history as history_repo
from storage.repos import image_texts as images_repo


async def import_history(path: Path, *, config: Config, db_url: str) -> tuple[int, int]:
    """Returns (stored, duplicates). The file uses the replay format's member and message lines."""
    lines = parse_script(path)
    holder = load_rules(config)
    engine = make_engine(db_url)
    await upgrade(engine)
    sessions = make_session_factory(engine)
    directory = Directory(config)
    clock = SimulatedClock(lines.first_at or datetime.now(CHINA))
    media = MediaStore(config.data_dir / "media")
    inbox = ImageInbox(enabled=config.ocr.enabled)
    ingest = Ingest(
        session_factory=sessions,
        classifiers=holder,
        directory=directory,
        workflow=NoWorkflow(),
        media=media,
        clock=clock,
        images=inbox,
    )
    images = build_image_reader(config, sessions=sessions, ingest=ingest, media=media, inbox=inbox, clock=clock)
    runner = BatchRunner(ingest=ingest, sessions=sessions, clock=clock)
    try:
        async with sessions() as session:
            await directory.sync_config(session)
            await session.flush()
            for entry in read_roster(config.roster, config) if config.roster else []:
                await directory.add_member(session, entry)
            await session.commit()
        for line in lines:
            item = line.item
            if isinstance(item, MemberLine):
                await runner.flush()
                async with sessions() as session:
                    await directory.add_member(
                        session,
                        RosterEntry(
                            item.name,
                            item.role,
                            item.village,
                            item.township,
                            item.county,
                            item.group,
                            categories=tuple(item.categories),
                            is_head=item.head,
                        ),
                    )
                    await session.commit()
            elif isinstance(item, MessageLine):
                clock.advance_to(item.at)
                account = config.account_for_group(item.group) if item.group else config.accounts[0].name
                await runner.add(_incoming(path, line, item, account))
                if item.image is not None and images.enabled:
                    await runner.flush()
                    await images.drain()  # a re-run after a crash reads what the first left pending
        await runner.flush()
        await images.drain()
    finally:
        await runner.close()
        images.close()
        await engine.dispose()
    counts = ingest.stats.total
    return counts["handled"] + counts["failed"], counts["duplicate"]


async def reclassify(
    *, config: Config, db_url: str, progress: TextIO | None = None, batch: int = 2000
) -> tuple[int, int]:
    """Re-run the current rules over every stored message; returns (changed, total).

    Flags a message newly turns red; removes unreviewed flags the rules no longer raise; keeps every flag a
    person has reviewed, since a verdict is a record of what staff did. A banquet flag gets its details
    (date, place, scale) read again. An image message is classified by the text read from it (never
    raising a flag for a cadre's or staff member's picture), as the live bot does.
    """
    holder = load_rules(config)
    classifier = holder.current
    engine = make_engine(db_url)
    await upgrade(engine)
    sessions = make_session_factory(engine)
    changed = total = 0
    after = 0
    try:
        async with sessions() as session:
            count = await history_repo.count_messages(session)
        while True:
            async with sessions() as session:
                rows = await history_repo.messages_after(session, after_id=after, limit=batch)
                if not rows:
                    break
                ids = [m.id for m, _ in rows if m.id is not None]
                read = await images_repo.by_message(session, [m.id for m, _ in rows if m.kind == "image" and m.id])
                detailed = await banquets_repo.by_message(session, ids)
                for message, old in rows:
                    assert message.id is not None
                    after = message.id
                    total += 1
                    result = classifier.classify(message.text, role=message.role)
                    text, from_image = message.text, False
                    image = read.get(message.id)
                    read_text = image["text"] if image is not None and image["status"] == "done" else ""
                    if read_text.strip() and set(result.labels) <= {"chat"}:
                        text, from_image = read_text, True
                        result = classifier.classify(text, role=message.role)
                    flag = build_flag(_with_text(message, text), result, from_image=from_image)
                    if from_image and message.role in OFFICIAL_ROLES:
                        flag = None  # a cadre's picture never raises a flag by itself
                    banquet = (
                        banquet_values(text, message.at) if flag is not None and "banquet" in flag.labels else None
                    )
                    if old is not None and list(result.labels) == old.labels and result.category == old.category:
                        if banquet is not None and message.id not in detailed:
                            await history_repo.add_banquet_if_flagged(session, message_id=message.id, values=banquet)
                        continue
                    changed += 1
                    await history_repo.replace_classification(
                        session,
                        classification=Classification(**classification_row(message.id, result)),
                        flag=flag,
                        banquet=banquet,
                    )
                await session.commit()
            if progress is not None:
                percent = 100 * total // max(count, 1)
                bar = "#" * (percent // 4)
                progress.write(f"\r[{bar:<25}] {percent:3d}% {total}/{count}")
                progress.flush()
        if progress is not None:
            progress.write("\n")
    finally:
        await engine.dispose()
    return changed, total


def _with_text(message: Any, text: str) -> Any:
    return message.model_copy(update={"text": text})


async def rerun_kept_raw(*, config: Config, db_url: str) -> RerunResult:
    """The live pipeline, workflow included, over every message kept raw; what the bot says is queued in
    the outbox, which the running service sends (its sender polls the table)."""
    services = await build_services(config, clock=SystemClock(), db_url=db_url, batch=True)
    try:
        return await services.ingest.rerun_kept_raw()
    finally:
        await services.close()
