"""Images the OCR tests post: invitation cards (请柬, red with gold or black text) and a 停水通知, drawn with
the CJK font the project installs for its tests (fonts-wqy-microhei, the Makefile's ``chromium`` target), and
bad files (corrupt, not an image, huge, a decompression bomb)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rapidfuzz.distance import Levenshtein

KNOWN_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc"),
)

GOLD = (244, 208, 96)
RED = (186, 18, 30)
BLACK = (20, 20, 20)

PARTY_CARD = (
    "请柬",
    "谨定于农历十月初八中午十二时",
    "为家父七十大寿举办寿宴",
    "地点：石桥村文化礼堂",
    "敬备薄酒二十桌",
    "恭候光临",
    "刘建国敬邀",
)
WEDDING_CARD = (
    "请柬",
    "谨定于2026年12月12日中午十一时",
    "为犬子新婚举办婚宴",
    "席设：河东村老年活动中心",
    "共设三十桌",
    "敬请光临",
)
WATER_NOTICE = (
    "停水通知",
    "因供水管道检修，石桥村张湾组",
    "定于12月3日8时至17时停水",
    "请村民提前储水",
    "石桥村村民委员会",
)


@cache
def cjk_font() -> Path:
    for path in KNOWN_FONTS:
        if path.is_file():
            return path
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", ":lang=zh"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and Path(found).is_file():
            return Path(found)
    raise RuntimeError("no CJK font: run `make chromium` (installs fonts-wqy-microhei)")


RGB = tuple[int, int, int]


def _draw(lines: tuple[str, ...], *, background: RGB, ink: RGB, title_ink: RGB | None = None) -> bytes:
    width, height = 900, 140 + 78 * len(lines)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    title = ImageFont.truetype(str(cjk_font()), 68)
    body = ImageFont.truetype(str(cjk_font()), 40)
    draw.rectangle((18, 18, width - 18, height - 18), outline=title_ink or ink, width=4)
    top = 40
    for index, line in enumerate(lines):
        font = title if index == 0 else body
        left = (width - draw.textlength(line, font=font)) / 2
        draw.text((left, top), line, font=font, fill=(title_ink or ink) if index == 0 else ink)
        top += 110 if index == 0 else 78
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def invitation_card(lines: tuple[str, ...] = PARTY_CARD, *, ink: tuple[int, int, int] = GOLD) -> bytes:
    """A red invitation card (电子请柬) as a JPEG, its text in ``ink`` (gold or black)."""
    return _draw(lines, background=RED, ink=ink, title_ink=GOLD)


def photographed(data: bytes) -> bytes:
    """``data`` as a phone photo of it: on a table, turned 4°, out of focus, noisy, a low-quality JPEG."""
    from PIL import ImageFilter

    card = Image.open(io.BytesIO(data)).convert("RGB")
    table = (90, 80, 70)
    photo = Image.new("RGB", (card.width + 200, card.height + 200), table)
    photo.paste(card, (100, 100))
    photo = photo.rotate(4, resample=Image.Resampling.BICUBIC, fillcolor=table).filter(ImageFilter.GaussianBlur(1.2))
    photo = Image.blend(photo, Image.effect_noise(photo.size, 25).convert("RGB"), 0.12)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=50)
    return out.getvalue()


def notice(lines: tuple[str, ...] = WATER_NOTICE) -> bytes:
    """A photo of a printed notice: black on white."""
    return _draw(lines, background=(250, 250, 246), ink=BLACK)


def accuracy(expected: str, recognised: str) -> float:
    """Character accuracy: 1 − edit distance / length, spaces and line breaks ignored."""
    want = "".join(expected.split())
    got = "".join(recognised.split())
    return 1 - Levenshtein.distance(want, got) / max(len(want), 1)


def corrupt_jpeg() -> bytes:
    """A JPEG cut off after its header: it opens, then fails to decode."""
    return notice()[:600]


def not_an_image() -> bytes:
    return b"<html><body>\xe4\xb8\x8d\xe6\x98\xaf\xe5\x9b\xbe\xe7\x89\x87</body></html>" * 20


def huge_file() -> bytes:
    """More bytes than any photo the bot reads (11 MB)."""
    return b"\xff\xd8\xff\xe0" + b"\0" * (11 * 1024 * 1024)


def png_bomb(side: int = 30_000) -> bytes:
    """A PNG declaring ``side`` × ``side`` pixels (900 megapixels) in a few kilobytes: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    data = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
