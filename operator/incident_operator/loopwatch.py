"""Event-loop stalls in the log, for tests that run the operator as a process (in-process
tests use ``tests/fixtures/loop_stalls.py``).

Off unless ``INCIDENT_OPERATOR_LOOP_STALL_MS`` is set. With it, every callback (a step of a
coroutine, a timer) that held the loop longer than that many milliseconds becomes one line on
stderr::

    event loop blocked for 123 ms by <coroutine> at <file:line> (wall 150 ms, cpu 120 ms,
    waiting for a cpu 27 ms)

*Blocked* is the time the callback kept every other Incident, probe and Lease renewal from
running because of the operator itself: on a CPU, or in a blocking call. It is the wall time
less the time the kernel left the thread runnable but gave the CPU to other processes
(``/proc/thread-self/schedstat``), which on a busy machine can be long and is not the
operator's doing; asyncio's slow-callback warning counts that time too, and its debug mode
(which it needs) records a traceback at every ``call_soon``, which inflates what it measures.
So this times ``Handle._run`` itself, without debug mode. Where the kernel has no scheduler
statistics, blocked is the wall time. The fault tests (e2e/faults/) fail when a line says
more than 100 ms. The timing costs two clock reads per callback: an install never sets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
STALL_ENV = "INCIDENT_OPERATOR_LOOP_STALL_MS"
SCHEDSTAT = "/proc/thread-self/schedstat"


def _runqueue_clock(path: str = SCHEDSTAT) -> Callable[[], float]:
    """Seconds this thread has waited for a CPU while runnable, so far (0 when unknown)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        int(os.pread(fd, 128, 0).split()[1])
    except (OSError, ValueError, IndexError):
        return lambda: 0.0

    def waited() -> float:
        try:
            return int(os.pread(fd, 128, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

    return waited


def _culprit(handle: Any) -> str:
    """The coroutine a callback stepped (and where it stopped), else the callback."""
    task = getattr(getattr(handle, "_callback", None), "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", repr(coro))
        frame = getattr(coro, "cr_frame", None)
        where = f" at {frame.f_code.co_filename}:{frame.f_lineno}" if frame else ""
        return f"{task.get_name()} {name}{where}"
    return repr(handle)


def _timed(threshold: float, waited: Callable[[], float]) -> Callable[[Any], None]:
    run = asyncio.events.Handle._run

    def timed_run(handle: Any) -> None:
        wall0, cpu0, queued0 = time.perf_counter(), time.thread_time(), waited()
        try:
            run(handle)
        finally:
            wall = time.perf_counter() - wall0
            if wall >= threshold:
                queued = waited() - queued0
                blocked = max(wall - queued, 0.0)
                if blocked >= threshold:
                    cpu = time.thread_time() - cpu0
                    log.warning(
                        "event loop blocked for %.0f ms by %s (wall %.0f ms, cpu %.0f ms, "
                        "waiting for a cpu %.0f ms)",
                        blocked * 1000,
                        _culprit(handle)[:300],
                        wall * 1000,
                        cpu * 1000,
                        queued * 1000,
                    )

    return timed_run


def watch(loop: asyncio.AbstractEventLoop) -> float | None:
    """Report stalls of ``loop`` (the running one) when the environment asks for it; the
    threshold in seconds, or None when off."""
    configured = os.environ.get(STALL_ENV)
    if not configured:
        return None
    threshold = float(configured) / 1000
    with contextlib.suppress(AttributeError):
        asyncio.events.Handle._run = _timed(threshold, _runqueue_clock())  # type: ignore[method-assign,assignment]
    log.info("reporting event-loop stalls over %.0f ms", threshold * 1000)
    return threshold
