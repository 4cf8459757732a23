"""A message's image (a photo a villager or cadre sent) served behind login and scope, full size or as a
thumbnail; the digest, flag and ticket pages show it with the text read from it (templates/image_text.html).

A viewer sees an image only when they may see its message (``repo.get_message``: their own township or
village, private chats for discipline staff only); a cadre only the images of tickets they may see (never a
flagged message's: cadres do not read the patrol digest).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from dashboards import media
from dashboards.context import SESSION_FACTORY, SETTINGS, viewer
from storage.repos import dashboard as repo


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
    path = media.photo_path(media_dir, row["media_path"])
    if path is None:
        raise web.HTTPNotFound(text="未找到")
    headers = {"Cache-Control": "private, max-age=3600"}
    if request.query.get("size") != "thumb":
        return web.FileResponse(path, headers={**headers, "Content-Type": media.IMAGE_TYPES[path.suffix.lower()]})
    thumb = await asyncio.to_thread(media.thumbnail, path)
    if thumb is None:
        raise web.HTTPNotFound(text="图片无法显示")
    return web.Response(body=thumb, content_type="image/jpeg", headers=headers)
