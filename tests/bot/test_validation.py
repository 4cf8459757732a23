"""Config, roster and template values are validated completely; errors name the file, the line or the key.

What staff edit (the roster, templates) is reported in Chinese; every command ends in one clear line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.directory import read_roster
from bot.errors import InputError
from bot.templates import SAMPLES, Templates
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "config.example.toml").read_text(encoding="utf-8")
HEADER = "name,role,village,township,county,group,categories,head,platform_id\n"


def _config(tmp_path: Path, extra: str = "", *, replace: tuple[str, str] | None = None) -> Path:
    text = EXAMPLE.replace('roster = "roster.example.csv"', "")
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    path = tmp_path / "config.toml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return path


def test_every_template_has_sample_values_and_the_defaults_render() -> None:
    templates = Templates()
    assert set(SAMPLES) == set(templates.names())
    for name in templates.names():
        assert templates.render(name, **SAMPLES[name])


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("【工单 #{{ ticket_no }}】收到", r"\[templates\] ticket_ack: 模板用到了不存在的变量.*ticket_no"),
        ("{% for t in tickets %}{{ t.deadlin }}{% endfor %}", r"ticket_ack: 模板用到了不存在的变量"),
        ("{{ ticket_id", r"\[templates\] ticket_ack: 模板语法错误"),
        ("{{ ticket_id + '号' }}", r"\[templates\] ticket_ack: 模板无法生成消息"),
    ],
)
def test_a_template_that_cannot_render_stops_the_start_naming_its_key(template: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        Templates({"ticket_ack": template})


def test_a_template_error_in_the_config_names_the_file_and_key(tmp_path: Path) -> None:
    path = _config(tmp_path, '[templates]\nticket_digest = "{{ dat }} 摘要"\n')
    with pytest.raises(ConfigError, match=r"config\.toml: \[templates\] ticket_digest: 模板用到了不存在的变量"):
        load_config(path)
    path = _config(tmp_path, '[templates]\nticket_ackk = "x"\n')
    with pytest.raises(ConfigError, match=r"ticket_ackk: 没有这个模板名称"):
        load_config(path)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("per_group_seconds = 2.0", "per_group_seconds = nan"), "accounts.0.pacing.per_group_seconds"),
        (("per_account_seconds = 1.0", "per_account_seconds = inf"), "accounts.0.pacing.per_account_seconds"),
        (("window_hours = 72", "window_hours = nan"), "merge.window_hours"),
        (("similarity = 30", "similarity = -inf"), "merge.similarity"),
        (('timezone = "Asia/Shanghai"', 'timezone = "Asia/Shanghia"'), "schedule.timezone"),
        (("demand = 10,", "demand = 100000,"), "deadlines.working_days"),
        (('secret_env = "VILLAGEWATCH_SECRET"', 'secret_env = "MY SECRET"'), "dashboard.secret_env"),
        (('public_url = "http://127.0.0.1:8080"', 'public_url = "javascript:alert(1)"'), "dashboard.public_url"),
        (('name = "石桥村"', 'name = "  "'), "counties.0.townships.0.villages.0.name"),
        (('name = "河东村"', 'name = "石桥村"'), "village name '石桥村' is used twice"),
    ],
)
def test_bad_config_values_are_refused_naming_the_key(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, replace=change))
    assert "config.toml" in str(info.value) and key in str(info.value)


def test_unknown_category_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="category_names: unknown category 'watr'"):
        load_config(_config(tmp_path, '[category_names]\nwatr = "供水"\n'))


def test_the_dashboard_secret_is_read_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(_config(tmp_path, replace=('secret_env = "VILLAGEWATCH_SECRET"', 'secret_env = "VW_T"')))
    monkeypatch.delenv("VW_T", raising=False)
    assert config.dashboard.secret() is None
    monkeypatch.setenv("VW_T", "short")
    with pytest.raises(ConfigError, match=r"VW_T.*at least 32"):
        config.dashboard.secret()
    monkeypatch.setenv("VW_T", "s" * 40)
    assert config.dashboard.secret() == b"s" * 40


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("李书记,cadre,石桥村,,,,,yes,\n李书记,cadre,石桥村,,,,,,\n", r"roster\.csv:3: 姓名“李书记”与第 2 行重复"),
        ("甲,cadre,石桥村,,,,,,wx1\n乙,cadre,石桥村,,,,,,wx1\n", r"roster\.csv:3: platform_id“wx1”与第 2 行重复"),
        ("王主任,cadre,石桥村,,,,waterr|power,,\n", r"roster\.csv:2: categories\(负责类别\)中的“waterr”不认识"),
        ("王主任,cadre,石桥村,,,,,maybe,\n", r"roster\.csv:2: head\(是否村负责人\)“maybe”"),
        ("王主任,cadre,石桥村,干汊河镇,,,,,\n", r"roster\.csv:2: township\(镇\)“干汊河镇”与村“石桥村”不符"),
        ("王主任,cadre,石桥村,,外县,,,,\n", r"roster\.csv:2: county\(县\)“外县”与村“石桥村”不符"),
        (
            "王主任,cadre,石桥村,,,河东村监督服务群,,,\n",
            r"roster\.csv:2: group\(群\)“河东村监督服务群”不是“石桥村”的群",
        ),
        ("刘干事,staff,,无名镇,,,,,\n", r"roster\.csv:2: township\(镇\)“无名镇”不在配置"),
        ("周主任,staff,,,外县,,,,\n", r"roster\.csv:2: county\(县\)“外县”不在配置的县中"),
        ("王主任,cadre,石桥村,,,,,,,多余\n", r"roster\.csv:2: 这一行的格子比表头多"),
        ("王主任,cadre,石桥村\n", r"roster\.csv:2: 这一行的格子比表头少"),
        ("  ,cadre,石桥村,,,,,,\n", r"roster\.csv:2: name\(姓名\)为空"),
    ],
)
def test_bad_roster_rows_are_refused_in_chinese_naming_the_line(tmp_path: Path, rows: str, expected: str) -> None:
    config = load_config(_config(tmp_path))
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + rows, encoding="utf-8")
    with pytest.raises(InputError, match=expected):
        read_roster(roster, config)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("name,role,village,phone\n", r"roster\.csv:1: 表头有不认识的列 'phone'"),
        ("name,village\n", r"roster\.csv:1: 表头缺少必需的列 role"),
        ("name,role,role\n", r"roster\.csv:1: 表头中的列重复:role"),
        ("", r"roster\.csv:1: 花名册是空的"),
    ],
)
def test_bad_roster_headers_are_refused(tmp_path: Path, header: str, expected: str) -> None:
    config = load_config(_config(tmp_path))
    roster = tmp_path / "roster.csv"
    roster.write_text(header, encoding="utf-8")
    with pytest.raises(InputError, match=expected):
        read_roster(roster, config)


def test_the_example_roster_still_reads(tmp_path: Path) -> None:
    config = load_config(ROOT / "config.example.toml")
    assert config.roster is not None and len(read_roster(config.roster, config)) > 10


def test_bad_config_and_user_add_end_in_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _config(tmp_path, replace=("similarity = 30", "similarity = nan"))
    assert run_cli("tickets", "--config", str(bad), "--db", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}") == 2
    err = capsys.readouterr().err
    assert err.startswith("villagewatch: error: ") and "merge.similarity" in err and "Traceback" not in err
    db = f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"
    good = str(_config(tmp_path))
    for args, expected in [
        (["--password", "short"], "密码至少 8 个字符"),
        (["--password", "long-enough-1", "--role", "cadre"], "需要填写 --county --township --village"),
        (
            ["--password", "long-enough-1", "--role", "township_staff", "--county", "舒城县", "--township", "无名镇"],
            "镇“无名镇”不在配置中",
        ),
    ]:
        argv = ["user", "add", "zhang", "--config", good, "--db", db, *args]
        if "--role" not in argv:
            argv += ["--role", "admin"]
        assert run_cli(*argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("villagewatch: error: ") and expected in err and "Traceback" not in err, err
    assert run_cli("user", "add", "zhang", "--config", good, "--db", db, "--role", "admin", "--password", "x" * 9) == 0
    assert run_cli("user", "add", "zhang", "--config", good, "--db", db, "--role", "admin", "--password", "x" * 9) == 2
    assert "账号 zhang 已存在" in capsys.readouterr().err
