"""Exposition text pieces, byte for byte as prometheus_client's own encoders write them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client.utils import floatToGoString


def value_text(value: float) -> str:
    """A sample's value the way both encoders write it (`1.0`, `+Inf`, `1.8e+06`)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def escape_value(value: str) -> str:
    """A label value inside double quotes (both formats)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def series(name: str, labels: Iterable[tuple[str, str]]) -> str:
    """`name{a="x",b="y"}` with the labels sorted by name, as both encoders sort them."""
    pairs = sorted(labels)
    if not pairs:
        return name
    return name + "{" + ",".join(f'{k}="{escape_value(v)}"' for k, v in pairs) + "}"


def labelled(name: str, names: Sequence[str], values: Sequence[str]) -> str:
    """series() for parallel name and value sequences."""
    return series(name, zip(names, values, strict=True))


def header(name: str, kind: str, documentation: str, *, openmetrics: bool) -> str:
    """The # HELP and # TYPE lines of a family (`name` as OpenMetrics names it)."""
    if openmetrics:
        doc = documentation.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"
    # The classic text format names a counter family by its sample (`..._total`).
    if kind == "counter":
        name += "_total"
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"
