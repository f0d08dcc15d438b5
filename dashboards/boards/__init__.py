"""The webcare Grafana dashboards, each a function returning its JSON model, by file name.

grafana.py is Grafana's dashboard model (queries, options, Panel, Board, variables,
dashboard()); vocabulary.py what the three dashboards share (label filters, thresholds,
variables, stat/timeseries/table panels); one module per dashboard lays out its panels.
"""

from __future__ import annotations

from collections.abc import Callable

from .brand_overview import brand_overview
from .grafana import Json
from .on_duty import on_duty
from .operations import operations

DASHBOARDS: dict[str, Callable[[], Json]] = {
    "webcare-brand-overview.json": brand_overview,
    "webcare-on-duty.json": on_duty,
    "webcare-operations.json": operations,
}
