"""Issue 18, part 5: the moderator label names roster ids or `other`, never a platform name."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.domain import Item, ItemState, Period, SourceRef
from monitor.domain.events import ItemAnswered
from monitor.metrics import Metrics
from monitor.metrics.moderators import MAX_MODERATORS_PER_SOURCE, ModeratorLabels

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REF = SourceRef(name="acme-fb", brand="acme", platform="facebook_page")
ITEM = Item(
    message_id=1,
    source="acme-fb",
    brand="acme",
    thread_id="t",
    created_at=AT,
    period=Period.AFTER_HOURS,
    weekend=False,
    state=ItemState.ANSWERED_IN_TIME,
    target_seconds=1800.0,
    warning_at=AT,
    due_at=AT,
    responded_at=AT,
    response_seconds=60.0,
    response_sla_seconds=60.0,
)


def _moderators(metrics: Metrics) -> set[str]:
    (family,) = [f for f in metrics.registry.collect() if f.name == "webcare_moderator_responses"]
    return {s.labels["moderator"] for s in family.samples if s.name.endswith("_total")}


def test_ten_thousand_responders_stay_bounded_and_named_by_roster_id() -> None:
    metrics = Metrics(version="test", targets=[1800.0])
    roster = {f"forum-user-{n}": f"student-{n}" for n in range(100)}
    metrics.moderators = ModeratorLabels({**roster, "Nina V": "night-nina"})
    names = ["Nina V", *(f"Consumer {n}" for n in range(10_000)), *roster]
    for name in names:
        metrics.apply(ItemAnswered(source=REF, item=ITEM, responder_name=name))
    labels = _moderators(metrics)
    assert len(labels) == MAX_MODERATORS_PER_SOURCE + 1  # the cap, plus `other`
    assert "night-nina" in labels and "other" in labels
    assert not any(label.startswith(("Consumer", "forum-user")) for label in labels)


def test_unknown_and_missing_responders_are_other() -> None:
    labels = ModeratorLabels({"anna_acme": "student-a"})
    assert labels.label("s", "ANNA_ACME") == "student-a"  # platforms vary the case
    assert labels.label("s", "Acme Bikes") == "other"
    assert labels.label("s", None) == "other"
