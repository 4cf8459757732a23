"""The OCR worker's reading, in this process (one engine for the module: OCR is slow on 2 cores): the text of
rendered invitation cards and a notice, and every kind of bad file refused before it is decoded."""

from __future__ import annotations

import pytest

from bot.ocr import reader
from tests.ocr import images

LIMITS = {"max_pixels": 40_000_000, "max_side": 2048}


@pytest.fixture(scope="module")
def engine() -> object:
    return reader.engine()  # built once: the models load from the installed wheel, no network


@pytest.mark.parametrize(
    ("lines", "picture"),
    [
        (images.PARTY_CARD, lambda: images.invitation_card(images.PARTY_CARD, ink=images.GOLD)),
        (images.WEDDING_CARD, lambda: images.invitation_card(images.WEDDING_CARD, ink=images.BLACK)),
        (images.WATER_NOTICE, lambda: images.notice(images.WATER_NOTICE)),
        (images.PARTY_CARD, lambda: images.photographed(images.invitation_card(images.PARTY_CARD))),
    ],
    ids=["gold-card", "black-card", "water-notice", "photo-of-a-card"],
)
def test_cards_and_notice_are_read_with_high_character_accuracy(engine: object, lines, picture) -> None:  # type: ignore[no-untyped-def]
    reading = reader.read_image(picture(), **LIMITS)
    assert reading.status == reader.DONE, reading
    score = images.accuracy("".join(lines), reading.text)
    assert score >= 0.90, (score, reading.text)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", reader.NO_FILE),
        (images.corrupt_jpeg(), reader.CORRUPT),
        (images.not_an_image(), reader.NOT_IMAGE),
        (images.huge_file(), reader.TOO_LARGE),
        (images.png_bomb(), reader.TOO_MANY_PIXELS),
    ],
    ids=["empty", "corrupt", "not-image", "huge", "bomb"],
)
def test_bad_files_fail_with_their_reason_before_decoding(data: bytes, error: str) -> None:
    reading = reader.read_image(data, **LIMITS)
    assert (reading.status, reading.error) == (reader.FAILED, error)
    assert reading.text == ""


def test_a_large_photo_is_scaled_down_before_reading() -> None:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (6000, 4000), (255, 255, 255)).save(out, "JPEG")
    decoded = reader.decode(out.getvalue(), max_pixels=40_000_000, max_side=2048)
    assert isinstance(decoded, Image.Image) and max(decoded.size) <= 2048
    refused = reader.decode(out.getvalue(), max_pixels=10_000_000, max_side=2048)
    assert isinstance(refused, reader.Reading) and refused.error == reader.TOO_MANY_PIXELS
