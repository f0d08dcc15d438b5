"""The deadline scheduler: timers over the store that turn warning and due instants into events.

Kept apart from `monitor.sla`, which stays pure (calendars, targets, evaluation).
"""

from monitor.deadlines.scheduler import Deadline, DeadlineScheduler, Refetch

__all__ = ["Deadline", "DeadlineScheduler", "Refetch"]
