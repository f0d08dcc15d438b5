"""Bulk inserts of plain tuples, and the few statements every batch runs, at driver level: the
column types convert each value, SQLAlchemy's per-row parameter handling and per-statement
overhead (which cost more than the database's own work) are left out."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from itertools import chain
from operator import itemgetter
from typing import Any

import aiosqlite
from sqlalchemy import Column, Dialect, Table, bindparam
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.store.types import UTCDateTime

Convert = Callable[[Any], Any]
# Bind parameters of one multi-row INSERT: under SQLite's 32,766 and PostgreSQL's 32,767.
MAX_PARAMETERS = 30_000
_DOLLAR = re.compile(r"\$(\d+)")
_SAMPLES = (
    datetime(2026, 3, 29, 1, 59, 59, tzinfo=UTC),
    datetime(987, 6, 5, 4, 3, 2, 123456, tzinfo=timezone(timedelta(hours=2))),
)


@dataclass(frozen=True)
class _Plan:
    head: str  # INSERT INTO table (columns)
    row: str  # one row's placeholders, as SQLAlchemy renders them for the dialect
    width: int  # parameters per row
    get: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # a row's values in placeholder order
    converts: tuple[tuple[int, Convert], ...]  # positions whose values the type converts
    instants: frozenset[int]  # positions of instants: a batch repeats its detection time


# SQLite texts of recent UTC instants: an item's creation and response are its message's and
# its reply's, written a moment before; the text depends on the instant alone. Only UTC keys:
# equal wall times of another zone may be different instants (fold).
_TEXTS: dict[datetime, str] = {}
_TEXTS_LIMIT = 10_000


def _sqlite_instant(slow: Convert) -> Convert:
    """UTCDateTime's SQLite text, written by isoformat (C) instead of %-formatting a dict."""

    def convert(value: datetime) -> Any:
        if value.tzinfo is not UTC:
            if value.tzinfo is None:
                return slow(value)  # refused the way the type refuses it
            return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]
        text = _TEXTS.get(value)
        if text is None:
            if len(_TEXTS) >= _TEXTS_LIMIT:
                _TEXTS.clear()
            text = _TEXTS[value] = value.isoformat(" ", "microseconds")[:26]
        return text

    # Used only while it writes exactly what the type writes.
    return convert if all(convert(s) == slow(s) for s in _SAMPLES) else slow


def _converter(table: Table, name: str, dialect: Dialect) -> Convert | None:
    column_type = table.c[name].type
    convert: Convert | None = column_type.dialect_impl(dialect).bind_processor(dialect)
    if convert is not None and isinstance(column_type, UTCDateTime) and dialect.name == "sqlite":
        return _sqlite_instant(convert)
    return convert


@cache
def _plan(table: Table, names: frozenset[str], dialect: Dialect) -> _Plan:
    compiled = (
        table.insert().inline().values({n: bindparam(n) for n in names}).compile(dialect=dialect)
    )
    head, _, row = str(compiled).partition(" VALUES ")
    order = list(compiled.positiontup or [])
    converts = ((i, _converter(table, n, dialect)) for i, n in enumerate(order))
    return _Plan(
        head=head,
        row=row,
        width=len(order),
        get=itemgetter(*order),
        converts=tuple((i, c) for i, c in converts if c is not None),
        instants=frozenset(
            i for i, n in enumerate(order) if isinstance(table.c[n].type, UTCDateTime)
        ),
    )


def placeholders(dialect: Dialect, count: int, first: int = 1) -> str:
    """`count` bind placeholders as the driver takes them ($n numbered from `first`)."""
    if dialect.paramstyle == "qmark":
        return ", ".join("?" * count)
    if dialect.paramstyle == "numeric_dollar":
        return ", ".join(f"${n}" for n in range(first, first + count))
    raise NotImplementedError(f"placeholders for paramstyle {dialect.paramstyle}")


def binder(column: Column[Any], dialect: Dialect) -> Convert:
    """What the column's type makes of a bound value."""
    convert = _converter(column.table, column.name, dialect)
    return convert if convert is not None else _same


