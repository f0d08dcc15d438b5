"""Webcare · Operations: sources and polling, API quota and tokens, the SLO, alert delivery."""

from __future__ import annotations

from .grafana import Board, Json, Panel, dashboard, legend, target, thresholds, value_text
from .vocabulary import (
    ANY_IS_BAD,
    BRAND_SOURCE,
    BRAND_VARIABLE,
    ERROR_BUDGET,
    JOB_VARIABLE,
    MINUTES_STEPS,
    NEUTRAL,
    PLATFORM_VARIABLE,
    RECEIVER,
    RECEIVER_VARIABLE,
    SOURCE_VARIABLE,
    UP_DOWN,
    Query,
    increase,
    mean,
    rate,
    stat,
    timeseries,
)

# The selected sources (Brand, Platform, Source) that /webhooks/facebook serves: monitor/web/
# facebook_webhook.py routes a Page's feed, messaging and Instagram entries to their sources.
# One series without labels, so that `and on ()` keeps the webhook counter only while one is.
FACEBOOK_WEBHOOK_SOURCES = (
    f'group(webcare_source_up{{{BRAND_SOURCE}, platform=~"$platform",'
    ' platform=~"facebook_page|messenger|instagram"})'
)

# A 0/1 "is up" value: red when down.
UP_STEPS = thresholds(("red", None), ("green", 1))


def burn_rate(window: str) -> Query:
    """Error budget burn rate over one window of the recording rules (1 = on budget)."""
    return (
        f"webcare:sla_error:ratio_rate{window}{{{BRAND_SOURCE}}} / {ERROR_BUDGET}",
        f"{window} · {{{{source}}}}",
    )


def polling_row(b: Board) -> None:
    """Whether every source is polled, how long it takes, API quota and tokens."""
    b.row("Sources and polling")
    b.add(
        stat(
            "Sources down",
            "Sources whose last poll failed (webcare_source_up = 0).",
            (f"count(webcare_source_up{{{BRAND_SOURCE}}} == 0) or vector(0)", "down"),
            color_mode="background",
            unit="short",
            decimals=0,
            steps=ANY_IS_BAD,
        ),
        4,
        6,
    )
    b.add(
        Panel(
            "state-timeline",
            "Source up / down",
            "Whether each source's last poll succeeded, over time.",
            [target(f"max by (source) (webcare_source_up{{{BRAND_SOURCE}}})", "{{source}}")],
            {
                "alignValue": "left",
                "legend": legend(show=False),
                "mergeValues": True,
                "rowHeight": 0.9,
                "showValue": "never",
                "tooltip": {"mode": "single", "sort": "none"},
            },
            custom={
                "fillOpacity": 80,
                "hideFrom": {"legend": False, "tooltip": False, "viz": False},
                "lineWidth": 0,
            },
            mappings=value_text(UP_DOWN),
            steps=UP_STEPS,
        ),
        12,
        6,
    )
    b.add(
        stat(
            "Since the last successful poll",
            "Per source; compare with its poll_interval (the poller slows down under heavy API"
            " usage).",
            (
                "time() - max by (source) ("
                f"webcare_last_successful_poll_timestamp_seconds{{{BRAND_SOURCE}}} > 0)",
                "{{source}}",
            ),
            text_mode="value_and_name",
            unit="s",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 600), ("red", 1800)),
        ),
        8,
        6,
    )
    b.add(
        timeseries(
            "Poll duration",
            "Mean duration of one poll per source.",
            (mean("source", "webcare_poll_duration_seconds", over="rate"), "{{source}}"),
            unit="s",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Poll errors by reason (per minute)",
            "Failed polls: auth (token; see the log), rate_limited, transient (network, 5xx),"
            " fatal, store, error.",
            (
                f"sum by (source, reason) ({rate('webcare_poll_errors_total')}) * 60",
                "{{source}} · {{reason}}",
            ),
            bars=True,
            stacked=True,
            unit="short",
            decimals=2,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "API usage",
            "Highest usage the platform reports (Graph API usage headers). The poller slows"
            " down above 50%, 4x at 75% and 10x at 90%.",
            (f"max by (source) (webcare_api_usage_ratio{{{BRAND_SOURCE}}})", "{{source}}"),
            threshold_lines=True,
            unit="percentunit",
            min=0,
            max=1,
            steps=thresholds(("green", None), ("yellow", 0.5), ("orange", 0.75), ("red", 0.9)),
        ),
        12,
        8,
    )
    b.add(
        stat(
            "Access tokens expire in",
            "Time left on each Facebook source's token (kind: access or data_access), from"
            " /debug_token every 6 hours; a warning is logged 7 days ahead. A page whose"
            " token never expires shows \u201cnever\u201d.",
            (
                "(min by (brand, source, kind) "
                f"(webcare_token_expiry_timestamp_seconds{{{BRAND_SOURCE}}}) - time())"
                " or on (brand, source) label_replace(group by (brand, source) (webcare_source_up{"
                f'{BRAND_SOURCE}, platform="facebook_page"}}) * +Inf, "kind", "access",'
                ' "", "")',
                "{{source}} · {{kind}}",
            ),
            text_mode="value_and_name",
            unit="s",
            decimals=0,
            mappings=value_text({"Infinity": ("never", "green")}),
            steps=thresholds(("red", None), ("orange", 86400), ("green", 7 * 86400)),
        ),
        6,
        8,
    )
    b.add(
        timeseries(
            "Facebook webhook deliveries (per minute)",
            "Deliveries to /webhooks/facebook by outcome; anything but accepted was refused"
            " (403) and stored nothing. The endpoint serves the Facebook Page, Messenger and"
            " Instagram sources: shown while the Brand, Platform and Source selections hold"
            " one of them (the counter is per endpoint, not per source).",
            # The webhook counter has neither a brand nor a source label: it is per endpoint,
            # so it follows the variables through the sources it serves.
            (
                "sum by (outcome) (rate(webcare_webhook_deliveries_total[$__rate_interval])) * 60"
                f" and on () {FACEBOOK_WEBHOOK_SOURCES}",
                "{{outcome}}",
            ),
            unit="short",
            decimals=1,
        ),
        6,
        8,
    )


