"""A message's image (a photo a villager or cadre sent) served behind login and scope, full size or as a
thumbnail; the digest, flag and ticket pages show it with the text read from it (templates/image_text.html).

A viewer sees an image only when they may see its message (``repo.get_message``: their own township or
village, private chats for discipline staff only); a cadre only the images of tickets they may see (never a
flagged message's: cadres do not read the patrol digest).
"""

from __future__ import annotations

import asyncio
import io
import warnings
from pathlib import Path

from aiohttp import web
from PIL import Image

from dashboards.context import SESSION_FACTORY, SETTINGS, viewer
from dashboards.views_tickets import IMAGE_TYPES
from storage.repos import dashboard as repo

THUMB_SIDE = 320
MAX_PIXELS = 40_000_000
"""No thumbnail is made of an image with more pixels (a decompression bomb is never decoded)."""


async def message_image(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    message_id = int(request.match_info["message_id"])
    media_dir = request.app[SETTINGS].media_dir
    async with request.app[SESSION_FACTORY]() as session:
        row = await repo.get_message(session, message_id=message_id, scope=me.scope)
        hidden = (
            row is not None
            and not me.discipline
            and not await repo.on_visible_ticket(session, message_id=message_id, scope=me.scope)
        )
    # The same answer whether it does not exist or is out of scope: no probing other villages.
    if row is None or hidden or not row["media_path"] or media_dir is None:
        raise web.HTTPNotFound(text="未找到")
    root = media_dir.resolve()
    path = (root / row["media_path"]).resolve()
    if not path.is_relative_to(root) or not path.is_file() or path.suffix.lower() not in IMAGE_TYPES:
        raise web.HTTPNotFound(text="未找到")
    headers = {"Cache-Control": "private, max-age=3600"}
    if request.query.get("size") != "thumb":
        return web.FileResponse(path, headers={**headers, "Content-Type": IMAGE_TYPES[path.suffix.lower()]})
    thumb = await asyncio.to_thread(thumbnail, path)
    if thumb is None:
        raise web.HTTPNotFound(text="图片无法显示")
    return web.Response(body=thumb, content_type="image/jpeg", headers=headers)


def thumbnail(path: Path) -> bytes | None:
    """A small JPEG of the image, or None when it cannot be decoded safely (corrupt, a bomb)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=["JPEG", "PNG", "GIF", "WEBP"]) as image:
                if image.width * image.height > MAX_PIXELS:
                    return None
                image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))
                small = image.convert("RGB")
                small.thumbnail((THUMB_SIDE, THUMB_SIDE))
                out = io.BytesIO()
                small.save(out, "JPEG", quality=80)
                return out.getvalue()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
