"""The hooks of the fault tests (e2e/faults/): crash points and the event-loop stall report."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from incident_operator import crashpoints, loopwatch

SCRIPT = """
from incident_operator import crashpoints
crashpoints.reach("running", "a")
print("passed running:a", flush=True)
crashpoints.reach("acted", "a")
print("passed acted:a", flush=True)
"""


def run_script(crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != crashpoints.CRASH_ENV}
    if crash_at:
        env[crashpoints.CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_process_kills_itself_at_its_crash_point_only() -> None:
    done = run_script("acted:a")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.splitlines() == ["passed running:a"]
    assert "crash point acted:a reached: SIGKILL" in done.stderr


def test_no_crash_point_without_the_variable() -> None:
    done = run_script(None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["passed running:a", "passed acted:a"]


def test_a_callback_that_holds_the_loop_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(loopwatch.STALL_ENV, "50")
    monkeypatch.setattr(asyncio.events.Handle, "_run", asyncio.events.Handle._run)

    async def holds_the_loop() -> float | None:
        threshold = loopwatch.watch(asyncio.get_running_loop())
        await asyncio.sleep(0)
        time.sleep(0.3)  # blocking on purpose: nothing else can run meanwhile
        await asyncio.sleep(0)
        return threshold

    with caplog.at_level(logging.WARNING, logger=loopwatch.__name__):
        assert asyncio.run(holds_the_loop()) == 0.05
    lines = [r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "holds_the_loop" in lines[0]


def test_no_stall_report_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loopwatch.STALL_ENV, raising=False)
    original = asyncio.events.Handle._run

    async def main() -> float | None:
        return loopwatch.watch(asyncio.get_running_loop())

    assert asyncio.run(main()) is None
    assert asyncio.events.Handle._run is original