def slo_row(b: Board) -> None:
    """The SLO behind the alerts: burn rates and what is left of the error budget."""
    b.row("SLO: 95% of items answered within target (deploy/prometheus rules)")
    b.add(
        timeseries(
            "Error budget burn rate",
            "How fast each source spends its error budget (1 = exactly the budget over 30"
            " days). Pages at 14.4 (1h) or 6 (6h), tickets at 3 (1d) or 1 (3d), each confirmed"
            " by a short window and a minimum number of judged items.",
            *(burn_rate(window) for window in ("1h", "6h", "1d", "3d")),
            legend_table=True,
            threshold_lines=True,
            unit="short",
            decimals=1,
            min=0,
            steps=thresholds(("green", None), ("yellow", 1), ("orange", 6), ("red", 14.4)),
        ),
        14,
        8,
    )
    b.add(
        stat(
            "Error budget left (30 days)",
            "1 − (breached / judged over 30 days) / 5%. Below zero the SLO is missed.",
            (
                f"1 - webcare:sla_error:ratio_rate30d{{{BRAND_SOURCE}}} / {ERROR_BUDGET}",
                "{{source}}",
            ),
            text_mode="value_and_name",
            unit="percentunit",
            decimals=0,
            steps=thresholds(("red", None), ("orange", 0), ("green", 0.25)),
        ),
        5,
        8,
    )
    b.add(
        stat(
            "Items judged (30 days)",
            "Items answered in time plus items breached over 30 days: the SLO's volume.",
            (f"webcare:sla_judged:increase30d{{{BRAND_SOURCE}}}", "{{source}}"),
            text_mode="value_and_name",
            unit="short",
            decimals=0,
            steps=NEUTRAL,
        ),
        5,
        8,
    )


def service_row(b: Board) -> None:
    """The alert outbox, the scrape target and the version."""
    b.row("Alert delivery and the service")
    b.add(
        timeseries(
            "Alert outbox backlog",
            "Notifications waiting per receiver, retries included (a receiver that is down keeps"
            " its backlog here until it accepts them or they reach max_age).",
            (f"sum by (receiver) (webcare_alert_outbox_pending{{{RECEIVER}}})", "{{receiver}}"),
            unit="short",
            decimals=0,
        ),
        6,
        6,
    )
    b.add(
        stat(
            "Oldest waiting alert",
            "How long the oldest notification not yet accepted has waited since its event, per"
            " receiver (0: none waits); the WebcareAlertOutboxBacklog alert pages above 15"
            " minutes.",
            (
                f"max by (receiver) (webcare_alert_outbox_oldest_age_seconds{{{RECEIVER}}})",
                "{{receiver}}",
            ),
            text_mode="value_and_name",
            unit="s",
            decimals=0,
            steps=MINUTES_STEPS,
        ),
        4,
        6,
    )
    dead = increase("webcare_alerts_total", f'{RECEIVER}, outcome="dead"')
    b.add(
        stat(
            "Dead-lettered in the range",
            "Notifications given up after max_age: those students never got them.",
            (f"sum by (receiver) ({dead})", "{{receiver}}"),
            text_mode="value_and_name",
            unit="short",
            decimals=0,
            steps=ANY_IS_BAD,
        ),
        5,
        6,
    )
    b.add(
        stat(
            "Scrape target",
            "Whether Prometheus reaches webcare-monitor's /metrics (job $job).",
            ('up{job=~"$job"}', "{{instance}}"),
            text_mode="value_and_name",
            color_mode="background",
            mappings=value_text({"1": ("up", "green"), "0": ("DOWN", "red")}),
            steps=UP_STEPS,
        ),
        5,
        6,
    )
    b.add(
        stat(
            "Version",
            "webcare_build_info per instance.",
            ('webcare_build_info{job=~"$job"}', "{{version}} on {{instance}}"),
            text_mode="name",
            unit="none",
            steps=NEUTRAL,
        ),
        4,
        6,
    )


def operations() -> Json:
    """The dashboard for the operator."""
    b = Board()
    polling_row(b)
    slo_row(b)
    service_row(b)
    return dashboard(
        uid="webcare-operations",
        title="Webcare · Operations",
        description="For the operator: sources and polling, API quota and tokens, the SLO"
        " burn rates behind the alerts, alert delivery, version.",
        board=b,
        variables=[
            JOB_VARIABLE,
            BRAND_VARIABLE,
            PLATFORM_VARIABLE,
            SOURCE_VARIABLE,
            RECEIVER_VARIABLE,
        ],
        time_from="now-24h",
        refresh="1m",
    )
