"""Real SILK voice files made in the test: a synthetic voice (a pitched, vowel-like buzz) encoded with the same
library the bot decodes with, as WeChat writes them (a 0x02 byte, then ``#!SILK_V3``)."""

from __future__ import annotations

import io
import math

import numpy as np
import pysilk

RATE = 24_000


def speech_like_pcm(seconds: float = 2.0, *, pitch: float = 140.0) -> bytes:
    """16-bit mono PCM: a voice at ``pitch`` Hz with two formants, rising and falling like syllables."""
    t = np.arange(int(RATE * seconds)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 3 * t)  # three "syllables" a second
    phase = 2 * math.pi * (pitch * t - 20 / (2 * math.pi * 0.5) * np.cos(2 * math.pi * 0.5 * t))
    value = 0.6 * np.sin(phase) + 0.3 * np.sin(2 * math.pi * 700 * t) + 0.2 * np.sin(2 * math.pi * 1200 * t)
    return (9000 * envelope * value).astype("<i2").tobytes()


def silk_voice(seconds: float = 2.0, *, tencent: bool = True, pitch: float = 140.0) -> bytes:
    """A SILK v3 file of ``seconds`` of synthetic voice; ``tencent`` adds WeChat's leading 0x02 byte; another
    ``pitch`` makes another file."""
    out = io.BytesIO()
    pysilk.encode(io.BytesIO(speech_like_pcm(seconds, pitch=pitch)), out, RATE, 24_000, tencent=tencent)
    return out.getvalue()
