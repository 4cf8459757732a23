"""Stored files (photos, voice, files) under the data directory, named by content so a re-delivery adds nothing.

Photos that go back into a group (resolution photos, from the dashboard or from a cadre's chat) are checked
by their content, never by their name: a real JPEG, PNG, GIF or WebP that Pillow can decode, within size and
pixel limits. An HTML page or an .exe called photo.jpg, or a decompression bomb, is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bot.errors import InputError

_EXTENSIONS = {
    b"\xff\xd8\xff": ".jpg",
    b"\x89PNG": ".png",
    b"GIF8": ".gif",
    b"RIFF": ".webp",
}
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp"}
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
"""40 megapixels: more than any phone camera; a decompression bomb is far beyond."""


class NotAnImage(InputError):
    """The file is not a photo the bot will post; the message (Chinese) says why."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return IMAGE_FORMATS[self.format]


def check_image(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageInfo:
    """What the bytes are, if they are a photo we post: decodes them fully (CPU-bound: call off the loop)."""
    if not data:
        raise NotAnImage("照片是空的")
    if len(data) > max_bytes:
        raise NotAnImage(f"照片太大({len(data) // 1024 // 1024} MB),不能超过 {max_bytes // 1024 // 1024} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as probe:
                fmt, (width, height) = probe.format or "", probe.size
                if width * height > max_pixels:
                    raise NotAnImage(f"照片像素太多({width}×{height}),不能超过 {max_pixels // 1_000_000} 百万像素")
                probe.verify()
            with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as image:
                image.load()  # a truncated or corrupt file fails here, not in a villager's WeChat
    except NotAnImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotAnImage(f"照片像素太多,不能超过 {max_pixels // 1_000_000} 百万像素") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImage("这不是一张照片(只支持 jpg、png、gif、webp 格式的图片)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NotAnImage("照片文件已损坏或不完整,无法打开") from exc
    if fmt not in IMAGE_FORMATS or width < 1 or height < 1:
        raise NotAnImage("这不是一张照片(只支持 jpg、png、gif、webp 格式的图片)")
    return ImageInfo(fmt, width, height)


def _extension(data: bytes, name: str | None) -> str:
    for magic, ext in _EXTENSIONS.items():
        if data.startswith(magic):
            return ext
    if name and "." in name:
        suffix = "." + name.rsplit(".", 1)[1].lower()
        if suffix.isascii() and 1 < len(suffix) <= 6 and suffix[1:].isalnum() and suffix not in IMAGE_SUFFIXES:
            return suffix
    return ".bin"


IMAGE_SUFFIXES = frozenset(IMAGE_FORMATS.values()) | {".jpeg"}
"""A file that does not start like an image is never stored under an image's extension."""


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, data: bytes, *, name: str | None = None) -> str:
        """Write ``data`` once; returns the path relative to the media root."""
        digest = hashlib.sha256(data).hexdigest()
        relative = Path(digest[:2]) / f"{digest[2:20]}{_extension(data, name)}"
        target = self.root / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)
        return relative.as_posix()

    def path(self, relative: str) -> Path:
        return self.root / relative

    def size(self, relative: str | None) -> int | None:
        """The stored file's size in bytes, None when there is none."""
        if not relative:
            return None
        try:
            return self.path(relative).stat().st_size
        except OSError:
            return None

    async def real_photo(self, relative: str | None) -> str | None:
        """``relative`` if the stored file there is a real photo (see check_image), else None; decoded in a
        worker thread, so a large photo never stalls the event loop."""
        return await asyncio.to_thread(self.photo, relative) if relative else None

    def photo(self, relative: str | None) -> str | None:
        """``relative`` if the stored file there is a real photo (see check_image), else None."""
        if not relative:
            return None
        target = self.path(relative)
        try:
            if target.stat().st_size > MAX_IMAGE_BYTES:
                return None
            check_image(target.read_bytes())
        except (OSError, NotAnImage):
            return None
        return relative
