"""The one poll loop for every source."""

from monitor.poller.coordinator import Coordinator, PolledSource

__all__ = ["Coordinator", "PolledSource"]
