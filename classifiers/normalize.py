"""Text normalisation: a message and its clean twin must look the same to the rules.

Two forms are produced:
* ``normalize`` - readable: simplified characters, half-width, no emoji or WeChat placeholders,
  runs of repeated characters shortened, whitespace collapsed;
* ``core`` - what the rules see: ``normalize`` without punctuation and spaces, so that voice-to-text
  without punctuation and its punctuated twin give the same characters to the tokenizer.
"""

from __future__ import annotations

import re
import unicodedata

import opencc

# WeChat renders stickers and media as bracketed names in exported text.
PLACEHOLDERS = frozenset(
    """图片 语音 视频 文件 链接 表情 动画表情 位置 名片 红包 转账 小程序 聊天记录 音乐 视频号 撤回 拍一拍
    微笑 撇嘴 色 发呆 得意 流泪 害羞 闭嘴 睡 大哭 尴尬 发怒 调皮 呲牙 惊讶 难过 囧 抓狂 吐 偷笑 愉快 白眼
    傲慢 困 惊恐 憨笑 悠闲 咒骂 疑问 嘘 晕 衰 骷髅 敲打 再见 擦汗 抠鼻 鼓掌 坏笑 右哼哼 左哼哼 鄙视 委屈
    快哭了 阴险 亲亲 可怜 笑脸 生病 脸红 破涕为笑 恐惧 失望 无语 嘿哈 捂脸 奸笑 机智 皱眉 耶 吃瓜 加油 汗
    天啊 社会社会 旺柴 好的 打脸 哇 翻白眼 666 让我看看 叹气 苦涩 裂开 嘴唇 爱心 心碎 拥抱 强 弱 握手 胜利
    抱拳 勾引 拳头 ok 合十 啤酒 咖啡 蛋糕 玫瑰 凋谢 菜刀 炸弹 便便 月亮 太阳 庆祝 礼物 發 福 烟花 爆竹
    猪头 跳跳 发抖 转圈 emm 哈欠 大兵 奋斗 折磨 可爱 饥饿 微信红包""".split()  # noqa: SIM905
)
_PLACEHOLDER_RE = re.compile(r"\[([^\[\]\n]{1,6})\]")
_SPACE_RE = re.compile(r"\s+")
# Runs of three or more identical characters become two (哈哈哈哈 -> 哈哈); punctuation runs become one.
_REPEAT_RE = re.compile(r"(.)\1{2,}", re.DOTALL)
_PUNCT_REPEAT_RE = re.compile(r"([^\w\s])\1+")
_NON_CORE_RE = re.compile(r"[^\w#@%]+")


def _is_emoji_or_junk(ch: str) -> bool:
    cp = ord(ch)
    if 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x2B00 <= cp <= 0x2BFF:
        return True
    if cp in (0xFE0F, 0xFE0E, 0x200D, 0x200B, 0x200C, 0xFEFF, 0x20E3, 0xFFFD):
        return True
    if 0xE000 <= cp <= 0xF8FF or 0xE0000 <= cp <= 0xE007F or 0xFE00 <= cp <= 0xFE0F:
        return True
    cat = unicodedata.category(ch)
    # Symbols (So), controls, surrogates, unassigned: never carry meaning for the rules.
    return cat in ("So", "Cs", "Co", "Cn") or (cat == "Cc" and ch not in "\t\n\r")


class Normalizer:
    """Stateless apart from its OpenCC converter; safe to share between threads."""

    def __init__(self) -> None:
        self._t2s = opencc.OpenCC("t2s")

    def normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        text = "".join(" " if _is_emoji_or_junk(c) else c for c in text)
        text = self._t2s.convert(text)
        text = _PLACEHOLDER_RE.sub(lambda m: " " if m.group(1).lower() in PLACEHOLDERS else m.group(0), text)
        text = text.lower()
        text = _PUNCT_REPEAT_RE.sub(r"\1", text)
        text = _REPEAT_RE.sub(r"\1\1", text)
        return _SPACE_RE.sub(" ", text).strip()

    @staticmethod
    def core(normalized: str) -> str:
        """The characters rules see: letters, digits, CJK and a few signs (# @ %), nothing else."""
        return _NON_CORE_RE.sub("", normalized)
