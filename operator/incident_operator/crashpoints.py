"""Crash points for the fault tests: the operator SIGKILLs itself at one named moment.

Off unless ``INCIDENT_OPERATOR_CRASH_AT`` is set, which no install does. Its value names one
moment, ``<moment>:<name>``; the first time the process reaches it, it logs
``crash point <moment>:<name> reached: SIGKILL`` and kills itself with SIGKILL: no cleanup,
no Lease released, exactly like a node lost or an OOM kill at that instant. The moments:

* ``running:<step>``: the step's Running record is committed; its action has not started.
* ``acted:<step>``: the action returned; its result is not committed.
* ``recorded:<step>``: the result is committed; the next decision is not made.
* ``delivered:<kind>``: a channel accepted a notification of that kind (``Initial``,
  ``Update``, ``Approval``, ...); the delivery is not recorded in status.

e2e/faults/test_kill_points.py restarts the operator after each one and checks what the
servers saw.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)
CRASH_ENV = "INCIDENT_OPERATOR_CRASH_AT"


def reach(moment: str, name: str) -> None:
    """Die here if this is the configured crash point."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted == f"{moment}:{name}":
        log.warning("crash point %s reached: SIGKILL", wanted)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
