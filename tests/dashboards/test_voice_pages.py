"""Voice, link and file messages on the dashboard pages (SQLite and PostgreSQL): the player and its audio behind
login and scope, the transcript form (CSRF, discipline staff, audited), link cards that never link out, file
names with sizes, and a voice file that does not decode marked in Chinese."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.voice import silk_to_wav
from storage.models import AuditLog, Flag, Message
from storage.repos import media_notes as notes_repo
from tests.dashboards.conftest import Dash
from tests.dashboards.seed import T0
from tests.voice.samples import silk_voice


async def _voice_world(dash: Dash, tmp_path: Path) -> dict[str, int]:
    wav = tmp_path / "voice.wav"
    wav.write_bytes(silk_to_wav(silk_voice(2.0)))
    dash.pipeline.audio = wav
    ids: dict[str, int] = {}
    async with dash.factory() as session, session.begin():
        for key, group, township, village, kind, text, private in [
            ("shiqiao", "石桥村监督服务群", "城关镇", "石桥村", "voice", "", False),
            ("bad", "石桥村监督服务群", "城关镇", "石桥村", "voice", "", False),
            ("longshan", "龙山村监督服务群", "龙山镇", "龙山村", "voice", "", False),
            ("private", None, "城关镇", "石桥村", "voice", "", True),
            ("link", "石桥村监督服务群", "城关镇", "石桥村", "link", "停水通知\n明天8点到17点检修", False),
            ("file", "石桥村监督服务群", "城关镇", "石桥村", "file", "低保名单.xlsx", False),
        ]:
            m = Message(
                account="bot1",
                platform_id=f"v-{key}",
                at=T0 + timedelta(minutes=300 + len(ids)),
                group_name=group,
                private=private,
                sender_platform_id="村民甲",
                sender_name="村民甲",
                kind=kind,
                text=text,
                media_path=f"ab/{key}.silk",
                county="舒城县",
                township=township,
                village=village,
            )
            session.add(m)
            await session.flush()
            assert m.id is not None
            ids[key] = m.id
            if kind == "voice":
                ok = key != "bad"
                await notes_repo.add_voice(
                    session,
                    message_id=m.id,
                    status="ok" if ok else "undecodable",
                    duration_ms=2000 if ok else None,
                    audio_path=f"ab/{key}.silk.wav" if ok else None,
                    error=None if ok else "不是微信语音(SILK)格式,无法播放",
                )
        await notes_repo.add_card(
            session,
            message_id=ids["link"],
            values={"kind": "link", "title": "停水通知<script>alert(1)</script>", "description": "明天8点到17点检修",
                    "host": "mp.weixin.qq.com"},
        )
        await notes_repo.add_card(
            session, message_id=ids["file"], values={"kind": "file", "file_name": "低保名单.xlsx", "size_bytes": 24_576}
        )
    return ids


async def test_staff_play_voice_in_scope_and_nobody_else(dash: Dash, tmp_path: Path) -> None:
    ids = await _voice_world(dash, tmp_path)
    anonymous = await dash.client.get(f"/messages/{ids['shiqiao']}/voice", allow_redirects=False)
    assert anonymous.status in (302, 303) and "/login" in anonymous.headers["Location"]

    await dash.login("town_a")
    page = await (await dash.client.get("/digest")).text()
    assert f'src="/messages/{ids["shiqiao"]}/voice"' in page and "时长 2秒" in page
    assert "语音无法解码，原文件已保存" in page  # the bad one is listed, marked, not hidden
    assert f"/messages/{ids['longshan']}/voice" not in page  # another township's
    answer = await dash.client.get(f"/messages/{ids['shiqiao']}/voice")
    assert answer.status == 200 and answer.headers["Content-Type"] == "audio/wav"
    assert (await answer.read())[:4] == b"RIFF"
    assert (await dash.client.get(f"/messages/{ids['longshan']}/voice")).status == 404
    assert (await dash.client.get(f"/messages/{ids['link']}/voice")).status == 404  # not a voice message
    assert (await dash.client.get(f"/messages/{ids['private']}/voice")).status == 200  # discipline staff

    await dash.login("cadre_a")
    assert (await dash.client.get(f"/messages/{ids['shiqiao']}/voice")).status == 200  # the cadre's own village
    assert (await dash.client.get(f"/messages/{ids['private']}/voice")).status == 404  # a private report: never
    refused = await dash.post(f"/messages/{ids['shiqiao']}/transcript", {"text": "路灯坏了", "back": "/tickets"})
    assert refused.status == 403 and dash.pipeline.transcripts == []


async def test_a_transcript_needs_csrf_goes_through_the_pipeline_and_is_audited(dash: Dash, tmp_path: Path) -> None:
    ids = await _voice_world(dash, tmp_path)
    await dash.login("town_a")
    forged = await dash.client.post(
        f"/messages/{ids['shiqiao']}/transcript", data={"text": "路灯坏了", "back": "/digest"}, allow_redirects=False
    )
    assert forged.status in (400, 403) and dash.pipeline.transcripts == []
    other = await dash.post(f"/messages/{ids['longshan']}/transcript", {"text": "路灯坏了", "back": "/digest"})
    assert other.status == 404 and dash.pipeline.transcripts == []
    done = await dash.post(
        f"/messages/{ids['shiqiao']}/transcript", {"text": "村口的路灯坏了一个多月了没人修", "back": "//evil.example"}
    )
    assert done.status == 302 and done.headers["Location"] == "/digest?transcribed=ticket"
    assert dash.pipeline.transcripts == [(ids["shiqiao"], "村口的路灯坏了一个多月了没人修", "town_a")]
    empty = await dash.post(f"/messages/{ids['shiqiao']}/transcript", {"text": "  ", "back": "/digest"})
    assert empty.status == 400 and "不能为空" in await empty.text()
    async with dash.factory() as session:
        from sqlmodel import select

        rows = (await session.exec(select(AuditLog).where(AuditLog.action == "transcribe_voice"))).all()
    assert [(r.username, r.target) for r in rows] == [("town_a", f"message:{ids['shiqiao']}")]
    await dash.login("admin")
    page = await (await dash.client.get("/audit")).text()
    assert "转写语音" in page and "村口的路灯坏了" in page


async def test_link_cards_and_files_show_escaped_without_a_live_link(dash: Dash, tmp_path: Path) -> None:
    ids = await _voice_world(dash, tmp_path)
    flag_ids: dict[str, int] = {}
    async with dash.factory() as session, session.begin():
        for key in ("link", "file"):
            message = await session.get(Message, ids[key])
            assert message is not None
            flag = Flag(
                message_id=ids[key], at=message.at, group_name=message.group_name, sender_name="村民甲",
                county="舒城县", township="城关镇", village="石桥村", labels=["spam"], severity="low",
            )
            session.add(flag)
            await session.flush()
            assert flag.id is not None
            flag_ids[key] = flag.id
    await dash.login("town_a")
    link_page = await (await dash.client.get(f"/flags/{flag_ids['link']}")).text()
    assert "停水通知&lt;script&gt;" in link_page and "<script>alert(1)</script>" not in link_page
    assert "来自 mp.weixin.qq.com" in link_page and "明天8点到17点检修" in link_page
    assert "javascript:" not in link_page and "href=\"http" not in link_page
    file_page = await (await dash.client.get(f"/flags/{flag_ids['file']}")).text()
    assert "低保名单.xlsx" in file_page and "24.0 KB" in file_page


async def test_a_transcript_with_a_phone_number_is_never_shown_unmasked(dash: Dash, tmp_path: Path) -> None:
    ids = await _voice_world(dash, tmp_path)
    said = "路灯坏了,电话13912345678"
    async with dash.factory() as session, session.begin():
        await notes_repo.set_transcript(
            session, message_id=ids["shiqiao"], text=said, source="staff", by="admin", at=T0
        )
        message = await session.get(Message, ids["shiqiao"])
        assert message is not None
        message.text = said
        session.add(message)
        flag = Flag(
            message_id=ids["shiqiao"], at=message.at, group_name=message.group_name, sender_name="村民甲",
            county="舒城县", township="城关镇", village="石桥村", labels=["abuse"], severity="low",
        )
        session.add(flag)
        await session.flush()
        flag_id = flag.id
    await dash.login("town_a")
    page = await (await dash.client.get(f"/flags/{flag_id}")).text()
    assert "人工转写" in page and "路灯坏了" in page
    assert "13912345678" not in page and "已隐去" in page  # not even in the form's text box
    await dash.login("admin")
    page = await (await dash.client.get(f"/flags/{flag_id}")).text()
    assert f">{said}</textarea>" in page  # who may see numbers edits the transcript as it is
