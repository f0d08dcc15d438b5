"""Re-derive periods, deadlines and outcomes of stored items after a calendar or policy change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.pipeline import SourceSettings
from monitor.store import Store

# Far enough in the future to mean "every item since".
_END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)
# How often progress is reported inside one source.
PROGRESS_EVERY = 100

# (source, items done, items of that source)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, kw_only=True)
class RecomputeResult:
    """How many items were looked at and how many changed."""

    examined: int
    changed: int


async def recompute(
    store: Store,
    settings: Sequence[SourceSettings],
    *,
    since: datetime,
    on_progress: Progress | None = None,
) -> RecomputeResult:
    """Recompute every item created since `since` from its raw messages (the source of truth)."""
    examined = changed = 0
    for source in settings:
        name = source.ref.name
        items = await store.items_between(since, _END_OF_TIME, source=name)
        threads = {i.thread_id for i in items}
        async with store.transaction() as tx:
            thread_msgs = await tx.thread_messages(name, threads)
            by_id = {s.id: (s, thread) for thread in thread_msgs.values() for s in thread}
            for done, item in enumerate(items, start=1):
                stored, thread = by_id[item.message_id]
                fresh = source.policy.rederive(item, stored.message, thread)
                examined += 1
                if fresh != item:
                    await tx.update_item(fresh)
                    changed += 1
                if on_progress is not None and (done % PROGRESS_EVERY == 0 or done == len(items)):
                    on_progress(name, done, len(items))
    return RecomputeResult(examined=examined, changed=changed)
