"""The operator's own background work: wake-ups at due times, and steps in flight.

Both are created once at start-up (``OperatorContext``) and know nothing about Incidents
beyond a key; what a wake-up or a step does is given to them by the responder.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)


class Clock:
    """One pending wake-up per Incident, at the time its next decision is due.

    ``wake`` replaces the Incident's pending wake-up; ``None`` cancels it. When the time
    comes, the callback given to :meth:`bind` runs. Nothing polls: an Incident with nothing
    due costs no request at all.
    """

    def __init__(self) -> None:
        self._handles: dict[Key, tuple[dt.datetime, asyncio.TimerHandle]] = {}
        self._fire: Callable[[str, str], None] | None = None

    def bind(self, fire: Callable[[str, str], None]) -> None:
        self._fire = fire

    def wake(self, namespace: str, name: str, at: dt.datetime | None) -> None:
        key = (namespace, name)
        pending = self._handles.pop(key, None)
        if pending is not None:
            pending[1].cancel()
        if at is None:
            return
        delay = max(0.0, (at - dt.datetime.now(dt.UTC)).total_seconds())
        handle = asyncio.get_running_loop().call_later(delay, self._due, key)
        self._handles[key] = (at, handle)

    def due_at(self, namespace: str, name: str) -> dt.datetime | None:
        pending = self._handles.get((namespace, name))
        return pending[0] if pending else None

    def __len__(self) -> int:
        return len(self._handles)

    def _due(self, key: Key) -> None:
        self._handles.pop(key, None)
        if self._fire is not None:
            self._fire(*key)

    def close(self) -> None:
        for _, handle in self._handles.values():
            handle.cancel()
        self._handles.clear()


class InFlight:
    """The step each Incident is running in this process: at most one per Incident.

    A Running step record in status whose step is not in flight here was left by an
    operator that stopped mid-step (see ``domain.engine.next_step``).
    """

    def __init__(self) -> None:
        self._steps: dict[str, tuple[str, asyncio.Task[Any] | None]] = {}

    def running(self, uid: str) -> str | None:
        entry = self._steps.get(uid)
        return entry[0] if entry else None

    def reserve(self, uid: str, step: str) -> None:
        """Claim the Incident's one slot while the decision to start ``step`` is committed,
        so no other decision can take the Running record for an interrupted one."""
        if uid in self._steps:
            raise RuntimeError(f"incident {uid} already runs step {self._steps[uid][0]}")
        self._steps[uid] = (step, None)

    def start(self, uid: str, work: Coroutine[Any, Any, Any]) -> None:
        """Run the reserved step's work as a task of its own."""
        step, task = self._steps.get(uid, (None, None))
        if step is None or task is not None:
            work.close()
            raise RuntimeError(f"incident {uid} has no reserved step to start")
        self._steps[uid] = (step, asyncio.create_task(work, name=f"step {step} of {uid}"))

    def finish(self, uid: str) -> None:
        """The step's result is committed (or it never started): the slot is free."""
        self._steps.pop(uid, None)

    def __len__(self) -> int:
        return len(self._steps)

    async def close(self) -> None:
        tasks = [task for _, task in self._steps.values() if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._steps.clear()
