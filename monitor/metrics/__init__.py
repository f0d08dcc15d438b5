"""Prometheus instruments and the in-memory snapshot they are read from."""

from monitor.metrics.instruments import Metrics
from monitor.metrics.snapshot import OpenItems

__all__ = ["Metrics", "OpenItems"]
