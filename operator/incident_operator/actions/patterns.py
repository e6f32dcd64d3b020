"""Runbook patterns matched against what a step read, off the event loop, in bounded time.

Patterns are RE2 (``models.patterns``): linear in the text, and refused when too large. Even
so, a pattern whose DFA gives up is matched at tens of nanoseconds per character and
instruction, so matching runs in a small pool of worker threads (RE2 releases the GIL) and
never on the event loop; the text is capped, so each search ends within seconds. The step's
own timeout stops waiting for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Sequence

from ..models.patterns import Pattern, compile_pattern
from .base import ActionError

__all__ = ["MAX_LINE", "MAX_TEXT", "compile_pattern", "compiled", "matching_lines", "search"]

#: Characters of one text a pattern is searched in (its end: output is read from the bottom).
MAX_TEXT = 256 * 1024
#: Characters of one log line a pattern is searched in (its start).
MAX_LINE = 16 * 1024
#: Searches that may run at once; more wait for a worker (within their step's timeout).
WORKERS = 2

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="pattern")


def compiled(pattern: str) -> Pattern:
    """The step's pattern, compiled; a Runbook validated earlier has a valid one."""
    try:
        return compile_pattern(pattern)
    except ValueError as exc:
        raise ActionError(f"invalid pattern {pattern!r}: {exc}") from None


def _search(pattern: Pattern, texts: Sequence[str]) -> bool:
    return any(pattern.search(text[-MAX_TEXT:]) is not None for text in texts)


def _lines(pattern: Pattern, lines: Sequence[str], deadline: float) -> list[str] | None:
    found = []
    for line in lines:
        if time.monotonic() > deadline:
            return None
        if pattern.search(line[:MAX_LINE]) is not None:
            found.append(line)
    return found


async def search(pattern: Pattern, *texts: str) -> bool:
    """Whether the pattern occurs in any of ``texts`` (each cut to its last ``MAX_TEXT``)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOL, _search, pattern, texts)


async def matching_lines(pattern: Pattern, lines: Sequence[str], timeout: float) -> list[str]:
    """The lines the pattern occurs in (each searched in its first ``MAX_LINE``); the worker
    stops after ``timeout`` seconds, and so does the step."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    found = await loop.run_in_executor(_POOL, _lines, pattern, list(lines), deadline)
    if found is None:
        raise ActionError(f"matching {len(lines)} lines took longer than {timeout:g}s")
    return found
