"""Fixtures for the Wechaty tests: the real puppet service from npm (see tests/wechaty/service.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.wechaty.service import WechatyService, ensure_node_modules


@pytest.fixture(scope="session")
def wechaty_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wechaty-logs")


@pytest.fixture(scope="session")
def wechaty_service(wechaty_logs: Path) -> Iterator[WechatyService]:
    """The plaintext puppet service, shared by the session (tests restore it if they restart it)."""
    ensure_node_modules()
    service = WechatyService(wechaty_logs)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def wechaty_tls_service(wechaty_logs: Path) -> Iterator[WechatyService]:
    """The same service with TLS on (the Wechaty community "insecure" certificate)."""
    ensure_node_modules()
    service = WechatyService(wechaty_logs, tls=True)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def spare_service(wechaty_logs: Path) -> Iterator[WechatyService]:
    """A service that is *not* started: the test decides when it comes up."""
    ensure_node_modules()
    service = WechatyService(wechaty_logs)
    yield service
    service.stop()
