"""Webcare · On duty: what waits now, whether the alerts reach the team, how fast posts are seen."""

from __future__ import annotations

from .grafana import (
    COLOR_TEXT,
    Board,
    Json,
    Panel,
    dashboard,
    legend,
    override,
    reduce_options,
    target,
    thresholds,
    value_text,
)
from .vocabulary import (
    ANY_IS_BAD,
    BRAND_SOURCE,
    BRAND_VARIABLE,
    MINUTES_STEPS,
    NEUTRAL,
    PLATFORM_VARIABLE,
    RECEIVER,
    RECEIVER_VARIABLE,
    SOURCE_VARIABLE,
    WAIT_STEPS,
    histogram_quantile,
    increase,
    mean,
    open_items_stat,
    rate,
    stat,
    table,
    timeseries,
    waiting_over_time,
)


def right_now_row(b: Board) -> None:
    """The queue now: per SLA state, the oldest, the roster."""
    b.row("Right now")
    b.add(
        open_items_stat(
            "open", "Open", "Unanswered items still well within their target.", NEUTRAL
        ),
        4,
        5,
    )
    b.add(
        open_items_stat(
            "warning",
            "Due soon",
            "Unanswered items past their warning point (warn_at × target): answer these"
            " first. The queue page lists them, most urgent first.",
            thresholds(("green", None), ("orange", 1)),
        ),
        4,
        5,
    )
    b.add(
        open_items_stat(
            "breached", "Breached", "Unanswered items past their due time.", ANY_IS_BAD
        ),
        4,
        5,
    )
    b.add(
        stat(
            "Oldest waiting",
            "Age of the oldest unanswered item per source.",
            (
                f"max by (source) (webcare_oldest_open_item_age_seconds{{{BRAND_SOURCE}}})",
                "{{source}}",
            ),
            text_mode="value_and_name",
            unit="s",
            decimals=0,
            steps=WAIT_STEPS,
        ),
        6,
        5,
    )
    b.add(
        stat(
            "Who is on duty",
            "Whether the roster has somebody on duty for each source now (a gap goes to the lead).",
            (f"max by (source) (webcare_roster_gap{{{BRAND_SOURCE}}})", "{{source}}"),
            text_mode="value_and_name",
            color_mode="background",
            mappings=value_text({"0": ("covered", "green"), "1": ("NOBODY ON DUTY", "red")}),
            steps=ANY_IS_BAD,
        ),
        6,
        5,
    )
    b.add(
        Panel(
            "bargauge",
            "Waiting by source",
            "Unanswered items per source and SLA state.",
            [
                target(
                    f"sum by (source, state) (webcare_open_items{{{BRAND_SOURCE}}})",
                    "{{source}} · {{state}}",
                    instant=True,
                )
            ],
            {
                "displayMode": "gradient",
                "legend": legend(show=False),
                "maxVizHeight": 300,
                "minVizHeight": 16,
                "minVizWidth": 8,
                "namePlacement": "auto",
                "orientation": "horizontal",
                "reduceOptions": reduce_options(),
                "showUnfilled": True,
                "sizing": "auto",
                "valueMode": "color",
            },
            unit="short",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 1), ("red", 5)),
        ),
        10,
        8,
    )
    b.add(waiting_over_time("Unanswered items by SLA state."), 14, 8)


