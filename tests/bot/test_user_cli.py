"""`villagewatch user …`: every bad input ends in one Chinese line and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path: Path) -> list[str]:
    config = tmp_path / "config.toml"
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8").replace('roster = "roster.example.csv"', "")
    config.write_text(text, encoding="utf-8")
    return ["--config", str(config), "--db", f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"]


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert run_cli(*argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("villagewatch: error: ") and expected in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1


def test_user_add_refuses_bad_scopes_in_chinese(cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    add = ["user", "add", "wang", *cli, "--password", "long-enough-1"]
    _fails(capsys, add, "请用 --role 指定角色")
    _fails(capsys, [*add, "--role", "boss"], "角色“boss”不正确")
    _fails(capsys, [*add, "--role", "township_staff", "--township", "城关镇"], "镇纪委账号需要填写 --county")
    _fails(capsys, [*add, "--role", "county_staff", "--county", "舒成县"], "县“舒成县”不在配置的县、镇、村中")
    _fails(
        capsys,
        [*add, "--role", "township_staff", "--county", "舒城县", "--township", "城关填"],
        "镇“城关填”不在配置中“舒城县”之下；请核对 --county/--township/--village",
    )
    _fails(
        capsys,
        [*add, "--role", "cadre", "--county", "舒城县", "--township", "干汊河镇", "--village", "石桥村"],
        "村“石桥村”不在配置中“干汊河镇”之下",
    )
    assert run_cli(*add, "--role", "township_staff", "--county", "舒城县", "--township", "城关镇") == 0
    assert "已创建账号 wang(镇纪委)" in capsys.readouterr().out


def test_generated_passwords_resets_and_disabling(cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("user", "add", "li", *cli, "--role", "admin") == 0
    out = capsys.readouterr().out
    assert "初始密码" in out and "首次登录后须修改" in out
    assert run_cli("user", "password", "li", *cli) == 0
    assert "新密码" in capsys.readouterr().out
    _fails(capsys, ["user", "password", "nobody", *cli], "没有账号 nobody")
    _fails(capsys, ["user", "disable", "li", *cli], "最后一个可用的管理员")
    assert (
        run_cli("user", "add", "zhao", *cli, "--role", "county_staff", "--county", "舒城县", "--password", "x" * 9) == 0
    )
    assert run_cli("user", "disable", "zhao", *cli) == 0
    capsys.readouterr()
    assert run_cli("user", "list", *cli) == 0
    listing = capsys.readouterr().out
    assert "zhao\tzhao\t县纪委\t舒城县\t已停用" in listing and "li\tli\t管理员\t全部\t可用" in listing
