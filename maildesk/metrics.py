"""The daemon's counters for Prometheus: one `Metrics` per App, each with its own registry.

The edges and loops count what happened (`app.metrics.accepted("smtp")`, ...); what the
store holds (tickets open, backlog, outbox) is read at scrape time by a collector that the
HTTP side adds with `add_collector` (maildesk.http.metrics). Names start with `maildesk_`
(SPEC, "Reports, metrics and HTTP"). This module is where prometheus_client enters.
A registry per App, not the library's global one, so several daemons in one process (the
tests) count apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "GaugeFamily", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# No `*_created` series beside every counter: the daemon's start time says the same.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds from a stored message's turn in the pipeline to its outcome.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class GaugeFamily:
    """A gauge read at scrape time: its samples as (label values, value)."""

    name: str
    help: str
    labels: Sequence[str]
    samples: Iterable[tuple[Sequence[str], float]]


class _FamilyCollector(Collector):
    def __init__(self, read: Callable[[], Iterable[GaugeFamily]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for family in self._read():
            gauge = GaugeMetricFamily(family.name, family.help, labels=list(family.labels))
            for values, value in family.samples:
                gauge.add_metric(list(values), value)
            yield gauge


@dataclass
class Metrics:
    """Counters of one daemon (one App)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        counter = self._counter
        self.messages_accepted = counter(
            "maildesk_messages_accepted",
            "Messages stored raw, by the edge that took them",
            "source",
        )
        self.messages_refused = counter(
            "maildesk_messages_refused",
            "SMTP replies refusing a recipient, a message or a connection, by code",
            "source",
            "code",
        )
        self.messages_deferred = counter(
            "maildesk_messages_deferred",
            "Messages deferred with 451 at DATA, by edge and reason (backlog: max_backlog)",
            "source",
            "reason",
        )
        self.pipeline_messages = counter(
            "maildesk_pipeline_messages",
            "Stored messages the pipeline finished, by outcome (created, appended, ...)",
            "outcome",
        )
        self.pipeline_seconds = Histogram(
            "maildesk_pipeline_seconds",
            "Time the pipeline took for one message (parse and run)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rule_hits = counter(
            "maildesk_rule_hits", "Routing rules that matched a new ticket", "rule"
        )
        self.outbox_sent = counter(
            "maildesk_notifications_sent",
            "Notifications delivered by the outbox sender, by kind",
            "kind",
        )
        self.outbox_results = counter(
            "maildesk_outbox_attempts",
            "Delivery attempts of the outbox sender, by result (sent, retrying, failed)",
            "result",
        )
        self.sla_warnings = counter("maildesk_sla_warnings", "SLA warnings the SLA job recorded")
        self.sla_breaches = counter("maildesk_sla_breaches", "SLA breaches the SLA job recorded")
        self.imap_errors = counter(
            "maildesk_imap_errors", "Failed IMAP connections or polls", "mailbox"
        )
        self.imap_last_success = Gauge(
            "maildesk_imap_last_success_timestamp_seconds",
            "When a mailbox was last read without error (Unix time)",
            ["mailbox"],
            registry=self.registry,
        )
        self.database_errors = counter(
            "maildesk_database_errors", "Times a worker found the store unavailable", "worker"
        )
        self._imap_seen: dict[str, float] = {}
        self._collectors: set[str] = set()

    def _counter(self, name: str, help: str, *labels: str) -> Counter:
        return Counter(name, help, list(labels), registry=self.registry)

    # --- what the edges and loops call --------------------------------------------------

    def accepted(self, source: str, count: int = 1) -> None:
        self.messages_accepted.labels(source=source).inc(count)

    def refused(self, code: str, source: str = "smtp") -> None:
        self.messages_refused.labels(source=source, code=code).inc()

    def deferred(self, source: str, reason: str) -> None:
        self.messages_deferred.labels(source=source, reason=reason).inc()

    def processed(self, outcome: str, seconds: float | None = None) -> None:
        self.pipeline_messages.labels(outcome=outcome).inc()
        if seconds is not None:
            self.pipeline_seconds.observe(seconds)

    def rules_matched(self, rules: Sequence[str]) -> None:
        for rule in rules:
            self.rule_hits.labels(rule=rule).inc()

    def sent(self, kinds: Mapping[str, int], retrying: int, failed: int) -> None:
        for kind, count in kinds.items():
            self.outbox_sent.labels(kind=kind).inc(count)
        results = {"sent": sum(kinds.values()), "retrying": retrying, "failed": failed}
        for result, count in results.items():
            if count:
                self.outbox_results.labels(result=result).inc(count)

    def sla_job(self, warnings: int, breaches: int) -> None:
        self.sla_warnings.inc(warnings)
        self.sla_breaches.inc(breaches)

    def imap_polled(self, mailbox: str) -> None:
        now = time.time()
        self._imap_seen[mailbox] = now
        self.imap_last_success.labels(mailbox=mailbox).set(now)

    def imap_failed(self, mailbox: str) -> None:
        self.imap_errors.labels(mailbox=mailbox).inc()

    def store_failed(self, worker: str) -> None:
        self.database_errors.labels(worker=worker).inc()

    # --- what the HTTP side reads -------------------------------------------------------

    def imap_seen(self) -> dict[str, float]:
        """Each mailbox's last successful read (Unix time), for /healthz."""
        return dict(self._imap_seen)

    def add_collector(self, name: str, read: Callable[[], Iterable[GaugeFamily]]) -> None:
        """Gauges read at every scrape (from the store); a name already added is kept."""
        if name not in self._collectors:
            self._collectors.add(name)
            self.registry.register(_FamilyCollector(read))

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)
