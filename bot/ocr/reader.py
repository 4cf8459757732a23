"""What runs inside an OCR worker process: bytes of one image in, its recognised text (or why not) out.

Nothing here touches the database or the event loop. The image is checked before it is decoded (size in
bytes, then the pixel count read from its header, so a decompression bomb is refused unread), scaled down to
a bounded side, and read with RapidOCR (PP-OCRv4 detection and recognition models shipped inside the
``rapidocr-onnxruntime`` wheel: no download, works offline). The engine is built once per worker process, on
its first image.
"""

from __future__ import annotations

import io
import logging
import resource
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.media import IMAGE_FORMATS, MAX_IMAGE_BYTES

log = logging.getLogger(__name__)

DONE = "done"
FAILED = "failed"

# Why an image could not be read (stored; the dashboard shows each in Chinese).
NOT_IMAGE = "not_image"
CORRUPT = "corrupt"
TOO_LARGE = "too_large"
TOO_MANY_PIXELS = "too_many_pixels"
TIMEOUT = "timeout"
CRASHED = "crashed"
NO_FILE = "no_file"
OUT_OF_MEMORY = "out_of_memory"

MIN_SCORE = 0.5
"""Recognised lines the model is less sure of than this are dropped (noise on photos of objects)."""


@dataclass(frozen=True, slots=True)
class Reading:
    status: str
    """``done`` (``text`` may be empty: no text in the picture) or ``failed`` (``error`` says why)."""
    text: str = ""
    error: str | None = None
    detail: str = ""
    """For the log: what exactly went wrong (English, never shown to users)."""


_engine: Any = None


def init_worker(memory_mb: int) -> None:
    """Run once in each new worker process: bound its address space, so an image that would need more memory
    fails alone (MemoryError) instead of pushing the machine into swap."""
    limit = memory_mb * 1024 * 1024
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError) as exc:  # not permitted here: the pixel limits still bound the work
        log.warning("could not limit the OCR worker's memory: %s", exc)


def engine() -> Any:
    """The worker's RapidOCR engine, built on first use (loads the models from the installed wheel)."""
    global _engine
    if _engine is None:
        from rapidocr_onnxruntime import RapidOCR

        _engine = RapidOCR()
    return _engine


def decode(data: bytes, *, max_pixels: int, max_side: int) -> Image.Image | Reading:
    """The image, upright, in RGB, at most ``max_side`` on its longest side; or the failed Reading saying why."""
    if not data:
        return Reading(FAILED, error=NO_FILE, detail="empty file")
    if len(data) > MAX_IMAGE_BYTES:
        return Reading(FAILED, error=TOO_LARGE, detail=f"{len(data)} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
            width, height = opened.size
            if width < 1 or height < 1:
                return Reading(FAILED, error=CORRUPT, detail=f"{width}x{height}")
            if width * height > max_pixels:
                return Reading(FAILED, error=TOO_MANY_PIXELS, detail=f"{width}x{height}")
            opened.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale straight away
            opened.load()
            image: Image.Image = ImageOps.exif_transpose(opened) or opened
            image = image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Reading(FAILED, error=TOO_MANY_PIXELS, detail=str(exc))
    except UnidentifiedImageError as exc:
        return Reading(FAILED, error=NOT_IMAGE, detail=str(exc))
    except MemoryError:
        return Reading(FAILED, error=OUT_OF_MEMORY, detail="decoding")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return Reading(FAILED, error=CORRUPT, detail=f"{type(exc).__name__}: {exc}")
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def read_image(data: bytes, *, max_pixels: int, max_side: int) -> Reading:
    """Recognise the text in one image (in a worker process). Lines are joined top to bottom."""
    decoded = decode(data, max_pixels=max_pixels, max_side=max_side)
    if isinstance(decoded, Reading):
        return decoded
    import numpy as np

    try:
        array = np.asarray(decoded)[:, :, ::-1].copy()  # RGB → BGR, as OpenCV (and RapidOCR) expect
        result, _ = engine()(array)
    except MemoryError:
        return Reading(FAILED, error=OUT_OF_MEMORY, detail="recognition")
    lines = [str(text) for _box, text, score in (result or []) if float(score) >= MIN_SCORE and str(text).strip()]
    return Reading(DONE, text="\n".join(lines))


def warm_up() -> bool:
    """Load the models now (a worker's first image would otherwise wait for them)."""
    engine()
    return True