def alerts_row(b: Board) -> None:
    """Whether the warnings and breaches reach the team."""
    b.row("Alerts to the team")
    delivered = increase("webcare_alerts_total", f'{RECEIVER}, outcome="delivered"')
    b.add(
        stat(
            "Alerts delivered in the range",
            "Warnings, breaches and resolved messages accepted by the receivers.",
            (f"sum by (kind) ({delivered})", "{{kind}}"),
            text_mode="value_and_name",
            unit="short",
            decimals=0,
            steps=NEUTRAL,
        ),
        8,
        5,
    )
    b.add(
        stat(
            "Waiting in the outbox",
            "Notifications not yet accepted by their receiver (retried with backoff; more than"
            " a few for minutes means the receiver is down).",
            (f"sum by (receiver) (webcare_alert_outbox_pending{{{RECEIVER}}})", "{{receiver}}"),
            text_mode="value_and_name",
            unit="short",
            decimals=0,
            steps=thresholds(("green", None), ("orange", 1), ("red", 10)),
        ),
        8,
        5,
    )
    delivery = increase("webcare_alert_delivery_seconds_bucket", RECEIVER)
    b.add(
        stat(
            "Alert delivery time (p90, in the range)",
            "From the warning/due instant (or the answer) to the receiver's acceptance.",
            (histogram_quantile(0.9, "receiver", delivery), "{{receiver}}"),
            text_mode="value_and_name",
            unit="s",
            decimals=2,
            # NaN: nothing was delivered in the range, so there is no delivery time.
            mappings=[
                {
                    "options": {"match": "nan", "result": {"index": 0, "text": "none delivered"}},
                    "type": "special",
                }
            ],
            steps=thresholds(("green", None), ("orange", 5), ("red", 60)),
        ),
        8,
        5,
    )
    outcomes = {
        "delivered": ("delivered", "green"),
        "retried": ("retried", "orange"),
        "dead": ("dead", "red"),
    }
    b.add(
        table(
            "Delivery state in the range",
            "Notifications per receiver, kind and outcome: delivered, retried (a failed"
            " attempt that will be retried) or dead (given up after max_age).",
            (
                f"sum by (receiver, kind, outcome) ({increase('webcare_alerts_total', RECEIVER)})",
                "",
            ),
            sort_by="Notifications",
            descending=True,
            rename={
                "receiver": "Receiver",
                "kind": "Kind",
                "outcome": "Outcome",
                "Value": "Notifications",
            },
            overrides=[
                override("Notifications", decimals=0),
                override("Outcome", mappings=value_text(outcomes), **COLOR_TEXT),
            ],
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Notifications per minute",
            "Delivery attempts per receiver and outcome.",
            (
                f"sum by (receiver, outcome) ({rate('webcare_alerts_total', RECEIVER)}) * 60",
                "{{receiver}} · {{outcome}}",
            ),
            bars=True,
            stacked=True,
            unit="short",
            decimals=1,
        ),
        12,
        8,
    )


def detection_row(b: Board) -> None:
    """How fast new posts are seen, and how to read the dashboard."""
    b.row("How fast posts are seen")
    b.add(
        stat(
            "Detection lag (mean, in the range)",
            "From a post's creation on the platform to this service storing it (poll interval"
            " plus API delay; webhooks make it seconds), the mean per source. Backfilled"
            " history is left out.",
            (mean("source", "webcare_detection_lag_seconds"), "{{source}}"),
            text_mode="value_and_name",
            unit="s",
            decimals=0,
            steps=MINUTES_STEPS,
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "Detection lag over time",
            "Mean detection lag per source.",
            (mean("source", "webcare_detection_lag_seconds", over="rate"), "{{source}}"),
            unit="s",
        ),
        16,
        8,
    )
    b.add(
        Panel(
            "text",
            "How to read this",
            "",
            options={
                "content": (
                    "**Open** items are within their target; **due soon** ones are past the"
                    " warning point (warn_at × target) and should be answered first;"
                    " **breached** ones are past their due time. The on-duty student gets a"
                    " webhook for each warning and breach and a *resolved* message when the"
                    " item is answered.\n\n"
                    "The queue page of webcare-monitor (`/` on its HTTP port, with an API"
                    " token) lists every waiting post with its excerpt and permalink, most"
                    " urgent first."
                ),
                "mode": "markdown",
            },
        ),
        24,
        3,
    )


def on_duty() -> Json:
    """The dashboard for the student on duty and the team lead."""
    b = Board()
    right_now_row(b)
    alerts_row(b)
    detection_row(b)
    return dashboard(
        uid="webcare-on-duty",
        title="Webcare · On duty",
        description="For the student on duty and the team lead: what waits now, what is due"
        " soon, whether the alerts reach the team, and how fast new posts are seen.",
        board=b,
        variables=[BRAND_VARIABLE, PLATFORM_VARIABLE, SOURCE_VARIABLE, RECEIVER_VARIABLE],
        time_from="now-6h",
        refresh="30s",
    )
