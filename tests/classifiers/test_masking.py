"""Phone and ID numbers are masked in every format people write them in a chat."""

from __future__ import annotations

import pytest

from classifiers.masking import mask_numbers


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("13912345678", "139****5678"),
        ("电话139-1234-5678。", "电话139-****-5678。"),
        ("联系 139 1234 5678 找我", "联系 139 **** 5678 找我"),
        ("+86 13912345678", "+86 139****5678"),
        ("+86-139-1234-5678", "+86-139-****-5678"),
        ("＋86 13912345678", "＋86 139****5678"),
        ("008613912345678", "0086139****5678"),
        ("0086 139 1234 5678", "0086 139 **** 5678"),
        ("１３９１２３４５６７８", "１３９****５６７８"),
        ("１３９－１２３４－５６７８", "１３９－****－５６７８"),
        ("身份证11010119900307123X", "身份证110101********123X"),
        ("身份证11010119900307123x号", "身份证110101********123x号"),
        ("110101199003071234", "110101********1234"),
        ("110101 19900307 1234", "110101 ******** 1234"),
        ("１１０１０１１９９００３０７１２３Ｘ", "１１０１０１********１２３Ｘ"),
        ("两个号码13912345678和13812345678", "两个号码139****5678和138****5678"),
    ],
)
def test_common_formats_are_masked(text: str, masked: str) -> None:
    assert mask_numbers(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "2026年9月13日 13:00 开会",
        "订单号 213912345678",  # 12 digits: not a mobile number
        "12912345678",  # no mobile number starts with 12
        "金额 1234567890 元",
        "已脱敏 139****5678",
        "",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert mask_numbers(text) == text


def test_masking_is_idempotent() -> None:
    text = "电话 +86 139-1234-5678,身份证 11010119900307123X"
    once = mask_numbers(text)
    assert mask_numbers(once) == once
    assert "1234" not in once.replace("123X", "")
