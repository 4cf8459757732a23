"""The hook to a county's own speech-recognition service (``[speech] url``; off by default).

After a voice message is stored, its decoded WAV is POSTed to the service with a timeout; the reply's text
becomes the message's transcript, marked as machine-made, through the same pipeline as one staff type
(``Ingest.transcribe``). Runs beside message handling, never in its way: a slow, failing or absent service
is logged and the message stays as it was, waiting for staff.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from bot.config import SpeechConfig
from bot.ingest import Ingest

log = logging.getLogger(__name__)

MACHINE = "speech-service"
"""Who made a machine transcript, as the voice note records it."""


def reply_text(body: bytes, content_type: str) -> str:
    """The transcript in a reply: JSON ``{"text": …}`` (or ``{"result": …}``), else the body as text."""
    raw = body.decode("utf-8", errors="replace").strip()
    if "json" in content_type or raw.startswith("{"):
        try:
            value = json.loads(raw)
        except ValueError:
            return ""
        if isinstance(value, dict):
            text = value.get("text", value.get("result", ""))
            return text.strip() if isinstance(text, str) else ""
        return ""
    return raw


class SpeechHook:
    def __init__(self, config: SpeechConfig, ingest: Ingest) -> None:
        self._config = config
        self._ingest = ingest

    async def recognise(self, wav: bytes) -> str:
        timeout = aiohttp.ClientTimeout(total=self._config.timeout_seconds)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(self._config.url, data=wav, headers={"Content-Type": "audio/wav"}) as answer,
        ):
            answer.raise_for_status()
            return reply_text(await answer.read(), answer.headers.get("Content-Type", ""))

    async def __call__(self, message_id: int, media_path: str | None) -> None:
        """Send one stored voice message to the service and keep what it heard; never raises."""
        voice = self._ingest.voice
        try:
            audio = await asyncio.to_thread(voice.decode, media_path)
            wav = voice.wav_bytes(audio)
            if wav is None:
                return
            text = await self.recognise(wav)
            if not text:
                log.warning("speech service returned no text for voice message %s", message_id)
                return
            await self._ingest.transcribe(message_id, text, by=MACHINE, machine=True)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("speech service failed on voice message %s: %s", message_id, exc or type(exc).__name__)
        except Exception:
            log.exception("speech transcript of voice message %s failed", message_id)
