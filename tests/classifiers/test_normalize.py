from __future__ import annotations

import pytest

from classifiers import Classifier
from classifiers.normalize import Normalizer


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer()


def test_traditional_to_simplified(norm: Normalizer) -> None:
    assert norm.normalize("路燈壞了") == "路灯坏了"


def test_full_width_to_half_width(norm: Normalizer) -> None:
    assert norm.normalize("８点到１７点，ＯＫ") == "8点到17点,ok"


def test_emoji_and_wechat_placeholders_removed(norm: Normalizer) -> None:
    assert norm.normalize("停水了😭😭[捂脸][图片] [语音]") == "停水了"
    assert norm.normalize("[圖片]") == ""


def test_unknown_brackets_are_kept(norm: Normalizer) -> None:
    assert "[停水通知]" in norm.normalize("[停水通知]明天检修")


def test_repeated_characters_shortened(norm: Normalizer) -> None:
    assert norm.normalize("哈哈哈哈哈") == "哈哈"
    assert norm.normalize("停水了!!!!!???") == "停水了!?"


def test_core_drops_punctuation_and_spaces(norm: Normalizer) -> None:
    assert Normalizer.core(norm.normalize("停水了, 什么时候 来水?")) == "停水了什么时候来水"


@pytest.mark.parametrize(
    ("twin", "clean"),
    [
        ("路燈壞了一個禮拜了,有人管沒有", "路灯坏了一个礼拜了,有人管没有"),
        ("停水三天了什么时候来水", "停水三天了,什么时候来水?"),
        ("停 水 三 天 了 什 么 时 候 来 水", "停水三天了,什么时候来水?"),
        ("停水三天了！！！什么时候来水？？😡😡", "停水三天了!什么时候来水?"),
        ("村干部都是吃干饭的路堵了一上午没人管", "村干部都是吃干饭的!路堵了一上午没人管"),
        ("今年什麼時候徵兵我們村有名額嗎", "今年什么时候征兵?我们村有名额吗?"),
        ("犬子新婚略備薄酒敬請光臨🎉", "犬子新婚,略备薄酒,敬请光临"),
        ("我们组没停电啊[捂脸]", "我们组没停电啊"),
    ],
)
def test_twins_classify_the_same(clf: Classifier, twin: str, clean: str) -> None:
    # as the bot classifies them: every sender has a role (an unknown member is a villager)
    a, b = clf.classify(twin, role="villager"), clf.classify(clean, role="villager")
    assert (a.labels, a.category, a.severity) == (b.labels, b.category, b.severity)


def test_normalize_exposed_on_classifier(clf: Classifier) -> None:
    assert clf.normalize("路燈壞了！") == "路灯坏了!"


def test_keywords_are_content_words(clf: Classifier) -> None:
    kw = clf.keywords("石桥村张湾组连续三天停水了,老人小孩怎么办")
    assert "停水" in kw
    assert "了" not in kw
    assert clf.keywords("张湾组停水三天了") & kw
