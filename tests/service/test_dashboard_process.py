"""`villagewatch dashboard`: the dashboard in processes of its own beside the bot, on one database.

Two dashboard processes share one port (the kernel spreads connections over them) and, with the secret
set, their sessions; what staff do there reaches the group through the bot process's outbox sender.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from dashboards.users import add_user
from storage.engine import make_engine, make_session_factory
from tests.service.crash import VILLAGEWATCH, Service, free_port, journal, write_config

SECRET = "dashboard-process-test-secret-0123456789abcdef"
PASSWORD = "a-long-test-password-42"
GROUP = "石桥村监督服务群"


async def _start_dashboard(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(VILLAGEWATCH), "dashboard", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "VILLAGEWATCH_SECRET": SECRET, "PYTHONUNBUFFERED": "1"},
        )
    for _ in range(600):
        if b"dashboard is running" in log.read_bytes():
            return proc
        assert proc.poll() is None, log.read_text(errors="replace")
        await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError(f"villagewatch dashboard did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[tuple[Service, int]]:
    data = tmp_path / "data"
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'vw.db'}"
    sim_port, dash_port = free_port(), free_port()
    bot_config = tmp_path / "bot.toml"
    write_config(bot_config, data_dir=data, db_url=db_url, port=sim_port)
    dash_config = tmp_path / "dashboard.toml"
    dash_config.write_text(
        bot_config.read_text(encoding="utf-8").replace(
            "[dashboard]\nenabled = false", f"[dashboard]\nenabled = false\nport = {dash_port}"
        ),
        encoding="utf-8",
    )
    service = Service(bot_config, sim_port, tmp_path / "bot.log")
    await service.start()
    dashboards: list[subprocess.Popen[bytes]] = []
    try:
        engine = make_engine(db_url)
        await add_user(make_session_factory(engine), username="staff1", password=PASSWORD, role="admin")
        await engine.dispose()
        # both bind the same port (no "address in use"); started side by side
        started = await asyncio.gather(
            *(_start_dashboard(dash_config, tmp_path / f"dashboard{n}.log") for n in range(2)), return_exceptions=True
        )
        dashboards.extend(p for p in started if isinstance(p, subprocess.Popen))
        for failed in started:
            if isinstance(failed, BaseException):
                raise failed
        yield service, dash_port
    finally:
        for proc in dashboards:
            proc.terminate()
        for proc in dashboards:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        service.stop()


async def _login(client: aiohttp.ClientSession, base: str) -> None:
    page = await (await client.get(f"{base}/login")).text()
    token = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert token
    response = await client.post(
        f"{base}/login", data={"_csrf": token.group(1), "username": "staff1", "password": PASSWORD, "next": "/tickets"}
    )
    assert response.status == 200 and "/tickets" in str(response.url)


async def test_two_dashboard_processes_share_a_port_sessions_and_the_bot(deployment: tuple[Service, int]) -> None:
    service, port = deployment
    base = f"http://127.0.0.1:{port}"
    # a villager's demand through the bot process opens ticket 1
    async with aiohttp.ClientSession() as client:
        data = {"id": "d1", "sender": "高某林", "chat": GROUP, "text": "村东头自来水停了三天了,请尽快处理"}
        async with client.post(service.url + "api/send", data=data) as response:
            assert response.status == 200
    # a fresh connection for every request: the kernel hands them to either process; one login serves all
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(cookie_jar=jar, connector=connector) as client:
        await _login(client, base)
        for _ in range(16):
            async with client.get(f"{base}/tickets", allow_redirects=False) as response:
                assert response.status == 200
                assert "#1" in await response.text()
        async with client.get(f"{base}/health") as response:
            assert response.status == 200
        # staff accept the ticket on the dashboard: the bot process sends the group its message
        page = await (await client.get(f"{base}/tickets/1")).text()
        form = re.search(r'<form[^>]*action="(/tickets/1/[^"]*accept[^"]*)"[^>]*>(.*?)</form>', page, re.S)
        assert form, "no accept form on the ticket page"
        token = re.search(r'name="_csrf" value="([^"]+)"', form.group(2))
        assert token
        async with client.post(base + form.group(1), data={"_csrf": token.group(1)}) as response:
            assert response.status == 200
    for _ in range(100):
        shown = [r for r in journal(service.log.parent / "data") if r.get("from_bot") and r.get("chat") == GROUP]
        if len(shown) >= 2:  # the acknowledgement of the demand, then the acceptance
            break
        await asyncio.sleep(0.1)
    assert len(shown) >= 2, shown
    assert "受理" in shown[-1]["text"]
