"""Voice messages through the real replay pipeline, on SQLite and PostgreSQL: decoded once and kept, marked when
they do not decode, and a typed transcript classified as the message's text (a demand's ticket opens with its
acknowledgement; a second edit opens no second one; a banquet gets its flag and details)."""

from __future__ import annotations

import io
import json
import logging
import wave
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import SimulatedClock
from bot.errors import InputError
from bot.replay import TranscriptAdapter, run_replay
from bot.reports import flags_as_json
from bot.services import build_services
from bot.staff import StaffPipeline
from bot.tickets import tickets_as_json
from bot.voice import NotVoice, silk_to_wav
from dashboards.ports import ActionRefused
from storage.models import Banquet, Message, VoiceNote
from tests.scenarios.harness import scenario_config
from tests.voice.samples import silk_voice

GROUP = "石桥村监督服务群"
LAMP = "村口的路灯坏了一个多月了没人修"
BANQUET = "本周六家父七十大寿,中午在村部对面农家乐摆十桌,请亲朋好友赏光"

MEMBERS = [
    {"kind": "member", "group": GROUP, "name": "李书记", "role": "cadre", "village": "石桥村", "township": "城关镇",
     "county": "舒城县", "head": True},
    {"kind": "member", "group": GROUP, "name": "高某林", "role": "villager", "village": "石桥村", "township": "城关镇",
     "county": "舒城县"},
    {"kind": "member", "group": GROUP, "name": "刘建国", "role": "party_member", "village": "石桥村",
     "township": "城关镇", "county": "舒城县"},
]


def write_script(folder: Path) -> Path:
    """Four voice messages: two good ones, one that is not SILK at all, one cut off halfway."""
    good = silk_voice(2.0)
    (folder / "lamp.silk").write_bytes(good)
    (folder / "banquet.silk").write_bytes(silk_voice(1.0, tencent=False))
    (folder / "not_voice.silk").write_bytes(b"<html>not a voice message</html>")
    (folder / "cut.silk").write_bytes(good[: len(good) // 3])
    lines: list[dict[str, Any]] = [*MEMBERS]
    for minute, (sender, name) in enumerate(
        [("高某林", "lamp.silk"), ("刘建国", "banquet.silk"), ("高某林", "not_voice.silk"), ("高某林", "cut.silk")]
    ):
        at = f"2026-09-07T09:0{minute}:00+08:00"
        lines.append({"kind": "message", "at": at, "group": GROUP, "sender": sender, "voice": name})
    script = folder / "voice.jsonl"
    script.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", "utf-8")
    return script


def test_silk_decodes_to_a_wav_of_its_length_with_or_without_the_wechat_byte() -> None:
    for tencent in (True, False):
        wav = silk_to_wav(silk_voice(2.0, tencent=tencent))
        with wave.open(io.BytesIO(wav)) as read:
            assert read.getnchannels() == 1 and read.getframerate() == 24_000
            assert abs(read.getnframes() / 24_000 - 2.0) < 0.05


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "空的"),
        (b"RIFF....WAVEfmt not silk", "SILK"),
        (b"\x02#!SILK_V3" + b"\xff" * 40, "损坏"),
        (b"#!SILK_V3" + b"\x00" * (3 * 1024 * 1024), "太大"),
    ],
)
def test_what_is_not_a_voice_message_is_refused_in_chinese(data: bytes, says: str) -> None:
    with pytest.raises(NotVoice) as caught:
        silk_to_wav(data)
    assert says in str(caught.value)


