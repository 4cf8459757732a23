"""Real SILK voice files made in the test: a synthetic voice (a pitched, vowel-like buzz) encoded with the same
library the bot decodes with, as WeChat writes them (a 0x02 byte, then ``#!SILK_V3``)."""

from __future__ import annotations

import io
import math
import struct

import pysilk

RATE = 24_000


def speech_like_pcm(seconds: float = 2.0) -> bytes:
    """16-bit mono PCM: a 140 Hz voice with two formants, rising and falling like syllables."""
    samples = []
    for i in range(int(RATE * seconds)):
        t = i / RATE
        envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 3 * t)  # three "syllables" a second
        pitch = 140 + 20 * math.sin(2 * math.pi * 0.5 * t)
        value = (
            0.6 * math.sin(2 * math.pi * pitch * t)
            + 0.3 * math.sin(2 * math.pi * 700 * t)
            + 0.2 * math.sin(2 * math.pi * 1200 * t)
        )
        samples.append(int(9000 * envelope * value))
    return struct.pack(f"<{len(samples)}h", *samples)


def silk_voice(seconds: float = 2.0, *, tencent: bool = True) -> bytes:
    """A SILK v3 file of ``seconds`` of synthetic voice; ``tencent`` adds WeChat's leading 0x02 byte."""
    out = io.BytesIO()
    pysilk.encode(io.BytesIO(speech_like_pcm(seconds)), out, RATE, 24_000, tencent=tencent)
    return out.getvalue()
