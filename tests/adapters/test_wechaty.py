"""WechatyAdapter against the real Wechaty puppet service (wechaty-puppet-service over PuppetMock).

The Node side is tests/wechaty/fixture.mjs; tests/adapters/conftest.py starts it and talks to its
control API. These tests are marked `wechaty` and are never skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.base import Adapter, AdapterError, AdapterState
from bot.adapters.wechaty import WechatyAdapter, WechatyConnectError
from bot.messages import IncomingMessage, MessageKind, OutgoingMessage
from bot.voice import silk_to_wav
from tests.voice.samples import silk_voice
from tests.wechaty.service import GAO, LI_CADRE, PEOPLE, ROOM_ID, ROOM_TOPIC, WANG, ZHANG, Inbox, WechatyService

pytestmark = [pytest.mark.wechaty]

ACCOUNT = "shiqiao-bot"


async def wait_state(adapter: WechatyAdapter, state: AdapterState, timeout: float) -> float:
    """Seconds it took for the adapter to reach `state`."""
    started = time.monotonic()
    while adapter.health().state != state:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"adapter not {state} within {timeout:.0f} s: {adapter.health()}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def make_adapter(service: WechatyService, **kwargs: object) -> WechatyAdapter:
    options: dict[str, object] = {"endpoint": service.endpoint, "token": service.token}
    options.update(kwargs)
    return WechatyAdapter(ACCOUNT, **options)  # type: ignore[arg-type]


@dataclass
class Live:
    adapter: WechatyAdapter
    inbox: Inbox
    service: WechatyService


@pytest.fixture
async def live(wechaty_service: WechatyService) -> AsyncIterator[Live]:
    """A started adapter, logged in, with an empty sent log."""
    if wechaty_service.proc is None or wechaty_service.proc.poll() is not None:
        wechaty_service.start()
    await wechaty_service.clear_sent()
    inbox = Inbox()
    adapter = make_adapter(wechaty_service)
    await adapter.start(inbox)
    try:
        await wait_state(adapter, AdapterState.CONNECTED, 10)
        yield Live(adapter, inbox, wechaty_service)
    finally:
        await adapter.stop()


def image_bytes(size: int, seed: int = 1) -> bytes:
    """A JPEG-looking blob of `size` bytes that no compression or text handling would leave intact."""
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
    body = hashlib.shake_256(seed.to_bytes(4, "big")).digest(size - len(head) - 2)
    return head + body + b"\xff\xd9"


def test_satisfies_the_adapter_protocol() -> None:
    adapter: Adapter = WechatyAdapter(ACCOUNT, endpoint="127.0.0.1:1", token="t")
    assert adapter.health().state == AdapterState.STOPPED
    assert adapter.health().adapter == "wechaty"


@pytest.mark.parametrize("endpoint", ["localhost", "127.0.0.1:", "http://x:1/", "h:99999"])
def test_malformed_endpoint_is_refused_at_once(endpoint: str) -> None:
    with pytest.raises(WechatyConnectError, match="endpoint"):
        WechatyAdapter(ACCOUNT, endpoint=endpoint, token="t")


def test_token_that_cannot_be_metadata_is_refused_without_echoing_it() -> None:
    with pytest.raises(WechatyConnectError) as caught:
        WechatyAdapter(ACCOUNT, endpoint="127.0.0.1:1", token="密钥 with space")
    assert "密钥" not in str(caught.value)


async def test_room_message_arrives_with_topic_sender_and_mentions(live) -> None:
    inbox = live.inbox
    service = live.service
    before = datetime.now(UTC) - timedelta(seconds=5)
    message_id = await service.say(GAO, "@李书记 村口路灯坏了三天了，晚上很黑", mentions=[LI_CADRE])
    message = await inbox.next()
    assert message.platform_id == message_id
    assert message.account == ACCOUNT
    assert message.kind == MessageKind.TEXT
    assert message.text == "@李书记 村口路灯坏了三天了，晚上很黑"
    assert message.group_id == ROOM_ID
    assert message.group_topic == ROOM_TOPIC
    assert message.sender_id == GAO
    assert message.sender_name == "高某林"
    assert message.mention_ids == (LI_CADRE,)
    assert message.mention_names == ("李书记",)
    assert not message.is_private
    assert message.at.tzinfo is not None and before < message.at < datetime.now(UTC) + timedelta(seconds=5)
    assert message.raw and json.loads(message.raw)["wireType"] == "TEXT"


async def test_private_message_has_no_group(live) -> None:
    inbox = live.inbox
    service = live.service
    await service.say(ZHANG, "我想咨询一下低保怎么申请", room=False)
    message = await inbox.next()
    assert message.is_private and message.group_id is None and message.group_topic is None
    assert (message.sender_id, message.sender_name) == (ZHANG, "张三")
    assert message.text == "我想咨询一下低保怎么申请"


async def test_bot_sends_text_with_mention_and_skips_its_own_echo(live) -> None:
    adapter = live.adapter
    inbox = live.inbox
    service = live.service
    text = "@高某林 您反映的问题已登记【工单 #12】，将在10个工作日内办理。"
    sent_id = await adapter.send(
        OutgoingMessage(
            account=ACCOUNT, chat_id=ROOM_ID, is_group=True, text=text, mention_ids=(GAO,), mention_names=("高某林",)
        )
    )
    record = await service.wait_sent(lambda item: item["kind"] == "text")
    assert record["text"] == text
    assert record["mentionIds"] == [GAO]
    assert record["conversationId"] == ROOM_ID and record["inRoom"]
    assert sent_id == record["id"]
    # The service echoes the bot's own message as an event; the adapter must not hand it on.
    await service.say(WANG, "谢谢")
    assert (await inbox.next()).sender_id == WANG

    private_id = await adapter.send(OutgoingMessage(account=ACCOUNT, chat_id=LI_CADRE, is_group=False, text="私聊"))
    record = await service.wait_sent(lambda item: item["id"] == private_id)
    assert record["conversationId"] == LI_CADRE and not record["inRoom"]


async def test_group_and_mentions_given_by_name_are_resolved(live, tmp_path: Path) -> None:
    """A group the bot has not heard from yet is addressed by name, a roster person who never spoke by
    name (the bot core then has no platform id for them); unknown names go out as plain text."""
    adapter, service = live.adapter, live.service
    await adapter.send(
        OutgoingMessage(
            account=ACCOUNT,
            chat_id=ROOM_TOPIC,
            is_group=True,
            text="@李书记 @不在群里的人 请查收",
            mention_ids=("李书记", "不在群里的人"),
            mention_names=("李书记", "不在群里的人"),
        )
    )
    record = await service.wait_sent(lambda item: item["kind"] == "text")
    assert record["conversationId"] == ROOM_ID and record["mentionIds"] == [LI_CADRE]

    media_root = tmp_path / "media"
    (media_root / "ab").mkdir(parents=True)
    (media_root / "ab" / "photo.jpg").write_bytes(image_bytes(50_000))
    with_media = make_adapter(service, media_root=media_root)
    adapter_inbox = Inbox()
    await adapter.stop()  # one event stream per service
    await with_media.start(adapter_inbox)
    try:
        await wait_state(with_media, AdapterState.CONNECTED, 10)
        await with_media.send(
            OutgoingMessage(account=ACCOUNT, chat_id=ROOM_ID, is_group=True, image_path="ab/photo.jpg")
        )
        record = await service.wait_sent(lambda item: item["kind"] == "file")
        assert record["size"] == 50_000
        with pytest.raises(AdapterError, match="no group"):
            await with_media.send(OutgoingMessage(account=ACCOUNT, chat_id="不存在的群", is_group=True, text="x"))
    finally:
        await with_media.stop()


async def test_large_image_downloads_byte_exact(live) -> None:
    adapter = live.adapter
    inbox = live.inbox
    service = live.service
    photo = image_bytes(1_300_000)
    await service.say(LI_CADRE, image=photo, name="路灯修好了.jpg")
    message = await inbox.next()
    assert message.kind == MessageKind.IMAGE
    assert message.attachment_ref and message.sender_name == "李书记"
    assert message.group_topic == ROOM_TOPIC
    started = time.monotonic()
    data = await adapter.download(message)
    assert len(data) == len(photo) and data == photo
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("size", [400_000, 3_300_000], ids=["one-call", "streamed"])
async def test_bot_sends_an_image_the_room_receives(live, tmp_path: Path, size: int) -> None:
    adapter = live.adapter
    service = live.service
    path = tmp_path / "办结照片.jpg"
    photo = image_bytes(size, seed=size)
    path.write_bytes(photo)
    sent_id = await adapter.send(OutgoingMessage(account=ACCOUNT, chat_id=ROOM_ID, is_group=True, image_path=str(path)))
    record = await service.wait_sent(lambda item: item["kind"] == "file")
    assert record["conversationId"] == ROOM_ID
    assert record["name"] == "办结照片.jpg"
    assert record["size"] == size
    assert record["sha256"] == hashlib.sha256(photo).hexdigest()
    assert sent_id == record["id"]


async def test_voice_file_link_and_quote_messages(live) -> None:
    adapter = live.adapter
    inbox = live.inbox
    service = live.service
    voice = silk_voice(1.5)  # a real SILK file, as WeChat writes it
    await service.say(GAO, file=voice, name="语音.silk", voice=True)
    message = await inbox.next()
    assert message.kind == MessageKind.VOICE and message.attachment_ref
    downloaded = await adapter.download(message)
    assert downloaded == voice
    wav = silk_to_wav(downloaded)  # what the dashboard plays
    assert wav[:4] == b"RIFF" and 1.4 < (len(wav) - 44) / 48_000 < 1.6

    document = b"%PDF-1.4\n" + os.urandom(5000)
    await service.say(ZHANG, file=document, name="低保申请表.pdf", room=False)
    message = await inbox.next()
    assert message.kind == MessageKind.FILE and message.attachment_name == "低保申请表.pdf"
    assert message.text == "低保申请表.pdf"  # a file is classified by its name
    assert message.is_private
    assert await adapter.download(message) == document

    await service.say(
        WANG, url={"title": "关于农村低保的通知", "url": "https://example.gov.cn/dibao", "description": "县民政局"}
    )
    message = await inbox.next()
    assert message.kind == MessageKind.LINK
    assert message.text == "关于农村低保的通知\n县民政局"  # classified by title and description
    assert message.card is not None and message.card.url == "https://example.gov.cn/dibao"

    await service.say(GAO, mini_program={"title": "石桥村红白喜事登记", "description": "", "appid": "wx1"})
    message = await inbox.next()
    assert message.kind == MessageKind.LINK and message.text == "石桥村红白喜事登记"
    assert message.card is not None and message.card.mini_program

    await service.say(LI_CADRE, "「高某林：村口路灯坏了」\n- - - - - - - - - - - - - - -\n#12 已安排电工今天下午维修")
    message = await inbox.next()
    assert message.kind == MessageKind.TEXT
    assert message.quote_text == "高某林：村口路灯坏了"
    assert message.text == "#12 已安排电工今天下午维修"


async def test_unknown_types_and_broken_payloads_become_other_and_the_bot_goes_on(live, caplog) -> None:
    inbox = live.inbox
    service = live.service
    caplog.set_level(logging.WARNING, logger="bot.adapters.wechaty")
    await service.say(GAO, "[转账] 200元", type=11)  # a money transfer
    message = await inbox.next()
    assert message.kind == MessageKind.OTHER
    assert message.sender_name == "高某林" and message.group_topic == ROOM_TOPIC
    assert json.loads(message.raw or "{}")["wireType"] == "TRANSFER"

    await service.say(GAO, "新版本才有的类型", type=42)  # a number no puppet defines yet
    message = await inbox.next()
    assert message.kind == MessageKind.OTHER and json.loads(message.raw or "{}")["type"] == 42

    await service.emit("msg_that_has_no_payload")
    message = await inbox.next()
    assert message.kind == MessageKind.OTHER and message.platform_id == "msg_that_has_no_payload"
    assert "error" in json.loads(message.raw or "{}")
    assert "msg_that_has_no_payload" in caplog.text

    await service.say(ZHANG, "还能收到吗")
    assert (await inbox.next()).text == "还能收到吗"


async def test_a_failing_handler_is_logged_and_the_stream_goes_on(wechaty_service: WechatyService, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="bot.adapters.wechaty")
    inbox = Inbox()
    calls = 0

    async def flaky(message: IncomingMessage) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom in the handler")
        await inbox(message)

    adapter = make_adapter(wechaty_service)
    await adapter.start(flaky)
    try:
        await wait_state(adapter, AdapterState.CONNECTED, 10)
        first = await wechaty_service.say(GAO, "第一条")
        await wechaty_service.say(GAO, "第二条")
        assert (await inbox.next()).text == "第二条"
        assert "boom in the handler" in caplog.text and first in caplog.text and "高某林" in caplog.text
        assert adapter.health().state == AdapterState.CONNECTED
    finally:
        await adapter.stop()
    assert adapter.health().state == AdapterState.STOPPED


async def test_room_members(live) -> None:
    adapter = live.adapter
    members = {m.platform_id: m.name for m in await adapter.room_members(ROOM_ID)}
    assert members == PEOPLE
    with pytest.raises(AdapterError, match="no-such-room"):
        await adapter.room_members("no-such-room@chatroom")


async def test_wrong_token_fails_fast_with_a_clear_error(wechaty_service: WechatyService) -> None:
    adapter = make_adapter(wechaty_service, token="wrong-token-123")
    started = time.monotonic()
    with pytest.raises(WechatyConnectError) as caught:
        await adapter.start(Inbox())
    assert time.monotonic() - started < 5
    text = str(caught.value)
    assert wechaty_service.endpoint in text and "token" in text and ACCOUNT in text
    assert "wrong-token-123" not in text  # the service echoes the token; we do not
    assert adapter.health().state == AdapterState.FAILED
    await adapter.stop()


async def test_tls_mismatch_fails_fast_both_ways(
    wechaty_service: WechatyService, wechaty_tls_service: WechatyService
) -> None:
    plaintext_client = make_adapter(wechaty_tls_service)
    with pytest.raises(WechatyConnectError, match="tls = true") as caught:
        await plaintext_client.start(Inbox())
    assert wechaty_tls_service.endpoint in str(caught.value)

    tls_client = make_adapter(wechaty_service, tls=True)
    with pytest.raises(WechatyConnectError, match="tls = false") as caught:
        await tls_client.start(Inbox())
    assert wechaty_service.endpoint in str(caught.value)

    untrusted = make_adapter(wechaty_tls_service, tls=True)
    with pytest.raises(WechatyConnectError, match="not trusted"):
        await untrusted.start(Inbox())


async def test_tls_with_the_services_ca(wechaty_tls_service: WechatyService) -> None:
    ca, server_name = await wechaty_tls_service.tls_ca()
    context = ssl.create_default_context(cadata=ca)
    inbox = Inbox()
    adapter = make_adapter(wechaty_tls_service, ssl_context=context, tls_server_name=server_name)
    await adapter.start(inbox)
    try:
        await wait_state(adapter, AdapterState.CONNECTED, 10)
        await wechaty_tls_service.say(GAO, "加密连接也能收到")
        assert (await inbox.next()).text == "加密连接也能收到"
    finally:
        await adapter.stop()


async def test_service_down_at_start_keeps_retrying_then_connects(spare_service: WechatyService, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters.wechaty")
    inbox = Inbox()
    adapter = make_adapter(spare_service)
    started = time.monotonic()
    await adapter.start(inbox)  # nothing listens yet: returns, does not raise
    try:
        assert time.monotonic() - started < 3
        health = adapter.health()
        assert health.state == AdapterState.RECONNECTING and spare_service.endpoint in health.detail
        assert spare_service.endpoint in caplog.text and "retrying" in caplog.text
        with pytest.raises(AdapterError, match="not connected"):
            await adapter.send(OutgoingMessage(account=ACCOUNT, chat_id=ROOM_ID, is_group=True, text="早"))
        await asyncio.sleep(2)
        spare_service.start()
        await wait_state(adapter, AdapterState.CONNECTED, 15)
        await spare_service.say(GAO, "服务起来了")
        assert (await inbox.next()).text == "服务起来了"
    finally:
        await adapter.stop()


async def test_reconnects_after_the_service_is_killed_and_restarted(live, caplog) -> None:
    adapter = live.adapter
    inbox = live.inbox
    service = live.service
    caplog.set_level(logging.WARNING, logger="bot.adapters.wechaty")
    await service.say(GAO, "重启前")
    assert (await inbox.next()).text == "重启前"

    service.kill()
    await wait_state(adapter, AdapterState.RECONNECTING, 5)
    assert "lost" in adapter.health().detail
    with pytest.raises(AdapterError):
        await adapter.send(OutgoingMessage(account=ACCOUNT, chat_id=ROOM_ID, is_group=True, text="断线中"))
    await asyncio.sleep(3)  # stay down across a few reconnect attempts
    assert adapter.health().state == AdapterState.RECONNECTING

    await asyncio.to_thread(service.start)
    took = await wait_state(adapter, AdapterState.CONNECTED, 15)
    assert took < 15
    await service.say(GAO, "重启后")
    message = await inbox.next()
    assert message.text == "重启后" and message.group_topic == ROOM_TOPIC
    sent_id = await adapter.send(OutgoingMessage(account=ACCOUNT, chat_id=ROOM_ID, is_group=True, text="恢复了"))
    assert sent_id
    assert "lost the Wechaty puppet service" in caplog.text


async def test_a_token_revoked_while_running_shows_failed_and_recovers(wechaty_service: WechatyService) -> None:
    service = wechaty_service
    if service.proc is None or service.proc.poll() is not None:
        service.start()
    inbox = Inbox()
    adapter = make_adapter(service, reconnect_min=0.2, reconnect_max=1.0)
    await adapter.start(inbox)
    good_token = service.token
    try:
        await wait_state(adapter, AdapterState.CONNECTED, 10)
        service.token = "rotated-token"  # the provider revokes ours
        await asyncio.to_thread(service.restart)
        await wait_state(adapter, AdapterState.FAILED, 10)
        assert "token" in adapter.health().detail and good_token not in adapter.health().detail
        service.token = good_token  # renewed: the adapter recovers without a restart
        await asyncio.to_thread(service.restart)
        await wait_state(adapter, AdapterState.CONNECTED, 10)
        await service.say(GAO, "换了令牌也能收到")
        assert (await inbox.next()).text == "换了令牌也能收到"
    finally:
        await adapter.stop()
        if service.token != good_token:
            service.token = good_token
            service.restart()
