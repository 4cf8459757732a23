"""Python side of the Wechaty test fixture: runs tests/wechaty/fixture.mjs and drives its control API.

`WechatyService` starts the Node fixture on free loopback ports (its own process group, so teardown
kills exactly what it started), waits for the ports, and is the control client of its HTTP API: make a
contact speak, read what the bot sent. It never skips: no Node or no npm packages is a test failure.
The pytest fixtures that use it live in tests/adapters/conftest.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.messages import IncomingMessage

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "wechaty"
TOKEN = "villagewatch-test-token"
ROOM_ID = "shiqiao-supervision@chatroom"
ROOM_TOPIC = "石桥村监督服务群"
BOT_ID = "wxid_villagewatch_bot"
GAO = "wxid_gaomoulin"
ZHANG = "wxid_zhangsan"
WANG = "wxid_wangdama"
LI_CADRE = "wxid_lishuji"
WANG_CADRE = "wxid_wangzhuren"
ZHANG_CADRE = "wxid_zhangwanggeyuan"
PEOPLE = {
    BOT_ID: "石桥村监督服务助手",
    GAO: "高某林",
    ZHANG: "张三",
    WANG: "王大妈",
    LI_CADRE: "李书记",
    WANG_CADRE: "王主任",
    ZHANG_CADRE: "张网格员",
}
"""Everyone in the fixture's room 石桥村监督服务群, by platform id (the cadres are on roster.example.csv)."""


def _free_port() -> int:
    """A bindable loopback port below Linux's ephemeral range (32768+), so that no outgoing connection
    takes it between this check and the fixture's bind."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port in 20000-32000")


def ensure_node_modules() -> None:
    """`npm install` in tests/wechaty when node_modules is missing (the Makefile normally did it)."""
    if (FIXTURE_DIR / "node_modules" / "wechaty-puppet-service").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("the Wechaty tests need Node.js and npm on PATH (they are never skipped)")
    result = subprocess.run(
        [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=FIXTURE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"npm install in {FIXTURE_DIR} failed:\n{result.stdout}\n{result.stderr}")


class WechatyService:
    """One Node puppet-service process (restartable on the same ports) and its control API."""

    def __init__(self, log_dir: Path, *, tls: bool = False, token: str = TOKEN, grpc_port: int | None = None) -> None:
        self.tls = tls
        self.token = token
        self.grpc_port = grpc_port or _free_port()
        self.http_port = _free_port()
        self.log_path = log_dir / f"wechaty-fixture-{self.grpc_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    # ---- process --------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        node = shutil.which("node")
        if node is None:
            pytest.fail("the Wechaty tests need Node.js on PATH (they are never skipped)")
        command = [
            node,
            "fixture.mjs",
            "--grpc-port",
            str(self.grpc_port),
            "--http-port",
            str(self.http_port),
            "--token",
            self.token,
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.tls:
            command.append("--tls")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=FIXTURE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the Wechaty fixture exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._port_open(self.grpc_port):
                with contextlib.suppress(OSError, ValueError):
                    if self._request("GET", "/health", timeout=2).get("ok"):
                        return
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"the Wechaty fixture did not listen within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the fixture's process group, SIGKILL it if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the fixture's process group: the service vanishes as in a crash."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0

    # ---- control API ----------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path} -> {exc.code}: {exc.read().decode(errors='replace')}") from exc

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self._request, method, path, body)

    async def say(
        self,
        sender: str,
        text: str | None = None,
        *,
        room: bool | str = True,
        to: str | None = None,
        mentions: list[str] | None = None,
        image: bytes | None = None,
        file: bytes | None = None,
        name: str | None = None,
        voice: bool = False,
        url: dict[str, str] | None = None,
        mini_program: dict[str, str] | None = None,
        type: int | None = None,
    ) -> str:
        """Make a contact speak, in the room (default) or privately (`room=False`, to the bot by default).
        Returns the platform message id."""
        body: dict[str, Any] = {"from": sender, "room": room}
        if text is not None:
            body["text"] = text
        if to is not None:
            body["to"] = to
        if mentions:
            body["mentions"] = mentions
        if image is not None:
            body["image_base64"] = base64.b64encode(image).decode()
        if file is not None:
            body["file_base64"] = base64.b64encode(file).decode()
            body["voice"] = voice
        if name is not None:
            body["name"] = name
        if url is not None:
            body["url"] = url
        if mini_program is not None:
            body["mini_program"] = mini_program
        if type is not None:
            body["type"] = type
        return str((await self.call("POST", "/say", body))["id"])

    async def emit(self, message_id: str) -> None:
        """A `message` event for an id that may have no payload."""
        await self.call("POST", "/emit", {"messageId": message_id})

    async def sent(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/sent"))["sent"])

    async def clear_sent(self) -> None:
        await self.call("POST", "/sent/clear", {})

    async def wait_sent(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first thing the bot sent that matches, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for item in await self.sent():
                if predicate(item):
                    return item
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing matching was sent within {timeout:.0f} s: {await self.sent()}")
            await asyncio.sleep(0.1)

    async def tls_ca(self) -> tuple[str, str]:
        reply = await self.call("GET", "/tls-ca")
        return str(reply["ca"]), str(reply["serverName"])


class Inbox:
    """A message handler that records what the adapter delivers."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[IncomingMessage] = asyncio.Queue()

    async def __call__(self, message: IncomingMessage) -> None:
        await self.queue.put(message)

    async def next(self, timeout: float = 10.0) -> IncomingMessage:
        async with asyncio.timeout(timeout):
            return await self.queue.get()
