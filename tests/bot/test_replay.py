"""`villagewatch replay`: script validation, the simulated clock, continuation on the same database."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from bot.clock import CHINA
from bot.config import load_config
from bot.errors import InputError
from bot.replay import parse_script, run_replay
from classifiers.engine import Classifier
from storage.engine import make_engine, make_session_factory
from storage.repos import messages as messages_repo
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
GROUP = "石桥村监督服务群"


def write(path: Path, *lines: dict[str, object] | str) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


def message(at: str, sender: str, text: str) -> dict[str, object]:
    return {"kind": "message", "at": at, "group": GROUP, "sender": sender, "text": text}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", r"s\.jsonl:2: "),
        ({"kind": "message", "at": "2026-09-07T06:48:00", "group": GROUP, "sender": "a", "text": "x"}, "time zone"),
        ({"kind": "message", "at": "2026-09-07T06:48:00+08:00", "sender": "a", "text": "x"}, "private"),
        ({"kind": "message", "at": "2026-09-07T06:48:00+08:00", "group": GROUP, "sender": "a"}, "text or image"),
        (
            {"kind": "message", "at": "2026-09-07T06:48:00+08:00", "group": GROUP, "sender": "a", "voice": "v.silk",
             "image": "p.png"},
            "not image and voice",
        ),
        (
            {"kind": "message", "at": "2026-09-07T06:48:00+08:00", "group": GROUP, "sender": "a",
             "link": {"href": "x"}},
            "link.href",
        ),
        ({"kind": "dance", "at": "2026-09-07T06:48:00+08:00"}, r"s\.jsonl:2:"),
        ({"kind": "member", "name": "x", "role": "king"}, "role"),
        ({"kind": "tick", "at": "2026-09-01T06:48:00+08:00"}, "before the line above"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: dict[str, object] | str, expected: str) -> None:
    script = write(tmp_path / "s.jsonl", message("2026-09-07T06:00:00+08:00", "高某林", "早"), line)
    with pytest.raises(InputError, match=expected):
        parse_script(script)


def test_bad_script_changes_nothing_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db.sqlite"
    script = write(
        tmp_path / "s.jsonl",
        message("2026-09-07T06:48:00+08:00", "高某林", "石桥村张湾组连续三天停水了,老人小孩怎么办"),
        "{oops",
    )
    code = run_cli("replay", str(script), "--config", str(ROOT / "config.example.toml"), "--db", f"sqlite:///{db}")
    assert code == 2
    assert "s.jsonl:2" in capsys.readouterr().err
    assert not db.exists()


def test_second_script_continues_tickets_and_clock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = str(ROOT / "config.example.toml")
    first = write(
        tmp_path / "a.jsonl",
        message("2026-09-07T06:48:00+08:00", "高某林", "石桥村张湾组连续三天停水了,老人小孩怎么办"),
    )
    second = write(
        tmp_path / "b.jsonl",
        message("2026-09-07T08:10:00+08:00", "王主任", "#1 已联系水厂,正在抢修"),
        {"kind": "tick", "at": "2026-09-08T09:30:00+08:00"},
    )
    out_a, out_b = tmp_path / "a.out", tmp_path / "b.out"
    assert run_cli("replay", str(first), "--config", config, "--db", db, "--transcript", str(out_a)) == 0
    assert run_cli("replay", str(second), "--config", config, "--db", db, "--transcript", str(out_b)) == 0
    a = [json.loads(x) for x in out_a.read_text(encoding="utf-8").splitlines()]
    b = [json.loads(x) for x in out_b.read_text(encoding="utf-8").splitlines()]
    assert a[0]["to"] == GROUP and "#1" in a[0]["text"] and a[0]["mentions"]
    # the daily digest of 09:00 on both days falls in the second script's time, at its own time
    times = [line["at"] for line in b]
    assert times == sorted(times)
    assert any(line["at"] == "2026-09-07T09:00:00+08:00" for line in b)
    assert any(line["at"] == "2026-09-08T09:00:00+08:00" for line in b)
    # replaying the first script again on the same database doubles nothing
    assert run_cli("replay", str(first), "--config", config, "--db", db, "--transcript", str(tmp_path / "c.out")) == 0
    assert (tmp_path / "c.out").read_text(encoding="utf-8") == ""
    capsys.readouterr()
    assert run_cli("tickets", "--db", db, "--json") == 0
    tickets = json.loads(capsys.readouterr().out)
    assert len(tickets) == 1
    types = [e["type"] for e in tickets[0]["events"]]
    assert types[0] == "opened" and types.count("progress") == 1


async def test_a_message_that_fails_mid_run_is_kept_raw_and_its_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is redone one message at a time: neighbours stored and handled, the bad one kept raw."""
    original = Classifier.classify

    def classify(self: Classifier, text: str, **kwargs: object) -> object:
        if "💥" in text:
            raise RuntimeError("a message the classifier cannot take")
        return original(self, text, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Classifier, "classify", classify)
    script = write(
        tmp_path / "s.jsonl",
        message("2026-09-07T06:40:00+08:00", "张三", "大家早上好"),
        message("2026-09-07T06:41:00+08:00", "李四", "今天天气不错💥"),
        message("2026-09-07T06:48:00+08:00", "高某林", "石桥村张湾组连续三天停水了,老人小孩怎么办"),
        message("2026-09-07T06:49:00+08:00", "王五", "收到"),
    )
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    sink = tmp_path / "t.out"
    with sink.open("w", encoding="utf-8") as out:
        lines = await run_replay(
            script, config=load_config(ROOT / "config.example.toml"), db_url=db_url, transcript=out
        )
    assert any(line["to"] == GROUP and "#1" in str(line["text"]) for line in lines)  # the demand after it: answered
    engine = make_engine(db_url)
    try:
        async with make_session_factory(engine)() as session:
            found = await messages_repo.messages_between(
                session, start=datetime(2026, 9, 7, tzinfo=CHINA), end=datetime(2026, 9, 8, tzinfo=CHINA)
            )
            assert [m.sender_name for m in found] == ["张三", "李四", "高某林", "王五"]  # each stored once
            for m in found:
                assert m.id is not None
                classification = await messages_repo.get_classification(session, m.id)
                if m.sender_name == "李四":
                    assert classification is None and m.unassigned  # kept raw, as it came
                else:
                    assert classification is not None
    finally:
        await engine.dispose()
