"""A per-process cache of long event logs, so resuming a run reads only what is new.

Every activation folds the run's whole log (:class:`~pyworkflow.engine.state.RunState`).
For a run with a long history most of that work is reading and decoding events this
process already read at its previous activation. The cache keeps those decoded events;
the next load asks the storage only for the events after the last one it holds, plus
that last one again, whose id proves the cached prefix is still the run's log (a store
wiped or rewritten underneath gets a full read instead).

Only logs of at least :data:`MIN_EVENTS` events are kept, and at most
:data:`MAX_EVENTS` in total (least recently used runs go first): thousands of short
runs sleeping in one process cost no memory here. Events are immutable records;
folding never changes them, so sharing them between activations is safe.

Example:
    >>> import asyncio
    >>> from pyworkflow.engine.events import Event, EventType
    >>> from pyworkflow.storage.base import CommitBatch
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> async def main():
    ...     store, cache = InMemoryStorageBackend(), EventLogCache(min_events=2)
    ...     events = [Event(run_id="r", type=EventType.CONTEXT_UPDATED, data={"i": i})
    ...               for i in range(3)]
    ...     await store.commit(CommitBatch(run_id="r", events=events))
    ...     first = await cache.load(store, "r")
    ...     cache.keep(store, "r", first)
    ...     more = Event(run_id="r", type=EventType.CONTEXT_UPDATED, data={"i": 3})
    ...     await store.commit(CommitBatch(run_id="r", events=[more]))
    ...     return len(first), [e.sequence for e in await cache.load(store, "r")]
    >>> asyncio.run(main())
    (3, [0, 1, 2, 3])
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

from pyworkflow.engine.events import Event
from pyworkflow.storage.base import StorageBackend

#: Shorter logs are cheap to read again and not worth the memory.
MIN_EVENTS = 64
#: Upper bound on events held by the process-wide cache (a few tens of MB at most).
MAX_EVENTS = 50_000


class EventLogCache:
    """Decoded event logs by storage and run id, least recently used evicted first.

    Example:
        >>> EventLogCache().size
        0
    """

    def __init__(self, min_events: int = MIN_EVENTS, max_events: int = MAX_EVENTS) -> None:
        self.min_events = min_events
        self.max_events = max_events
        self.size = 0
        self._logs: weakref.WeakKeyDictionary[StorageBackend, OrderedDict[str, list[Event]]]
        self._logs = weakref.WeakKeyDictionary()

    async def load(self, storage: StorageBackend, run_id: str) -> list[Event]:
        """The run's whole log, in sequence order; the cached copy is handed over
        (an activation in progress owns it until it gives it back with :meth:`keep`)."""
        cached = self._take(storage, run_id)
        if cached:
            last = cached[-1]
            assert last.sequence is not None
            tail = await storage.get_events_after(run_id, last.sequence - 1)
            if tail and tail[0].event_id == last.event_id:
                return cached + tail[1:]
        return await storage.get_events(run_id)

    def keep(self, storage: StorageBackend, run_id: str, events: list[Event]) -> None:
        """Remember ``events``, the run's complete log, if it is long enough to matter."""
        self._take(storage, run_id)
        if len(events) < self.min_events or len(events) > self.max_events:
            return
        logs = self._logs.setdefault(storage, OrderedDict())
        logs[run_id] = events
        self.size += len(events)
        while self.size > self.max_events:
            self._evict_one()

    def _take(self, storage: StorageBackend, run_id: str) -> list[Event] | None:
        logs = self._logs.get(storage)
        found = logs.pop(run_id, None) if logs is not None else None
        if found is not None:
            self.size -= len(found)
        return found

    def _evict_one(self) -> None:
        for logs in self._logs.values():
            if logs:
                _, dropped = logs.popitem(last=False)
                self.size -= len(dropped)
                return


#: The process-wide cache the activator reads logs through.
EVENT_LOGS = EventLogCache()
