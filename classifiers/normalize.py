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
_RUN_RE = re.compile(r"(.)\1+", re.DOTALL)
_WORD_RE = re.compile(r"[\w\s]")


def _shorten_run(m: re.Match[str]) -> str:
    ch = m.group(1)
    if not _WORD_RE.match(ch):
        return ch
    run = m.group(0)
    return run if len(run) == 2 else ch + ch


_NON_CORE_RE = re.compile(r"[^\w#@%]+")


# Emoji, pictographs, dingbats, variation selectors, zero-width joiners, private use, tags, controls and
# lone surrogates: never meaningful for the rules, and removed in one regular-expression pass.
_JUNK_RE = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe00-\ufe0f\u200b-\u200d\u2060\u20e3"
    "\ufeff\ufffd\ue000-\uf8ff\U000e0000-\U000e007f\U000f0000-\U0010ffff\x00-\x08\x0b\x0c"
    "\x0e-\x1f\x7f-\x9f\ud800-\udfff]+"
)


class Normalizer:
    """Stateless apart from its OpenCC converter; safe to share between threads."""

    def __init__(self) -> None:
        self._t2s = opencc.OpenCC("t2s")

    def normalize(self, text: str) -> str:
        if not unicodedata.is_normalized("NFKC", text):
            text = unicodedata.normalize("NFKC", text)
        text = _JUNK_RE.sub(" ", text)
        text = self._t2s.convert(text)
        text = _PLACEHOLDER_RE.sub(lambda m: " " if m.group(1).lower() in PLACEHOLDERS else m.group(0), text)
        text = text.lower()
        text = _RUN_RE.sub(_shorten_run, text)
        return _SPACE_RE.sub(" ", text).strip()

    @staticmethod
    def core(normalized: str) -> str:
        """The characters rules see: letters, digits, CJK and a few signs (# @ %), nothing else."""
        return _NON_CORE_RE.sub("", normalized)