def _same(value: Any) -> Any:
    return value


@cache
def _readers(columns: tuple[Column[Any], ...], dialect: Dialect) -> tuple[tuple[int, Convert], ...]:
    processors = (c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    return tuple((i, p) for i, p in enumerate(processors) if p is not None)


async def fetch(
    conn: AsyncConnection, sql: str, params: Sequence[Any], columns: Sequence[Column[Any]]
) -> list[tuple[Any, ...]]:
    """Rows of driver-level SQL that selects (or returns) `columns`, in that order, each value
    converted by its column's type as SQLAlchemy's results convert it."""
    rows = await _execute(conn, sql, tuple(params))
    readers = _readers(tuple(columns), conn.dialect)
    if not rows or not readers:
        return rows
    values: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for i, read in readers:
        values[i] = list(map(read, values[i]))
    return list(zip(*values, strict=True))


def _renumber(row: str, offset: int) -> str:
    return _DOLLAR.sub(lambda m: f"${int(m[1]) + offset}", row) if offset and "$" in row else row


def _remembering(convert: Convert) -> Convert:
    """`convert` that skips None and reuses its last answer for the same object."""
    last: list[Any] = [None, None]

    def once(value: Any) -> Any:
        if value is None:
            return None
        if value is not last[0]:
            last[0], last[1] = value, convert(value)
        return last[1]

    return once


def _parameters(plan: _Plan, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    # Column by column: the loops over rows run in C (map, zip), only conversions in Python.
    columns: list[Sequence[Any]] = list(zip(*map(plan.get, rows), strict=True))
    for i, convert in plan.converts:
        columns[i] = list(map(_remembering(convert) if i in plan.instants else convert, columns[i]))
    return list(zip(*columns, strict=True))


async def _execute(
    conn: AsyncConnection, sql: str, params: Sequence[Any], *, many: bool = False
) -> list[tuple[Any, ...]]:
    """Run driver-level SQL. On aiosqlite straight on its connection: one hand-over to its
    thread instead of SQLAlchemy's four (cursor, execute, fetch, close), which cost more than
    the insert itself; errors are raised as SQLAlchemy raises them."""
    driver = (await conn.get_raw_connection()).driver_connection
    if not isinstance(driver, aiosqlite.Connection):
        result = await conn.exec_driver_sql(sql, params)
        return [] if many else [tuple(row) for row in result]
    try:
        if many:
            await driver.executemany(sql, params)
            return []
        return [tuple(row) for row in await driver.execute_fetchall(sql, params)]
    except sqlite3.Error as err:
        # Parameters hidden as the engine hides them (create_engine): they are the consumer's
        # text and name, and this error's text reaches log lines.
        raise DBAPIError.instance(sql, params, err, sqlite3.Error, hide_parameters=True) from err


async def insert_many(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """executemany of the rows (each with the same keys)."""
    if rows:
        plan = _plan(table, frozenset(rows[0]), conn.dialect)
        sql = f"{plan.head} VALUES {plan.row}"
        await _execute(conn, sql, _parameters(plan, rows), many=True)


async def insert_returning(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], returning: str
) -> list[tuple[Any, ...]]:
    """Multi-row INSERT ... RETURNING `returning` (SQLite has it since 3.35). The rows come
    back in no promised order: return a key along with the generated id."""
    if not rows:
        return []
    plan = _plan(table, frozenset(rows[0]), conn.dialect)
    width, per_statement = plan.width, MAX_PARAMETERS // plan.width
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), per_statement):
        part = _parameters(plan, rows[start : start + per_statement])
        # PostgreSQL numbers its placeholders ($1, $2, ...); SQLite's ? need no renumbering.
        values = ", ".join(_renumber(plan.row, k * width) for k in range(len(part)))
        flat = tuple(chain.from_iterable(part))
        found.extend(
            await _execute(conn, f"{plan.head} VALUES {values} RETURNING {returning}", flat)
        )
    return found
