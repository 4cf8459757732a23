"""Resolution photos are checked by content: real images only, within size and pixel limits.

From the dashboard (the staff port) and from a cadre's chat, an HTML page or an .exe named .jpg, a
truncated file or an image bomb never goes back into a group.
"""

from __future__ import annotations

import io
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from bot.clock import CHINA, SimulatedClock
from bot.health import health_handler
from bot.media import MAX_IMAGE_BYTES, NotAnImage, check_image
from bot.services import build_services
from bot.staff import StaffTicketActions
from dashboards.ports import ActionRefused
from tests.bot.fakes import RecordingAdapter
from tests.scenarios.harness import ROOT, SCRIPTS, replay, scenario_config

HTML = b"<!doctype html><html><script>location='http://evil.example'</script></html>"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 400


def image(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_real_images_are_accepted(fmt: str) -> None:
    info = check_image(image(fmt))
    assert info.format == fmt and (info.width, info.height) == (40, 30)


def test_everything_else_is_refused_with_a_chinese_reason() -> None:
    jpeg = image("JPEG", (400, 300))
    bomb = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(bomb, "PNG")  # 900 megapixels in ~100 kB
    refused = {
        "html": (HTML, "这不是一张照片"),
        "exe": (EXE, "这不是一张照片"),
        "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "这不是一张照片"),
        "empty": (b"", "照片是空的"),
        "jpeg header only": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"x" * 500, "照片"),
        "truncated": (jpeg[: len(jpeg) // 2], "损坏或不完整"),
        "bomb": (bomb.getvalue(), "像素太多"),
        "too big": (b"\xff\xd8\xff" + b"\x00" * (MAX_IMAGE_BYTES + 1), "照片太大"),
    }
    for name, (data, reason) in refused.items():
        with pytest.raises(NotAnImage, match=reason):
            check_image(data)
        assert name
    with pytest.raises(NotAnImage, match="像素太多"):
        check_image(image("PNG", (200, 200)), max_pixels=10_000)


class _Actions:
    def __init__(self) -> None:
        self.uploads: list[tuple[int, str]] = []

    async def upload_photo(self, ticket_id: int, **kwargs: Any) -> None:
        self.uploads.append((ticket_id, kwargs["filename"]))

    async def resolve(self, ticket_id: int, **kwargs: Any) -> None:
        self.uploads.append((ticket_id, kwargs["filename"]))


async def test_the_dashboard_port_refuses_non_images_before_the_workflow_sees_them() -> None:
    actions = _Actions()
    staff = StaffTicketActions(actions)  # type: ignore[arg-type]
    for data in (HTML, EXE):
        with pytest.raises(ActionRefused, match="这不是一张照片"):
            await staff.upload_photo(1, actor="town_a", image=data, filename="fix.jpg")
        with pytest.raises(ActionRefused, match="这不是一张照片"):
            await staff.resolve(1, actor="town_a", note="", image=data, filename="fix.jpg")
    await staff.upload_photo(1, actor="town_a", image=image("JPEG"), filename="fix.jpg")
    await staff.resolve(1, actor="town_a", note="", image=image("JPEG"), filename="ok.jpg")
    assert actions.uploads == [(1, "fix.jpg"), (1, "ok.jpg")]


def _script(tmp_path: Path, *, photo: bytes, photo_first: bool) -> str:
    lines = (SCRIPTS / "s1_water_outage.jsonl").read_text(encoding="utf-8").splitlines()
    photo_line = next(i for i, line in enumerate(lines) if '"image"' in line)
    resolve_line = next(i for i, line in enumerate(lines) if "#1 办结" in line)
    entry = json.loads(lines[photo_line])
    entry["image"] = "fix.jpg"
    if not photo_first:  # the photo comes after the resolving message
        resolve = json.loads(lines[resolve_line])
        entry["at"], resolve["at"] = resolve["at"], entry["at"]
        lines[resolve_line] = json.dumps(entry, ensure_ascii=False)
        lines[photo_line] = json.dumps(resolve, ensure_ascii=False)
    else:
        lines[photo_line] = json.dumps(entry, ensure_ascii=False)
    (tmp_path / "fix.jpg").write_bytes(photo)
    path = tmp_path / ("first.jsonl" if photo_first else "after.jsonl")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("photo_first", [True, False])
async def test_a_non_image_from_chat_is_never_posted_as_the_resolution_photo(tmp_path: Path, photo_first: bool) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}"
    outcome = await replay(db, tmp_path, _script(tmp_path, photo=HTML, photo_first=photo_first))
    assert not [line for line in outcome.transcript if line["image"]]
    ticket = outcome.ticket(1)
    assert ticket["status"] == "closed" and ticket["photos"] == [] and ticket["photo_missing"]


async def test_a_real_photo_from_chat_is_still_posted(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}"
    outcome = await replay(db, tmp_path, _script(tmp_path, photo=image("JPEG"), photo_first=False))
    assert [line for line in outcome.transcript if line["image"]]
    assert len(outcome.ticket(1)["photos"]) == 1


async def test_health_shows_a_failed_rule_reload(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    config = scenario_config(tmp_path / "data", rules_dir=rules)
    services = await build_services(
        config,
        clock=SimulatedClock(datetime(2026, 9, 7, 8, 0, tzinfo=CHINA)),
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'h.db'}",
    )
    app = web.Application()
    app.router.add_get("/health", health_handler(services, {"demo": RecordingAdapter()}))
    try:
        async with TestClient(TestServer(app)) as client:
            body = await (await client.get("/health")).json()
            assert body["status"] == "ok" and body["rules_reload_error"] is None and body["warnings"] == []
            pack = next((rules / "labels").glob("*.toml"))
            pack.write_text(pack.read_text(encoding="utf-8") + '\n[[rule]]\nid = "x"\nweight = nan\n', "utf-8")
            assert not services.classifiers.reload()
            resp = await client.get("/health")
            body = await resp.json()
            assert resp.status == 200 and body["status"] == "warning"
            assert pack.name in body["rules_reload_error"] and "重新加载失败" in body["warnings"][0]
    finally:
        await services.close()


@pytest.mark.parametrize("configured", [False, True])
async def test_health_warns_of_a_coming_year_without_holidays_until_they_are_configured(
    tmp_path: Path, configured: bool
) -> None:
    # chinesecalendar 1.11 stops at 2026: in December, the coming January's deadlines would be guessed.
    deadlines = {"holidays": ["2031-01-01"], "workdays": []} if configured else {}
    config = scenario_config(tmp_path / "data", deadlines=deadlines)
    services = await build_services(
        config,
        clock=SimulatedClock(datetime(2030, 12, 1, 8, 0, tzinfo=CHINA)),
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'h.db'}",
    )
    app = web.Application()
    app.router.add_get("/health", health_handler(services, {"demo": RecordingAdapter()}))
    try:
        async with TestClient(TestServer(app)) as client:
            body = await (await client.get("/health")).json()
        years = [w for w in body["warnings"] if "法定节假日" in w]
        assert [w[:5] for w in years] == (["2030年"] if configured else ["2030年", "2031年"])
        assert all("[deadlines]" in w for w in years)
    finally:
        await services.close()
