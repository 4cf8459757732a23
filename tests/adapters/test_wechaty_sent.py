"""The Wechaty adapter sends each outbox dedupe key once, across restarts and kill -9 (the sent journal).

The outbox marks a row sent after the adapter returned; a process killed between the two sends the row
again after its restart, with the same dedupe key. Here a child process sends through the real puppet
service and kills itself -9 the moment ``send`` returned (before anything could be marked); a new adapter
on the same journal then gets the same row again and must drop it: the puppet service shows it once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.adapters.base import AdapterState
from bot.adapters.wechaty import WechatyAdapter
from bot.adapters.wechaty.sent import PartState, SentJournal
from bot.messages import OutgoingMessage
from tests.wechaty.service import ROOM_ID, Inbox, WechatyService

pytestmark = [pytest.mark.wechaty]

ACCOUNT = "shiqiao-bot"
ROOT = Path(__file__).resolve().parents[2]
LOG = logging.getLogger("tests.wechaty.sent")


def row(key: str | None, text: str | None = None, image: Path | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        account=ACCOUNT,
        chat_id=ROOM_ID,
        is_group=True,
        text=text,
        image_path=str(image) if image is not None else None,
        dedupe_key=key,
    )


# ---------------------------------------------------------------- the journal on its own


async def test_the_journal_remembers_sent_and_in_doubt_parts_across_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "a.sent.jsonl"
    journal = SentJournal(path, log=LOG)
    await journal.sending("ack:1#text")
    await journal.sent("ack:1#text", "msg_1")
    await journal.sending("ack:2#text")  # the process died during this call
    await journal.sending("ack:3#text")
    await journal.failed("ack:3#text")  # the call raised: the outbox retries it
    again = SentJournal(path, log=LOG)
    assert again.state("ack:1#text") == (PartState.SENT, "msg_1")
    assert again.state("ack:2#text") == (PartState.IN_DOUBT, None)
    assert again.state("ack:3#text") == (PartState.NEW, None)
    assert again.state("ack:4#text") == (PartState.NEW, None)


async def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "a.sent.jsonl"
    journal = SentJournal(path, log=LOG)
    await journal.sent("ack:1#text", "msg_1")
    with path.open("a", encoding="utf-8") as out:
        out.write('{"k": "ack:2#te')
    again = SentJournal(path, log=LOG)
    assert again.state("ack:1#text") == (PartState.SENT, "msg_1")
    assert again.state("ack:2#text") == (PartState.NEW, None)
    await again.sent("ack:3#text", "msg_3")  # appending after the torn line still reads back
    assert SentJournal(path, log=LOG).state("ack:3#text") == (PartState.SENT, "msg_3")


async def test_the_journal_stays_bounded_and_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "a.sent.jsonl"
    journal = SentJournal(path, log=LOG, keep=10)
    for n in range(100):
        await journal.sending(f"ack:{n}#text")
        await journal.sent(f"ack:{n}#text", f"msg_{n}")
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 20
    again = SentJournal(path, log=LOG, keep=10)
    assert len(again) == 10
    assert again.state("ack:99#text") == (PartState.SENT, "msg_99")
    assert again.state("ack:90#text") == (PartState.SENT, "msg_90")
    assert again.state("ack:0#text") == (PartState.NEW, None)
    assert not path.with_name(path.name + ".tmp").exists()


# ---------------------------------------------------------------- against the real puppet service


@pytest.fixture
async def service(wechaty_service: WechatyService) -> AsyncIterator[WechatyService]:
    if wechaty_service.proc is None or wechaty_service.proc.poll() is not None:
        wechaty_service.start()
    await wechaty_service.clear_sent()
    yield wechaty_service


async def started(service: WechatyService, journal: Path) -> WechatyAdapter:
    adapter = WechatyAdapter(ACCOUNT, endpoint=service.endpoint, token=service.token, sent_journal=journal)
    await adapter.start(Inbox())
    deadline = time.monotonic() + 15
    while adapter.health().state != AdapterState.CONNECTED:
        assert time.monotonic() < deadline, adapter.health()
        await asyncio.sleep(0.05)
    return adapter


CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys, time
    from pathlib import Path
    from bot.adapters.base import AdapterState
    from bot.adapters.wechaty import WechatyAdapter
    from bot.messages import OutgoingMessage

    async def main():
        endpoint, token, journal, key, text, room = sys.argv[1:7]
        adapter = WechatyAdapter("shiqiao-bot", endpoint=endpoint, token=token, sent_journal=Path(journal))
        async def ignore(message):
            return None
        await adapter.start(ignore)
        deadline = time.monotonic() + 15
        while adapter.health().state != AdapterState.CONNECTED:
            assert time.monotonic() < deadline, adapter.health()
            await asyncio.sleep(0.05)
        await adapter.send(OutgoingMessage(account="shiqiao-bot", chat_id=room, is_group=True, text=text,
                                           dedupe_key=key))
        os.kill(os.getpid(), signal.SIGKILL)  # sent, not yet marked: the outbox would send it again

    asyncio.run(main())
    """
)


def send_then_kill_9(service: WechatyService, journal: Path, key: str, text: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, service.endpoint, service.token, str(journal), key, text, ROOM_ID],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, done.stderr.decode(errors="replace")
    return done.returncode


