"""Stored files (photos, voice, files) under the data directory, named by content so a re-delivery adds nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

_EXTENSIONS = {
    b"\xff\xd8\xff": ".jpg",
    b"\x89PNG": ".png",
    b"GIF8": ".gif",
    b"RIFF": ".webp",
}


def _extension(data: bytes, name: str | None) -> str:
    for magic, ext in _EXTENSIONS.items():
        if data.startswith(magic):
            return ext
    if name and "." in name:
        suffix = "." + name.rsplit(".", 1)[1].lower()
        if suffix.isascii() and 1 < len(suffix) <= 6 and suffix[1:].isalnum():
            return suffix
    return ".bin"


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
