"""The speech-recognition hook against a tiny local HTTP server standing in for a county's own service: the
reply's text becomes a machine transcript and opens the demand's ticket; a failing service changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import SimulatedClock
from bot.config import Config, ConfigError, load_config
from bot.messages import IncomingMessage, MessageKind
from bot.services import build_services
from bot.tickets import tickets_as_json
from storage.models import VoiceNote
from tests.bot.conftest import ROOT, T0
from tests.voice.samples import silk_voice

LAMP = "村口的路灯坏了一个多月了没人修"


@pytest.fixture
async def speech_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    heard: list[bytes] = []

    async def recognise(request: web.Request) -> web.Response:
        body = await request.read()
        heard.append(body)
        if request.headers.get("Content-Type") != "audio/wav" or body[:4] != b"RIFF":
            return web.json_response({"error": "not wav"}, status=415)
        if request.query.get("fail"):
            return web.Response(status=500)
        return web.json_response({"text": LAMP})

    app = web.Application()
    app.router.add_post("/asr", recognise)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/asr")), heard
    finally:
        await server.close()


def _voice(platform_id: str) -> IncomingMessage:
    return IncomingMessage(
        platform_id=platform_id,
        account="demo",
        at=T0,
        kind=MessageKind.VOICE,
        text="",
        sender_id="高某林",
        sender_name="高某林",
        group_id="石桥村监督服务群",
        group_topic="石桥村监督服务群",
        attachment_name="语音.silk",
        media=silk_voice(1.5),
    )


def _config(tmp_path: Path, url: str) -> Config:
    base = load_config(ROOT / "config.example.toml")
    return base.model_copy(
        update={"data_dir": tmp_path / "data", "speech": base.speech.model_copy(update={"url": url})}
    )


@pytest.mark.parametrize("fail", [False, True])
async def test_the_service_reply_becomes_a_machine_transcript(
    engine: AsyncEngine, db_url: str, tmp_path: Path, speech_server: tuple[str, list[bytes]], fail: bool
) -> None:
    url, heard = speech_server
    config = _config(tmp_path, url + ("?fail=1" if fail else ""))
    services = await build_services(
        config, clock=SimulatedClock(T0), db_url=db_url, media_root=tmp_path / "media", migrate=False
    )
    try:
        message_id = await services.ingest.handle(_voice("v1"))
        assert message_id is not None
        await services.ingest.drain()
        assert len(heard) == 1 and heard[0][:4] == b"RIFF"
        async with services.sessions() as session:
            note = await session.get(VoiceNote, message_id)
            tickets = await tickets_as_json(session)
        assert note is not None and note.status == "ok"
        if fail:
            assert note.transcript is None and tickets == []  # kept for staff to transcribe
        else:
            assert note.transcript == LAMP and note.transcript_source == "machine"
            assert len(tickets) == 1 and tickets[0]["reporters"] == ["高某林"]
    finally:
        await services.close()


def test_the_hook_is_off_by_default_and_checked_at_start(tmp_path: Path) -> None:
    assert load_config(ROOT / "config.example.toml").speech.url == ""
    bad = tmp_path / "config.toml"
    bad.write_text('[speech]\nurl = "ftp://asr.local"\n', "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert "speech" in str(caught.value) and "url" in str(caught.value)
