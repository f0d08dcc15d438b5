"""The pure escalation/reminder plan: instants, catch-up after an outage, the next step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.alerts.escalation import FollowUp, FollowUpPolicy, Step

BREACH = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
POLICY = FollowUpPolicy(escalate_after=600, escalate_to=("backup", "lead"), remind_every=420)


def row(**values: object) -> FollowUp:
    return FollowUp(item_id=1, source="s", breached_at=BREACH, **values)  # type: ignore[arg-type]


def at(minutes: float) -> datetime:
    return BREACH + timedelta(minutes=minutes)


def test_steps_come_due_at_their_instants_and_not_a_microsecond_before() -> None:
    assert POLICY.next_at(row()) == at(7)
    assert POLICY.due(row(), at(7) - timedelta(microseconds=1)) == []
    assert POLICY.due(row(), at(7)) == [Step(at=at(7), kind="reminder", number=1)]
    assert POLICY.due(row(reminders_sent=1), at(10)) == [
        Step(at=at(10), kind="escalation", number=1)
    ]
    assert POLICY.next_at(row(reminders_sent=1, escalations_sent=1)) == at(14)
    assert POLICY.next_at(row(reminders_sent=2, escalations_sent=1)) == at(20)


def test_after_an_outage_every_escalation_fires_and_reminders_collapse() -> None:
    assert POLICY.due(row(), at(25)) == [
        Step(at=at(10), kind="escalation", number=1),
        Step(at=at(20), kind="escalation", number=2),
        Step(at=at(21), kind="reminder", number=3),
    ]


def test_after_each_step_the_next_instant_is_recomputed_and_stops_end_everything() -> None:
    done = POLICY.after(row(), Step(at=at(10), kind="escalation", number=1))
    assert (done.escalations_sent, done.next_at) == (1, at(7))
    assert POLICY.next_at(row(stopped_at=at(3), stop_reason="acked")) is None
    assert POLICY.due(row(stopped_at=at(3)), at(100)) == []
    acked_before_breach = FollowUp(item_id=1, source="s", breached_at=None)
    assert POLICY.next_at(acked_before_breach) is None
    quiet = FollowUpPolicy(escalate_after=600, escalate_to=(), remind_every=None)
    assert quiet.next_at(row()) is None


def test_exact_multiples_are_not_lost_to_float_division() -> None:
    odd = FollowUpPolicy(escalate_after=600, escalate_to=(), remind_every=0.1)
    breach = datetime(2026, 1, 1, tzinfo=UTC)
    f = FollowUp(item_id=1, source="s", breached_at=breach)
    steps = odd.due(f, breach + timedelta(seconds=0.3))
    assert steps == [Step(at=breach + timedelta(seconds=0.3), kind="reminder", number=3)]
