"""The audit trail as CSV and JSON (instants in ISO 8601, UTC), for the API and the CLI."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from monitor.audit.log import AuditEntry

COLUMNS = (
    "at",
    "actor",
    "via",
    "action",
    "item_id",
    "source",
    "brand",
    "reason",
    "origin",
    "detail",
)


def _utc(entry: AuditEntry) -> dict[str, Any]:
    values = entry.as_dict()
    values["at"] = entry.at.isoformat().replace("+00:00", "Z")
    return values


def to_json(entries: Sequence[AuditEntry]) -> str:
    """{"entries": [...]}, newest first as given."""
    return json.dumps({"entries": [_utc(e) for e in entries]}, indent=2) + "\n"


def to_csv(entries: Sequence[AuditEntry]) -> str:
    """One header line and one line per entry; `detail` as compact JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        values = _utc(entry)
        detail = values["detail"]
        values["detail"] = "" if detail is None else json.dumps(detail, sort_keys=True)
        writer.writerow(["" if values[c] is None else values[c] for c in COLUMNS])
    return out.getvalue()
