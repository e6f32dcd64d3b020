"""Process helpers shared by the demo: children that die with their parent, and clean stops.

Every child is started through a tiny Python shim that sets ``PR_SET_PDEATHSIG`` (Linux) and then
``exec``s the real program, so the kernel sends SIGTERM to the child when the thread that forked
it goes away, even if the parent was SIGKILLed. Each child leads its own process group, so a stop
reaches everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import IO, Any

# Runs in the child: arm the parent-death signal, make sure the parent did not die before that,
# then become the real program (the signal setting survives execve).
_SHIM = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)\n"
    "except Exception:\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(70)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> subprocess.Popen[bytes]:
    """Starts ``argv`` in a new session, tied to this process's lifetime."""
    if not argv:
        raise ValueError("empty command")
    cmd = [sys.executable, "-c", _SHIM, str(os.getpid()), *argv]
    return subprocess.Popen(
        cmd,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        close_fds=True,
    )


def stop(proc: subprocess.Popen[Any], timeout: float = 5.0) -> int | None:
    """SIGTERM to the child's process group, SIGKILL after ``timeout``; returns the exit code."""
    if proc.poll() is None:
        _killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # Anything the child left behind in its group goes too.
    _killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_http(
    url: str,
    timeout: float,
    *,
    ok: range = range(200, 300),
    proc: subprocess.Popen[Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Polls ``url`` until it answers with a status in ``ok``; raises TimeoutError otherwise.

    When ``proc`` is given and exits meanwhile, raises RuntimeError at once.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            req = urllib.request.Request(url, headers=dict(headers or {}))
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status in ok:
                    return
                last = resp.status
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
            last = e.code
        except OSError as e:
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} not ready after {timeout}s (last: {last})")
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
