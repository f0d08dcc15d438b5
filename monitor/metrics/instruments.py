"""Every webcare_* instrument on its own registry, fed by events; kept across config reloads.

No `*_created` series: prometheus_client exports a `_created` sample beside every counter and
histogram child unless told not to, which doubles their series and means nothing to our
dashboards or rules. The switch is process-wide (prometheus_client reads it at every collect),
so creating the service's Metrics turns it off for the whole process.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    Summary,
    disable_created_metrics,
)
from prometheus_client.metrics import MetricWrapperBase

from monitor.config.alerts import ALL_KINDS
from monitor.domain import ItemState, Outcome, Period, SourceRef
from monitor.domain.events import Event, ItemAnswered, ItemBreached, ItemCreated, ItemDismissed
from monitor.metrics.moderators import ModeratorLabels

# SLA response-time buckets (seconds), 5 min .. 1 day, enough round values for a median and
# a p90; every configured target is added so that "share answered within target" is an exact
# bucket, not an interpolation. Per brand and period, not per source (docs/metrics.md).
_RESPONSE_BUCKETS = (300, 900, 1800, 3600, 7200, 14400, 86400)
_ALERT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 900, 3600)
POLL_ERROR_REASONS = ("auth", "rate_limited", "transient", "fatal", "store", "error")
DISMISS_REASONS = ("hidden", "deleted")
# What became of one notification for one receiver (webcare_alerts_total's `outcome`).
ALERT_OUTCOMES = ("delivered", "retried", "dead")
# Why one object of a source was skipped (Batch.skipped): the platform refused it (403), no
# longer has it (404, where that does not mean "deleted"), refused the request (other 4xx), or
# sent it without the fields we need.
SKIP_REASONS = ("forbidden", "not_found", "bad_request", "malformed")
WEBHOOK_OUTCOMES = (
    "accepted",
    "bad_signature",
    "malformed",
    "too_large",
    "unknown_page",
    "error",
)


def response_buckets(targets: Iterable[float]) -> list[float]:
    """Default buckets plus every configured target."""
    return sorted({float(b) for b in _RESPONSE_BUCKETS} | {float(t) for t in targets})


class Metrics:
    """The instruments; the label sets a rule reads are pre-created so they exist at 0.

    Every other series appears with its first event: a source costs what it does
    (docs/metrics.md, "What a source costs").
    """

    def __init__(self, *, version: str, targets: Iterable[float]) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.buckets = response_buckets(targets)
        # Replaced by create_app with the roster's accounts; until then every reply is `other`.
        self.moderators = ModeratorLabels()
        item_labels = ["brand", "source", "period"]
        self.items = Counter(
            "webcare_items", "Consumer items stored (backfill included).", item_labels, registry=r
        )
        self.dismissed = Counter(
            "webcare_items_dismissed",
            "Items that left the figures (hidden, deleted, no reply needed).",
            ["brand", "source", "reason"],
            registry=r,
        )
        # Wall clock per source: its mean is enough there (the report has the percentiles).
        self.first_response = Summary(
            "webcare_first_response_seconds",
            "Wall-clock time from a consumer item to the brand's first response.",
            item_labels,
            registry=r,
        )
        self.first_response_sla = self._sla_histogram()
        self.responses = Counter(
            "webcare_responses",
            "First responses by outcome against the SLA target.",
            [*item_labels, "outcome"],
            registry=r,
        )
        self.breaches = Counter(
            "webcare_sla_breaches",
            "Items still unanswered (as known after a re-fetch) at their due time.",
            item_labels,
            registry=r,
        )
        self.moderator_responses = Counter(
            "webcare_moderator_responses",
            "First responses per roster person (their roster id), or other.",
            ["brand", "source", "moderator"],
            registry=r,
        )
        self.detection_lag = Summary(
            "webcare_detection_lag_seconds",
            "Delay between an item's creation on the platform and our first sight of it.",
            ["brand", "source"],
            registry=r,
        )
        self.source_up = Gauge(
            "webcare_source_up",
            "1 if the last poll of the source succeeded.",
            ["brand", "source", "platform"],
            registry=r,
        )
        self.poll_duration = Summary(
            "webcare_poll_duration_seconds",
            "Duration of one poll of a source.",
            ["brand", "source"],
            registry=r,
        )
        self.poll_errors = Counter(
            "webcare_poll_errors",
            "Failed polls by reason.",
            ["brand", "source", "reason"],
            registry=r,
        )
        self.source_skipped = Counter(
            "webcare_source_skipped",
            "Objects (threads, posts) a source could not read and skipped, by reason; each"
            " object counts once until it is readable again.",
            ["brand", "source", "reason"],
            registry=r,
        )
        self.stream_connected = Gauge(
            "webcare_stream_connected",
            "Push streams of the source connected now (Mastodon's streaming API); 0 while"
            " they reconnect or the server refuses them: new posts wait for the next poll.",
            ["brand", "source"],
            registry=r,
        )
        self.last_success = Gauge(
            "webcare_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll.",
            ["brand", "source"],
            registry=r,
        )
        self.api_usage = Gauge(
            "webcare_api_usage_ratio",
            "Highest API usage fraction the platform reported (1 = throttled).",
            ["brand", "source"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "webcare_webhook_deliveries",
            "Webhook deliveries by outcome (accepted, bad_signature, malformed, too_large,"
            " unknown_page, error).",
            ["platform", "outcome"],
            registry=r,
        )
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_deliveries.labels("facebook", outcome)
        self.alerts = Counter(
            "webcare_alerts",
            "Alert deliveries by kind, receiver and outcome (delivered, retried, dead).",
            ["kind", "receiver", "outcome"],
            registry=r,
        )
        self.alert_outbox_pending = Gauge(
            "webcare_alert_outbox_pending",
            "Notifications waiting in the outbox for a receiver.",
            ["receiver"],
            registry=r,
        )
        self.alert_outbox_oldest_age = Gauge(
            "webcare_alert_outbox_oldest_age_seconds",
            "How long the oldest notification waiting for a receiver has waited since its event"
            " (0 when none waits).",
            ["receiver"],
            registry=r,
        )
        self.http_rejected = Counter(
            "webcare_http_rejected",
            "HTTP requests and connections refused instead of served, by endpoint (route,"
            " 'connection' or 'protocol') and reason; a series appears with its first refusal.",
            ["endpoint", "reason"],
            registry=r,
        )
        self.alert_delivery = Histogram(
            "webcare_alert_delivery_seconds",
            "Time from the event (warning/due instant, answer) to the receiver's acceptance.",
            ["receiver"],
            buckets=_ALERT_BUCKETS,
            registry=r,
        )
        self.roster_gap = Gauge(
            "webcare_roster_gap",
            "1 while nobody is on duty for the source (a hole in the roster).",
            ["brand", "source"],
            registry=r,
        )
        self.token_expiry = Gauge(
            "webcare_token_expiry_timestamp_seconds",
            "When a source's access token (kind=access) or its data access (kind=data_access)"
            " expires, Unix time; absent when it never does.",
            ["brand", "source", "kind"],
            registry=r,
        )
        self.build_info = Info("webcare_build", "Version of webcare-monitor.", registry=r)
        self.build_info.info({"version": version})

    def _sla_histogram(self) -> Histogram:
        return Histogram(
            "webcare_first_response_sla_seconds",
            "SLA time (inside the coverage calendar) from item to first response, per brand.",
            ["brand", "period"],
            buckets=self.buckets,
            registry=self.registry,
        )

    def retarget(self, targets: Iterable[float]) -> bool:
        """Follow a reload's SLA targets; True when the response histogram had to restart.

        A histogram's buckets are fixed, so when the targets (and with them the buckets)
        change, the SLA response-time histogram is created again, empty; every other
        instrument keeps counting.
        """
        buckets = response_buckets(targets)
        if buckets == self.buckets:
            return False
        self.registry.unregister(self.first_response_sla)
        self.buckets = buckets
        self.first_response_sla = self._sla_histogram()
        return True

    def retain(self, sources: Iterable[SourceRef], receivers: Iterable[str]) -> int:
        """Drop the series of sources and receivers a reload removed; returns how many.

        A series with a `source` label stays while a configured source has that name (and the
        same `brand` and `platform`, where the series has those labels); one with a `receiver`
        label while that receiver is configured. Every other series stays.
        """
        by_name = {ref.name: ref for ref in sources}
        brands = {ref.brand for ref in by_name.values()}
        kept_receivers = set(receivers)

        def kept(labels: dict[str, str]) -> bool:
            if "receiver" in labels and labels["receiver"] not in kept_receivers:
                return False
            if "source" not in labels:
                # A per-brand series stays while a configured source has that brand.
                return "brand" not in labels or labels["brand"] in brands
            ref = by_name.get(labels["source"])
            return (
                ref is not None
                and labels.get("brand", ref.brand) == ref.brand
                and labels.get("platform", ref.platform) == ref.platform
            )

        dropped = 0
        for metric in vars(self).values():
            if not isinstance(metric, MetricWrapperBase) or not metric._labelnames:
                continue
            names = metric._labelnames
            stale = set()
            for family in metric.collect():
                for sample in family.samples:
                    labels = {name: sample.labels[name] for name in names}
                    if not kept(labels):
                        stale.add(tuple(labels[name] for name in names))
            for values in stale:
                metric.remove(*values)
                dropped += 1
        return dropped

    def prepare(self, ref: SourceRef) -> None:
        """Create the series of a source that a rule reads, so they exist at 0 from the start.

        Only those: `increase()` in a rule must see the first event (webcare-recording.yml
        reads items, in-time responses, breaches and the SLA histogram), and the dashboards'
        variables list the sources by `webcare_source_up`. Error, skip and dismiss reasons,
        the wall-clock, lag and poll-duration summaries appear with their first event, so a
        quiet source costs few series (docs/metrics.md).
        """
        for period in Period:
            labels = (ref.brand, ref.name, period.value)
            self.items.labels(*labels)
            self.breaches.labels(*labels)
            for outcome in Outcome:  # in_time for the rules; late beside it, two series
                self.responses.labels(*labels, outcome.value)
            self.first_response_sla.labels(ref.brand, period.value)
        # A new series starts at 0; after a reload a kept one keeps its last value.
        self.source_up.labels(ref.brand, ref.name, ref.platform)
        self.last_success.labels(ref.brand, ref.name)
        self.api_usage.labels(ref.brand, ref.name)

    def prepare_receiver(self, name: str, kinds: Iterable[str] = ALL_KINDS) -> None:
        """Create a receiver's series so they exist at 0 from the start.

        `kinds`: the notification kinds the receiver is sent (its config's `kinds`), so that
        `increase(webcare_alerts_total{outcome="dead"}[1h])` sees the very first one.
        """
        for kind in kinds:
            for outcome in ALERT_OUTCOMES:
                self.alerts.labels(kind, name, outcome)
        self.alert_outbox_pending.labels(name).set(0)
        self.alert_outbox_oldest_age.labels(name).set(0)
        self.alert_delivery.labels(name)

    def apply(self, event: Event) -> None:
        """Count an event the pipeline committed."""
        ref = event.source
        item = event.item
        labels = (ref.brand, ref.name, item.period.value)
        if isinstance(event, ItemCreated):
            self.items.labels(*labels).inc()
            if not event.historic:
                self.detection_lag.labels(ref.brand, ref.name).observe(
                    max(0.0, event.detection_lag_seconds)
                )
        elif isinstance(event, ItemAnswered):
            assert item.response_seconds is not None and item.response_sla_seconds is not None
            outcome = Outcome.IN_TIME if item.state is ItemState.ANSWERED_IN_TIME else Outcome.LATE
            self.responses.labels(*labels, outcome.value).inc()
            self.first_response.labels(*labels).observe(item.response_seconds)
            self.first_response_sla.labels(ref.brand, item.period.value).observe(
                item.response_sla_seconds
            )
            moderator = self.moderators.label(ref.name, event.responder_name)
            self.moderator_responses.labels(ref.brand, ref.name, moderator).inc()
        elif isinstance(event, ItemBreached):
            self.breaches.labels(*labels).inc()
        elif isinstance(event, ItemDismissed):
            self.dismissed.labels(ref.brand, ref.name, item.dismissed_reason or "other").inc()
