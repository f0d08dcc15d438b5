"""Build the Grafana dashboards (`python dashboards/build.py` rewrites dashboards/*.json).

The JSON files are committed (Grafana provisions them as they are); this script is their source,
so the three dashboards share one datasource variable, one set of template variables and one
style. The panels live in the sibling package boards/: grafana.py (Grafana's dashboard model),
vocabulary.py (what the dashboards share) and one module per dashboard (brand_overview.py,
on_duty.py, operations.py). tests/unit/test_dashboards.py fails when a JSON file differs from
what this script builds (`--check`), validates each one against Grafana's published schema
(dashboards/schema/) and lints the PromQL; tests/integration/test_dashboards_prometheus.py runs
every query against a real Prometheus.

Only the standard library: CI runs it without anything installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Run as a script from any directory: boards/ is found next to this file, not installed.
sys.path.insert(0, str(HERE))

from boards import DASHBOARDS  # noqa: E402


def render(build: Callable[[], Any]) -> str:
    """The JSON text of one dashboard as committed."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write every dashboard next to this script; `--check` only compares."""
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run python dashboards/build.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
