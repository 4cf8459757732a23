"""Photos from the media store for the dashboard's pages: a stored path resolved safely, and thumbnails.

The bot stores what a message carried under ``media_dir`` (paths relative to it). A path from the database is
never trusted: it must stay inside the folder, be a file and have an image suffix. Thumbnails are small JPEGs
made with Pillow in a worker thread and kept in a bounded in-memory cache (a digest page shows a few dozen).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path
from threading import Lock

from PIL import Image, UnidentifiedImageError

IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
THUMB_PIXELS = 320
"""The longer side of a thumbnail (160 CSS pixels on a 2x phone screen)."""
MAX_SOURCE_BYTES = 20 * 1024 * 1024
CACHE_SIZE = 256

_cache: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
_lock = Lock()


def photo_path(media_dir: Path, relative: str) -> Path | None:
    """The stored photo at ``relative`` under ``media_dir``, or None when it escapes the folder, is missing
    or is not an image file."""
    root = media_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file() or path.suffix.lower() not in IMAGE_TYPES:
        return None
    return path


def thumbnail(path: Path) -> bytes | None:
    """A JPEG at most :data:`THUMB_PIXELS` on its longer side, or None when the file is not a readable image
    (the caller then serves nothing better than the original or a 404). Blocking: run it in a thread."""
    try:
        stat = path.stat()
    except OSError:
        return None
    if stat.st_size > MAX_SOURCE_BYTES:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    try:
        with Image.open(path) as image:
            image.draft("RGB", (THUMB_PIXELS, THUMB_PIXELS))
            small = image.convert("RGB")
            small.thumbnail((THUMB_PIXELS, THUMB_PIXELS))
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=80)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return None
    data = out.getvalue()
    with _lock:
        _cache[key] = data
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data