async def test_a_row_sent_again_after_a_kill_9_between_send_and_mark_is_dropped(
    service: WechatyService, tmp_path: Path
) -> None:
    journal = tmp_path / "wechaty" / f"{ACCOUNT}.sent.jsonl"
    text = "@高某林 您反映的问题已登记【工单 #7】,将在10个工作日内办理。"
    send_then_kill_9(service, journal, "ack:7", text)
    first = await service.wait_sent(lambda item: item.get("text") == text)

    adapter = await started(service, journal)  # the next process, on the same journal
    try:
        again = await adapter.send(row("ack:7", text))  # the outbox's re-send of the unmarked row
        other = await adapter.send(row("ack:8", "另一条回复"))
        await service.wait_sent(lambda item: item.get("text") == "另一条回复")
        twice = await adapter.send(row("ack:8", "另一条回复"))  # and once more within this process
    finally:
        await adapter.stop()
    assert again == first["id"], "a dropped re-send answers with the id of the first send"
    assert twice == other
    texts = [item.get("text") for item in await service.sent()]
    assert texts.count(text) == 1, texts
    assert texts.count("另一条回复") == 1, texts


async def test_the_image_of_a_row_whose_text_went_before_the_kill_is_still_sent(
    service: WechatyService, tmp_path: Path
) -> None:
    journal = tmp_path / "wechaty" / f"{ACCOUNT}.sent.jsonl"
    text = "【工单 #9】已办结,请看照片。"
    send_then_kill_9(service, journal, "resolved:9", text)  # the text part went; the image never started
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 40 + b"\xff\xd9")
    adapter = await started(service, journal)
    try:
        await adapter.send(row("resolved:9", text, image))
        await service.wait_sent(lambda item: item["kind"] == "file")
    finally:
        await adapter.stop()
    sent = await service.sent()
    assert [item.get("text") for item in sent].count(text) == 1
    assert [item["kind"] for item in sent].count("file") == 1


async def test_a_part_in_doubt_is_not_sent_again_and_is_named_in_a_warning(
    service: WechatyService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "wechaty" / f"{ACCOUNT}.sent.jsonl"
    journal.parent.mkdir(parents=True)
    # what a process killed during the send call leaves: "sending" and nothing after it
    journal.write_text(json.dumps({"k": "ack:11#text", "s": "sending"}) + "\n", encoding="utf-8")
    adapter = await started(service, journal)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.adapters.wechaty"):
            assert await adapter.send(row("ack:11", "回复十一")) is None
        await adapter.send(row(None, "没有键的消息"))  # no key: nothing to de-duplicate by
        await service.wait_sent(lambda item: item.get("text") == "没有键的消息")
    finally:
        await adapter.stop()
    assert "回复十一" not in [item.get("text") for item in await service.sent()]
    assert any("ack:11" in record.getMessage() for record in caplog.records)


async def test_the_whole_service_sends_a_reply_once_when_its_mark_was_lost_in_a_crash(
    service: WechatyService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service end to end: a report is acknowledged; the acknowledgement's outbox row is then put back
    as a kill -9 between send and mark leaves it (claimed, unsent); the next start sends it again, and the
    adapter of the new process drops it."""
    from sqlalchemy import text as sql

    from bot.app import start_service
    from tests.adapters.test_wechaty_e2e import TOKEN_ENV, e2e_config
    from tests.wechaty.service import GAO

    monkeypatch.setenv(TOKEN_ENV, service.token)
    config = e2e_config(service, tmp_path / "data")

    async def start() -> object:
        running = await start_service(config)
        adapter = running.adapters["shiqiao"]
        deadline = time.monotonic() + 15
        while adapter.health().state != AdapterState.CONNECTED:
            assert time.monotonic() < deadline, adapter.health()
            await asyncio.sleep(0.05)
        return running

    running = await start()
    try:
        await service.say(GAO, "村口的路灯坏了好几天了，晚上走路看不见，请村里尽快派人来修一下")
        ack = await service.wait_sent(lambda item: item["kind"] == "text" and "【工单 #" in item["text"], timeout=20)
        sessions = running.services.sessions  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while True:
            async with sessions() as session:
                conn = await session.connection()
                rows = (await conn.execute(sql("SELECT id, dedupe_key, status FROM outbox"))).all()
            if rows and all(status == "sent" for _, _, status in rows):
                break
            assert time.monotonic() < deadline, rows
            await asyncio.sleep(0.05)
        async with sessions() as session:  # as a kill -9 right after the send leaves them
            conn = await session.connection()
            await conn.execute(
                sql(
                    "UPDATE outbox SET status = 'pending', sent_at = NULL, platform_message_id = NULL, "
                    "lease_until = :lease"
                ),
                {"lease": "2999-01-01 00:00:00"},
            )
            await session.commit()
    finally:
        await running.stop()  # type: ignore[attr-defined]

    running = await start()
    try:
        sessions = running.services.sessions  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while True:  # the new process frees its claimed rows and sends them again
            async with sessions() as session:
                conn = await session.connection()
                statuses = [r[0] for r in (await conn.execute(sql("SELECT status FROM outbox"))).all()]
            if all(status == "sent" for status in statuses):
                break
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.05)
    finally:
        await running.stop()  # type: ignore[attr-defined]
    sent = await service.sent()
    assert [item.get("text") for item in sent].count(ack["text"]) == 1, sent
    assert len(sent) == len(rows), "every reply of the first process is shown once"