async def test_voice_messages_are_kept_decoded_or_marked_and_a_transcript_opens_one_ticket(
    engine: AsyncEngine, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = write_script(tmp_path)
    config = scenario_config(tmp_path / "data")
    media = tmp_path / "media"
    caplog.set_level(logging.WARNING, logger="bot.voice")
    out = io.StringIO()
    await run_replay(script, config=config, db_url=db_url, transcript=out, media_root=media)
    assert out.getvalue() == ""  # a voice message alone says nothing the bot can act on
    # Both bad files were logged by name and the bot went on to the next message.
    assert sum("does not decode" in r.getMessage() for r in caplog.records) == 2

    clock = SimulatedClock(datetime.fromisoformat("2026-09-07T10:00:00+08:00"))
    services = await build_services(config, clock=clock, db_url=db_url, media_root=media, migrate=False)
    try:
        async with services.sessions() as session:
            rows = (
                await session.exec(select(Message, VoiceNote).join(VoiceNote).order_by(Message.at))  # type: ignore[arg-type]
            ).all()
        assert [m.kind for m, _ in rows] == ["voice"] * 4
        assert [n.status for _, n in rows] == ["ok", "ok", "undecodable", "undecodable"]
        assert [m.media_path is not None for m, _ in rows] == [True] * 4  # the bad ones are kept too
        lamp, banquet, not_voice, _cut = (m for m, _ in rows)
        assert rows[0][1].duration_ms is not None and 1900 <= rows[0][1].duration_ms <= 2100
        assert rows[0][1].audio_path and (media / rows[0][1].audio_path).read_bytes()[:4] == b"RIFF"
        assert "SILK" in (rows[2][1].error or "") and "损坏" in (rows[3][1].error or "")

        adapter = TranscriptAdapter("demo", services, io.StringIO())
        assert lamp.id is not None and banquet.id is not None and not_voice.id is not None
        done = await services.ingest.transcribe(lamp.id, LAMP, by="liu")
        assert done.handled and "demand" in done.labels
        await services.outbox.send_due({"demo": adapter}, pace=False)
        acks = [line for line in adapter.lines if line["to"] == GROUP]
        assert len(acks) == 1 and "【工单 #1】" in str(acks[0]["text"]) and acks[0]["mentions"] == ["李书记"]

        again = await services.ingest.transcribe(lamp.id, LAMP + ",晚上黑灯瞎火的", by="zhang")
        assert again.changed and not again.handled
        await services.outbox.send_due({"demo": adapter}, pace=False)
        assert len(adapter.lines) == 1  # no second acknowledgement

        await services.ingest.transcribe(banquet.id, BANQUET, by="liu")
        # A file that does not decode can still be transcribed by someone who heard it elsewhere: kept, not lost.
        await services.ingest.transcribe(not_voice.id, "今天天气不错", by="liu")
        with pytest.raises(InputError):
            await services.ingest.transcribe(lamp.id, "   ", by="liu")

        async with services.sessions() as session:
            tickets = await tickets_as_json(session)
            flags = await flags_as_json(session)
            note = await session.get(VoiceNote, lamp.id)
            stored = await session.get(Message, lamp.id)
            banquet_rows = int((await session.exec(select(func.count()).select_from(Banquet))).one())
        assert len(tickets) == 1 and tickets[0]["category"] == "power" and tickets[0]["reporters"] == ["高某林"]
        assert note is not None and note.transcript_source == "staff" and note.transcript_by == "zhang"
        assert stored is not None and stored.text.startswith(LAMP)
        assert [f["sender"] for f in flags] == ["刘建国"] and "banquet" in flags[0]["labels"]
        assert banquet_rows == 1

        # what the dashboard asks: the cached WAV (decoded again if the cache is gone), nothing outside the store
        staff = StaffPipeline(services)
        wav = await staff.voice_audio(lamp.media_path)
        assert wav is not None and wav.read_bytes()[:4] == b"RIFF"
        wav.unlink()
        again_wav = await staff.voice_audio(lamp.media_path)
        assert again_wav == wav and wav.is_file()
        assert await staff.voice_audio("../../../etc/passwd") is None
        assert await staff.voice_audio(not_voice.media_path) is None  # does not decode
        with pytest.raises(ActionRefused):
            await staff.transcribe(lamp.id, text="", actor="liu")
    finally:
        await services.close()
