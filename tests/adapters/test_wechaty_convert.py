"""The Wechaty adapter's pure parts: payload → IncomingMessage, events, FileBox, endpoints, error text.

No service needed (these run in `make unit`); the real puppet service is in test_wechaty.py.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import grpclib.exceptions
import pytest
from grpclib.const import Status
from wechaty_grpc.wechaty import puppet as pb

from bot.adapters.wechaty import WechatyConnectError, convert
from bot.adapters.wechaty.wire import Wire, describe, parse_endpoint, scrub
from bot.messages import MessageKind

NOW = datetime(2026, 9, 7, 6, 48, tzinfo=UTC)
MS = int(datetime(2026, 9, 7, 6, 48, tzinfo=UTC).timestamp() * 1000)  # 2026-09-07T06:48:00Z in milliseconds


def payload(**fields: object) -> pb.MessagePayloadResponse:
    values: dict[str, object] = {
        "id": "m1",
        "type": int(Wire.TEXT),
        "from_id": "c-gao",
        "room_id": "r-1",
        "to_id": "",
        "text": "路灯坏了",
        "timestamp": MS,
    }
    values.update(fields)
    return pb.MessagePayloadResponse(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wire", "kind"),
    [
        (Wire.TEXT, MessageKind.TEXT),
        (Wire.IMAGE, MessageKind.IMAGE),
        (Wire.AUDIO, MessageKind.VOICE),
        (Wire.URL, MessageKind.LINK),
        (Wire.MINI_PROGRAM, MessageKind.LINK),
        (Wire.ATTACHMENT, MessageKind.FILE),
        (Wire.VIDEO, MessageKind.FILE),
        (Wire.RED_ENVELOPE, MessageKind.OTHER),
        (Wire.RECALLED, MessageKind.OTHER),
    ],
)
def test_wire_types_map_to_our_kinds(wire: Wire, kind: MessageKind) -> None:
    assert convert.message_kind(int(wire)) == kind


def test_unknown_wire_type_is_other_and_named_by_number() -> None:
    assert convert.message_kind(99) == MessageKind.OTHER
    assert convert.raw_payload(payload(type=99))["wireType"] == "TYPE_99"


def test_timestamps_in_milliseconds_seconds_or_missing() -> None:
    assert convert.to_datetime(MS, fallback=NOW) == datetime(2026, 9, 7, 6, 48, tzinfo=UTC)
    assert convert.to_datetime(MS // 1000, fallback=NOW) == datetime(2026, 9, 7, 6, 48, tzinfo=UTC)
    assert convert.to_datetime(0, fallback=NOW) is NOW


def test_a_group_text_becomes_an_incoming_message() -> None:
    message = convert.to_incoming(
        payload(mention_ids=["c-li"]),
        account="bot-1",
        message_id="m1",
        received_at=NOW,
        topic="石桥村监督服务群",
        sender_name="高某林",
        mention_names=("李书记",),
    )
    assert message.platform_id == "m1"
    assert message.account == "bot-1"
    assert message.kind == MessageKind.TEXT
    assert message.text == "路灯坏了"
    assert (message.sender_id, message.sender_name) == ("c-gao", "高某林")
    assert (message.group_id, message.group_topic) == ("r-1", "石桥村监督服务群")
    assert (message.mention_ids, message.mention_names) == (("c-li",), ("李书记",))
    assert message.at == datetime(2026, 9, 7, 6, 48, tzinfo=UTC)
    assert message.attachment_ref is None and message.quote_text is None
    raw = json.loads(message.raw or "")
    assert raw["wireType"] == "TEXT" and raw["talkerId"] == "c-gao" and raw["roomId"] == "r-1"


def test_a_private_message_has_no_group() -> None:
    message = convert.to_incoming(payload(room_id="", to_id="bot"), account="a", message_id="m1", received_at=NOW)
    assert message.is_private and message.group_id is None and message.group_topic is None


def test_a_quoted_reply_is_split() -> None:
    text = "「高某林：路灯坏了」\n- - - - - - - - - - - - - - -\n#3 已修好"
    message = convert.to_incoming(payload(text=text), account="a", message_id="m1", received_at=NOW)
    assert message.quote_text == "高某林：路灯坏了"
    assert message.text == "#3 已修好"
    assert convert.split_quote("no quote") == (None, "no quote")


def test_an_image_keeps_its_message_id_for_download() -> None:
    message = convert.to_incoming(
        payload(id="", type=int(Wire.IMAGE), text="", filename="photo.jpg"),
        account="a",
        message_id="m9",
        received_at=NOW,
    )
    assert message.kind == MessageKind.IMAGE
    assert message.platform_id == "m9"  # the payload's id was empty
    assert (message.attachment_ref, message.attachment_name) == ("m9", "photo.jpg")


def test_a_link_card_reads_as_title_and_description_and_keeps_its_address() -> None:
    card = json.dumps({"title": "停水通知", "description": "明日检修", "url": "https://example.org/n"})
    message = convert.to_incoming(
        payload(type=int(Wire.URL), text="[链接]"), account="a", message_id="m1", received_at=NOW, url_link=card
    )
    assert message.kind == MessageKind.LINK
    assert message.text == "停水通知\n明日检修"  # classified by what it says, not by its address
    assert message.card is not None and message.card.url == "https://example.org/n"
    assert json.loads(message.raw or "")["urlLink"]["title"] == "停水通知"
    mini = convert.to_incoming(
        payload(type=int(Wire.MINI_PROGRAM), text=""),
        account="a",
        message_id="m2",
        received_at=NOW,
        mini_program=json.dumps({"title": "石桥村红白喜事登记", "description": "", "pagePath": "pages/index"}),
    )
    assert mini.kind == MessageKind.LINK and mini.text == "石桥村红白喜事登记"
    assert mini.card is not None and mini.card.mini_program and mini.card.url == ""
    named = convert.to_incoming(
        payload(type=int(Wire.ATTACHMENT), text="", filename="低保名单.xlsx"),
        account="a",
        message_id="m3",
        received_at=NOW,
    )
    assert named.kind == MessageKind.FILE and named.text == "低保名单.xlsx"  # a file is classified by its name
    broken = convert.to_incoming(
        payload(type=int(Wire.URL), text="[链接]"), account="a", message_id="m1", received_at=NOW, url_link="{"
    )
    assert broken.text == "[链接]"


def test_own_messages_are_recognised() -> None:
    assert convert.is_own(payload(from_id="bot"), "bot")
    assert not convert.is_own(payload(from_id="c-gao"), "bot")
    assert not convert.is_own(payload(from_id=""), None)


def test_an_unreadable_message_is_other_with_the_reason() -> None:
    message = convert.unreadable("m5", account="a", reason="NOT_FOUND: gone", received_at=NOW)
    assert message.kind == MessageKind.OTHER and message.at is NOW
    assert json.loads(message.raw or "") == {"messageId": "m5", "error": "NOT_FOUND: gone"}


def test_event_payloads_are_objects() -> None:
    assert convert.event_payload('{"messageId": "m1"}') == {"messageId": "m1"}
    assert convert.event_payload("") == {}
    assert convert.event_payload("not json") == {"raw": "not json"}
    assert convert.event_payload("[1, 2]") == {"raw": [1, 2]}


def test_names_shown_in_groups_and_contacts() -> None:
    assert convert.member_display_name("老高", "高某林") == "老高"
    assert convert.member_display_name("", "高某林") == "高某林"
    assert convert.contact_display_name("", "", "c-1") == "c-1"
    assert convert.contact_display_name("", "别名", "c-1") == "别名"


def test_filebox_json_carries_the_bytes() -> None:
    box = json.loads(convert.filebox_json(b"\xff\xd8data", "照片.jpg"))
    assert box["type"] == 1 and box["boxType"] == 1 and box["name"] == "照片.jpg"
    assert base64.b64decode(box["base64"]) == b"\xff\xd8data"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [("127.0.0.1:8788", ("127.0.0.1", 8788)), ("gateway.local:443", ("gateway.local", 443)), ("[::1]:80", ("::1", 80))],
)
def test_endpoints(endpoint: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["8788", "host", "http://host:1", "host:0", "host:70000", ""])
def test_bad_endpoints(endpoint: str) -> None:
    with pytest.raises(WechatyConnectError):
        parse_endpoint(endpoint)


def test_errors_never_show_the_token() -> None:
    error = grpclib.exceptions.GRPCError(Status.UNAUTHENTICATED, "token s3cret-token is invalid")
    assert describe(error, "s3cret-token") == "UNAUTHENTICATED: token *** is invalid"
    assert describe(OSError("refused"), "t") == "OSError: refused"
    assert scrub("no token here", "") == "no token here"
