"""The demo's process helpers (``incident_demo._proc``): children that die with their parent,
and stops that reach the whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from incident_demo import _proc


def test_spawned_child_dies_with_its_parent(tmp_path: Path) -> None:
    """The PR_SET_PDEATHSIG shim: SIGKILL the parent, the grandchild goes too."""
    pidfile = tmp_path / "child.pid"
    parent_code = (
        "import sys, time\n"
        "from incident_demo import _proc\n"
        f"p = _proc.spawn([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        deadline = time.monotonic() + 15
        while not (pidfile.exists() and pidfile.read_text()):
            assert time.monotonic() < deadline, "child never started"
            time.sleep(0.05)
        child = int(pidfile.read_text())
        os.kill(child, 0)
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, f"child {child} outlived its parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_stop_kills_the_process_group() -> None:
    p = _proc.spawn(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ignoring SIGTERM', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert p.stdout is not None
    assert p.stdout.readline() == b"ignoring SIGTERM\n"  # the handler is in place
    code = _proc.stop(p, timeout=0.5)
    assert code == -signal.SIGKILL
