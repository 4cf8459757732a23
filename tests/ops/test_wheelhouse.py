"""The offline bundle's Makefile targets, checked cheaply (`make -n`: nothing is downloaded or built)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(*args: str, cwd: Path = ROOT) -> list[str]:
    # Run under `make test` too: no "Entering directory" lines, no flags inherited from the outer make.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.splitlines()


def test_wheelhouse_builds_every_wheel_and_packs_the_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "villagewatch-offline"
    lines = dry_run("wheelhouse", f"BUNDLE={bundle}")
    wheel = next(line for line in lines if " pip wheel " in line)
    assert f"--wheel-dir {bundle}/wheels ." in wheel and "--no-deps" not in wheel  # dependencies too
    assert any(" pip download " in line and "pip" in line.split()[-1] for line in lines)
    copy = next(line for line in lines if line.startswith("cp -r "))
    for item in ("rules", "config.example.toml", "roster.example.csv", "README.md", "README.zh-CN.md"):
        assert item in copy.split()
    assert any(line.startswith("tar -czf ") and f"{bundle}.tar.gz" in line for line in lines)

    # The bundle's own Makefile is cut out of this one; run that step and dry-run the intranet side.
    bundle.mkdir()
    subprocess.run(next(line for line in lines if line.startswith("sed -n")), shell=True, cwd=ROOT, check=True)
    intranet = dry_run("offline-install", cwd=bundle)
    assert intranet[0] == "python3 -m venv .venv"
    installs = [line for line in intranet if " pip install " in line]
    assert installs and all("--no-index --find-links wheels" in line for line in installs)
    assert installs[-1].endswith(" villagewatch")
