"""Voice messages on the dashboard: the audio, played in the browser, and the transcript staff type.

Playing follows the pages' scope rule (``media_notes.visible_voice``): whoever may see the message in a
digest, a flag or a ticket may hear it. Typing what was said is for discipline staff, within their scope;
the transcript goes through the bot's pipeline (``Pipeline.transcribe``) and is audited.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dashboards.context import PIPELINE, SESSION_FACTORY, audit, require, viewer
from dashboards.ports import ActionRefused
from storage.repos import media_notes as notes_repo

MAX_TRANSCRIPT_FORM = 2000


async def _visible(request: web.Request) -> dict[str, Any]:
    me = viewer(request)
    message_id = int(request.match_info["message_id"])
    async with request.app[SESSION_FACTORY]() as session:
        row = await notes_repo.visible_voice(session, message_id=message_id, scope=me.scope)
    if row is None:  # absent, not a voice message, or out of scope look the same
        raise web.HTTPNotFound(text="未找到")
    return dict(row)


async def voice_audio(request: web.Request) -> web.StreamResponse:
    """GET /messages/{id}/voice: the message's audio as WAV (decoded once, then from the cache)."""
    row = await _visible(request)
    path = await request.app[PIPELINE].voice_audio(row["media_path"])
    if path is None or not path.is_file():
        raise web.HTTPNotFound(text="这条语音无法播放（文件缺失或无法解码）")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, max-age=3600"})


async def save_transcript(request: web.Request) -> web.StreamResponse:
    """POST /messages/{id}/transcript: what was said; classified as the message's text."""
    me = viewer(request)
    require(request, me.discipline)
    row = await _visible(request)
    form = await request.post()
    text = str(form.get("text", "")).strip()
    back = str(form.get("back", ""))
    if not back.startswith("/") or back.startswith("//"):
        back = "/digest"
    if len(text) > MAX_TRANSCRIPT_FORM:
        raise web.HTTPBadRequest(text=f"转写内容太长（不能超过 {MAX_TRANSCRIPT_FORM} 字）")
    try:
        outcome = await request.app[PIPELINE].transcribe(row["id"], text=text, actor=me.username)
    except ActionRefused as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    await audit(request, "transcribe_voice", target=f"message:{row['id']}", detail=text)
    separator = "&" if "?" in back else "?"
    raise web.HTTPFound(f"{back}{separator}transcribed={'ticket' if outcome.handled else 'saved'}")
