"""``/metrics`` in the Prometheus text format, on a listener of its own (``[metrics]`` in the config).

Figures come from two places: counters this process keeps (messages received per account, pipeline
events, sends and send failures per account) and, at each scrape, the database (tickets by status, the
outbox per account, flags of the last 24 hours by label) and the adapters' connection state.

Protection: with the token variable set, a scrape must send ``Authorization: Bearer <token>``; without
it only loopback clients are answered (and ``start_metrics`` refuses a non-loopback bind).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.adapters.base import Adapter, AdapterState
from bot.config import ConfigError, MetricsConfig
from bot.services import Services
from storage.repos import ops

log = logging.getLogger(__name__)

TICKET_STATUSES = ("open", "accepted", "resolved", "closed")
FLAG_WINDOW = timedelta(hours=24)


@dataclass
class ProcessCounters:
    """Counted by this process since it started (Prometheus handles restarts of counters)."""

    received: Counter[str] = field(default_factory=Counter)
    """Messages handed over by each account's adapter."""


class _Snapshot:
    """A collector that yields figures gathered beforehand (collect() cannot await the database)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


async def snapshot(services: Services, adapters: Mapping[str, Adapter], counters: ProcessCounters) -> list[Metric]:
    accounts = sorted({a.name for a in services.config.accounts} | set(adapters))
    metrics: list[Metric] = []

    received = CounterMetricFamily(
        "villagewatch_messages_received", "Messages received from WeChat (or the simulator)", labels=["account"]
    )
    for account in accounts:
        received.add_metric([account], counters.received.get(account, 0))
    metrics.append(received)

    pipeline = CounterMetricFamily(
        "villagewatch_pipeline_events",
        "Messages by what the pipeline did with them (handled, flagged, duplicate, failed, download_failed)",
        labels=["event"],
    )
    for event in sorted({"handled", "flagged", "duplicate", "failed", *services.stats.total}):
        pipeline.add_metric([event], services.stats.total.get(event, 0))
    metrics.append(pipeline)

    sent = CounterMetricFamily("villagewatch_messages_sent", "Messages this process sent", labels=["account"])
    failures = CounterMetricFamily(
        "villagewatch_send_failures", "Send attempts that failed (retried later)", labels=["account"]
    )
    for account in accounts:
        sent.add_metric([account], services.outbox.sent.get(account, 0))
        failures.add_metric([account], services.outbox.send_failures.get(account, 0))
    metrics += [sent, failures]

    up = GaugeMetricFamily(
        "villagewatch_account_connected", "1 while the account's adapter is connected and logged in", labels=["account"]
    )
    state = GaugeMetricFamily(
        "villagewatch_account_state",
        "The adapter's connection state (1 for the current one)",
        labels=["account", "state"],
    )
    for name, adapter in sorted(adapters.items()):
        health = adapter.health()
        up.add_metric([name], 1 if health.state == AdapterState.CONNECTED else 0)
        for candidate in AdapterState:
            state.add_metric([name, str(candidate)], 1 if health.state == candidate else 0)
    metrics += [up, state]

    database = GaugeMetricFamily("villagewatch_database_up", "1 when the last scrape could read the database")
    now = services.clock.now()
    try:
        async with services.sessions() as session:
            tickets = await ops.tickets_by_status(session)
            outbox = {f.account: f for f in await ops.outbox_by_account(session, now=now)}
            labels = await ops.flag_labels_since(session, since=now - FLAG_WINDOW)
    except Exception as exc:  # a scrape must answer even when the database does not
        log.warning("metrics: the database could not be read: %s", exc)
        database.add_metric([], 0)
        return [*metrics, database]
    database.add_metric([], 1)
    metrics.append(database)

    by_status = GaugeMetricFamily("villagewatch_tickets", "Tickets by status", labels=["status"])
    for status in sorted(set(TICKET_STATUSES) | set(tickets)):
        by_status.add_metric([status], tickets.get(status, 0))
    metrics.append(by_status)

    pending = GaugeMetricFamily("villagewatch_outbox_pending", "Replies waiting to be sent", labels=["account"])
    oldest = GaugeMetricFamily(
        "villagewatch_outbox_oldest_pending_age_seconds",
        "Age of the oldest reply not yet sent (0 when none waits)",
        labels=["account"],
    )
    failed = GaugeMetricFamily("villagewatch_outbox_failed", "Replies given up after every retry", labels=["account"])
    for account in sorted(set(accounts) | set(outbox)):
        figures = outbox.get(account)
        pending.add_metric([account], figures.pending if figures else 0)
        age = (now - figures.oldest_pending).total_seconds() if figures and figures.oldest_pending else 0.0
        oldest.add_metric([account], max(0.0, age))
        failed.add_metric([account], figures.failed if figures else 0)
    metrics += [pending, oldest, failed]

    flags = GaugeMetricFamily(
        "villagewatch_flags_recent", "Flagged messages of the last 24 hours by label", labels=["label"]
    )
    for label, count in sorted(labels.items()):
        flags.add_metric([label], count)
    metrics.append(flags)
    return metrics


def render(metrics: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    collector: Collector = _Snapshot(metrics)
    registry.register(collector)
    return generate_latest(registry)


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def allowed(request: web.Request, token: str) -> bool:
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    return _is_loopback(request.remote)


def metrics_app(
    services: Services, adapters: Mapping[str, Adapter], counters: ProcessCounters, *, token: str
) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        if not allowed(request, token):
            status = 401 if token else 403
            return web.Response(status=status, text="forbidden\n", headers={"X-Content-Type-Options": "nosniff"})
        body = render(await snapshot(services, adapters, counters))
        return web.Response(
            body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "X-Content-Type-Options": "nosniff"}
        )

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app


def metrics_token(config: MetricsConfig) -> str:
    """The bearer token from the environment ("" when unset); a non-loopback bind without one is refused."""
    token = os.environ.get(config.token_env, "").strip()
    if not token:
        try:
            loopback = ipaddress.ip_address(config.bind).is_loopback
        except ValueError:
            loopback = config.bind == "localhost"
        if not loopback:
            raise ConfigError(
                f"[metrics] bind = {config.bind!r} is reachable from other machines: set a token in the "
                f"environment variable {config.token_env}, or bind to 127.0.0.1"
            )
    return token
