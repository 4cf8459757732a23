from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.directory import read_roster
from bot.errors import InputError
from bot.templates import Templates

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_validates_with_its_roster() -> None:
    config = load_config(ROOT / "config.example.toml")
    groups = [g for c in config.counties for t in c.townships for v in t.villages for g in v.groups]
    assert "石桥村监督服务群" in groups and len(groups) == 4
    assert config.deadlines.working_days["demand"] == 10
    assert config.rules_dir == (ROOT / "rules").resolve()
    assert config.roster is not None
    roster = read_roster(config.roster, config)
    heads = {e.village for e in roster if e.is_head}
    assert heads == {"石桥村", "河东村", "七门堰村", "新河村"}
    staff = [e for e in roster if e.role == "staff"]
    assert {e.township for e in staff} >= {"城关镇", "干汊河镇"}
    Templates(config.templates)


def test_bad_config_names_file_key_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('[dashboard]\nport = "eighty"\n[[counties]]\nname = "x"\ntownships = []\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    message = str(info.value)
    assert str(bad) in message and "dashboard.port" in message and "counties.0.townships" in message


def test_unknown_key_and_toml_syntax_errors(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("dashbord = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="dashbord"):
        load_config(bad)
    bad.write_text("[storage\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.toml.*line 1"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_duplicate_group_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text(
        """
[[counties]]
name = "县"
  [[counties.townships]]
  name = "镇"
    [[counties.townships.villages]]
    name = "甲村"
    groups = ["同一个群"]
    [[counties.townships.villages]]
    name = "乙村"
    groups = ["同一个群"]
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="同一个群"):
        load_config(bad)


def test_roster_errors_name_file_and_line(tmp_path: Path) -> None:
    config = load_config(ROOT / "config.example.toml")
    roster = tmp_path / "roster.csv"
    roster.write_text("name,role,village\n李书记,cadre,石桥村\n王五,chief,石桥村\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"roster\.csv:3: role\(身份\)“chief”"):
        read_roster(roster, config)
    roster.write_text("name,role,village\n李书记,cadre,不存在村\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"roster\.csv:2: village\(村\)“不存在村”"):
        read_roster(roster, config)


def test_template_override_errors() -> None:
    with pytest.raises(InputError, match="no_such_template"):
        Templates({"no_such_template": "x"})
    with pytest.raises(InputError, match="ticket_ack"):
        Templates({"ticket_ack": "{{ broken"})
    assert Templates({"ticket_ack": "收到 #{{ ticket_id }}"}).render("ticket_ack", ticket_id=5) == "收到 #5"
