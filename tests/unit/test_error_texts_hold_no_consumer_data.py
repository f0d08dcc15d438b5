"""Error texts that reach log lines hold no consumer data (docs/data-protection.md).

- A receiver's refusal quoting the alert it refused: its answer is shown in the log and kept
  in the outbox row's last_error (which an erasure does not scrub).
- A failed SQL statement: SQLAlchemy's error text would end in the statement's parameters,
  the text and name of the consumer being stored ("source down" logs it).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from monitor.alerts.models import AlertItem
from monitor.alerts.transport import _body_hint, without_consumer_data
from monitor.config.alerts import ReceiverConfig
from monitor.store.bulk import _execute
from monitor.store.engine import create_engine

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
NAME = "Zoë Quintanilla-Vock"
TEXT = "my parcel 77Q-ZX never came, call 0612345678"
ITEM = AlertItem(
    item_id=7,
    permalink="https://www.facebook.com/555000111_1000001?comment_id=1000002",
    author=NAME,
    excerpt=TEXT,
    created_at=NOW,
    due_at=NOW,
    period="after_hours",
    state="breached",
)
RECEIVER = ReceiverConfig(name="strict", type="webhook", url=SecretStr("https://hooks.test/x"))


def assert_clean(said: str) -> None:
    for piece in ("Zoë", "Zo\\u00eb", "Quintanilla", "Quinta", "77Q", "0612345678", "parcel"):
        assert piece.casefold() not in said.casefold(), said


def test_a_refusal_quoting_the_alert_is_logged_without_it() -> None:
    answer = (
        '{"error": "unknown field in items[0]", "item": {"author": "Zoë Quintanilla-Vock", '
        '"excerpt": "my parcel 77Q-ZX never came, call 0612345678"}}'
    )
    hint = _body_hint(RECEIVER, answer.encode(), [ITEM])
    assert_clean(hint)
    # What the receiver says of its own stays readable.
    assert hint.startswith(': {"error": "unknown field in items[0]", "item": {"author": "')


@pytest.mark.parametrize(
    "answer",
    [
        # Python's json.dumps escapes non-ASCII letters.
        '{"detail": "bad author \\"Zo\\u00eb Quintanilla-Vock\\""}',
        # Another case, in prose.
        "rejected: ZOË QUINTANILLA wrote 'MY PARCEL 77Q-ZX NEVER CAME'",
        # Cut off by the receiver (or by our byte limit) in the middle of a word, at either end.
        "tanilla-Vock: my parcel 77Q-ZX never came, call 06123",
        "excerpt too long: my parcel 77Q-ZX never came, ca… and Quinta…",
    ],
)
def test_quotes_in_any_form_are_masked(answer: str) -> None:
    said = without_consumer_data(answer, [ITEM])
    assert_clean(said)
    assert "…" in said


def test_a_plain_error_is_left_alone() -> None:
    for answer in ("invalid_payload", "channel_is_archived", "HTTP 413: payload too large"):
        assert without_consumer_data(answer, [ITEM]) == answer
    assert without_consumer_data("Quintanilla", []) == "Quintanilla"


def test_the_byte_limit_cutting_a_name_leaves_no_part_of_it() -> None:
    # What _post reads of a longer answer: its first 512 bytes, here mostly blank.
    detail = (b" " * 498 + b"bad: " + NAME.encode())[:512]
    assert detail.endswith(b" Quin")
    assert _body_hint(RECEIVER, detail, [ITEM]) == ": bad: … …"


async def test_a_failed_statement_does_not_quote_its_parameters(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (author TEXT UNIQUE, body TEXT)"))
            await conn.execute(text("INSERT INTO t VALUES ('x', 'y')"))
        # Through SQLAlchemy, and through the bulk path that talks to aiosqlite directly.
        with pytest.raises(DBAPIError) as through_sqlalchemy:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES ('x', :body)"), {"body": TEXT})
        with pytest.raises(DBAPIError) as through_bulk:
            async with engine.begin() as conn:
                await _execute(conn, "INSERT INTO t VALUES (?, ?)", [("x", NAME)], many=True)
    finally:
        await engine.dispose()
    for failed in (through_sqlalchemy.value, through_bulk.value):
        assert isinstance(failed.orig, sqlite3.IntegrityError)
        said = str(failed)
        assert "UNIQUE constraint failed: t.author" in said  # still says what went wrong
        assert_clean(said)
