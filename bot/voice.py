"""WeChat voice messages: SILK audio decoded to WAV for the browser, cached beside the stored file.

A voice message arrives as SILK v3 (``#!SILK_V3``, often after one 0x02 byte, as WeChat writes it). It is
decoded once (``silk-python``), when it is stored, into a 16-bit mono WAV at 24 kHz next to the original
(``<file>.wav``); a file that does not decode is kept as it came and a ``<file>.bad`` beside it says why,
so neither is tried twice. Decoding is CPU work: callers run it in a worker thread.
"""

from __future__ import annotations

import io
import logging
import wave
from dataclasses import dataclass
from pathlib import Path

import pysilk

from bot.errors import InputError
from bot.media import MediaStore

log = logging.getLogger(__name__)

SILK_HEADER = b"#!SILK_V3"
SAMPLE_RATE = 24_000
"""WeChat records voice at 24 kHz; decoding at the same rate keeps it as it was."""
MAX_VOICE_BYTES = 2 * 1024 * 1024
"""A WeChat voice message lasts at most 60 s (about 100 KB); anything far larger is not one."""
MAX_SECONDS = 15 * 60


class NotVoice(InputError):
    """The file is not a voice message that decodes; the message (Chinese) says why."""


def silk_to_pcm(data: bytes) -> bytes:
    """16-bit little-endian mono PCM at SAMPLE_RATE from SILK bytes; raises NotVoice."""
    if not data:
        raise NotVoice("语音文件是空的")
    if len(data) > MAX_VOICE_BYTES:
        raise NotVoice(f"语音文件太大({len(data) // 1024} KB),不是微信语音")
    body = data[1:] if data[:1] == b"\x02" else data
    if not body.startswith(SILK_HEADER):
        raise NotVoice("不是微信语音(SILK)格式,无法播放")
    out = io.BytesIO()
    try:
        pysilk.decode(io.BytesIO(body), out, SAMPLE_RATE)
    except Exception as exc:  # pysilk.SilkError and whatever a broken stream makes the decoder raise
        raise NotVoice("语音文件已损坏或不完整,无法解码") from exc
    pcm = out.getvalue()
    if len(pcm) < SAMPLE_RATE // 50 * 2:  # under one 20 ms frame
        raise NotVoice("语音文件已损坏或不完整,无法解码")
    if len(pcm) > MAX_SECONDS * SAMPLE_RATE * 2:
        raise NotVoice("语音太长,无法播放")
    return pcm


def pcm_to_wav(pcm: bytes, *, rate: int = SAMPLE_RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def silk_to_wav(data: bytes) -> bytes:
    """A WAV the browser plays from SILK bytes; raises NotVoice."""
    return pcm_to_wav(silk_to_pcm(data))


def wav_duration_ms(path: Path) -> int:
    with wave.open(str(path), "rb") as wav:
        return int(wav.getnframes() * 1000 / (wav.getframerate() or SAMPLE_RATE))


@dataclass(frozen=True, slots=True)
class VoiceAudio:
    """What became of a stored voice file: ``ok`` with its WAV, ``undecodable`` with why, or ``missing``."""

    status: str
    audio_path: str | None = None
    duration_ms: int | None = None
    error: str | None = None


MISSING = VoiceAudio("missing", error="语音文件没有收到")


class VoiceStore:
    """Decodes stored voice files once and finds the decoded WAV again (``<file>.wav`` in the media store)."""

    def __init__(self, media: MediaStore) -> None:
        self._media = media

    def decode(self, relative: str | None) -> VoiceAudio:
        """The playable audio of the stored voice file ``relative``, decoded on first use (CPU: call off the
        event loop). Never raises: a file that does not decode is marked, logged and kept."""
        if not relative:
            return MISSING
        source = self._media.path(relative)
        wav_rel, bad_rel = f"{relative}.wav", f"{relative}.bad"
        wav_path, bad_path = self._media.path(wav_rel), self._media.path(bad_rel)
        try:
            if wav_path.is_file():
                return VoiceAudio("ok", wav_rel, wav_duration_ms(wav_path))
            if bad_path.is_file():
                return VoiceAudio("undecodable", error=bad_path.read_text("utf-8").strip() or None)
            if not source.is_file():
                return MISSING
            data = source.read_bytes()
        except (OSError, wave.Error, EOFError) as exc:
            log.warning("voice file %s cannot be read: %s", relative, exc)
            return VoiceAudio("undecodable", error="语音文件无法读取")
        try:
            wav = silk_to_wav(data)
        except NotVoice as exc:
            log.warning("voice file %s does not decode (%s); kept as it came", relative, exc)
            self._write(bad_path, str(exc).encode("utf-8"))
            return VoiceAudio("undecodable", error=str(exc))
        self._write(wav_path, wav)
        return VoiceAudio("ok", wav_rel, len(wav[44:]) * 1000 // (2 * SAMPLE_RATE))

    def wav_bytes(self, audio: VoiceAudio) -> bytes | None:
        if audio.audio_path is None:
            return None
        try:
            return self._media.path(audio.audio_path).read_bytes()
        except OSError:
            return None

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)
        except OSError as exc:
            log.warning("could not write %s: %s", target, exc)
