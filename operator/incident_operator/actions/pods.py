"""Actions inside a workload's pods: read their logs, run an allowlisted command."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence

from ..adapters import pods
from ..models.actions import (
    ExecInPod,
    PodLogs,
)
from . import patterns
from .base import (
    ActionContext,
    ActionError,
    StepResult,
    executor,
)
from .kube_common import (
    Budget,
    Findings,
    api_errors,
    kube_client,
    plural,
    tail,
    workload_ref,
)

ALLOWLIST_ENV = "INCIDENT_OPERATOR_EXEC_ALLOWLIST"

#: argv prefixes ``execInPod`` may run: a command is allowed when its first arguments equal
#: one of these exactly. Diagnostics of the playbook's ``docker exec`` lines, no shells.
DEFAULT_EXEC_ALLOWLIST: tuple[tuple[str, ...], ...] = (
    ("redis-cli",),
    ("psql",),
    ("pg_isready",),
    ("df", "-h"),
    ("du", "-sh"),
    ("cat",),
    ("free", "-m"),
    ("uptime",),
    ("ps", "aux"),
)


@executor(PodLogs)
async def pod_logs(action: PodLogs, ctx: ActionContext) -> StepResult:
    """Fails when more lines than ``threshold`` match ``pattern``."""
    kube, budget = kube_client(ctx), Budget(ctx)
    kind, name = workload_ref(action.workload)
    regex = patterns.compiled(action.pattern) if action.pattern else None
    with api_errors():
        logs = await pods.pod_logs(
            kube, ctx.namespace, kind, name, action.tail_lines, action.container
        )
    lines = logs.text.splitlines()
    findings: Findings = {"pod": logs.pod, "lines": len(lines)}
    if logs.truncated:  # longer than the byte cap: these are its first lines
        findings["truncated"] = True
    where = f"pod {logs.pod}" + (f" (container {logs.container})" if logs.container else "")
    if regex is None:
        return StepResult(
            True,
            f"Read the last {plural(len(lines), 'log line')} of {where}.",
            findings,
            tail(logs.text) or None,
        )
    matches = await patterns.matching_lines(regex, lines, budget.left())
    findings["matches"] = len(matches)
    failed = action.threshold is not None and len(matches) > action.threshold
    verb = "matches" if len(matches) == 1 else "match"
    message = (
        f"{len(matches)} of the last {plural(len(lines), 'log line')} of {where} {verb} "
        f"{action.pattern!r}"
    )
    if action.threshold is not None:
        message += f", {'above' if failed else 'within'} the threshold of {action.threshold:g}"
    return StepResult(
        not failed, message + ".", findings, tail("\n".join(matches)) if matches else None
    )


# --- exec and jobs ----------------------------------------------------------------------------


def exec_allowlist() -> list[tuple[str, ...]]:
    """The argv prefixes ``execInPod`` may run: ``$INCIDENT_OPERATOR_EXEC_ALLOWLIST`` (a JSON
    list of non-empty lists of strings, replacing the default) or the default."""
    raw = os.environ.get(ALLOWLIST_ENV)
    if raw is None or not raw.strip():
        return list(DEFAULT_EXEC_ALLOWLIST)
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(
        isinstance(prefix, list) and prefix and all(isinstance(a, str) and a for a in prefix)
        for prefix in value
    ):
        raise ActionError(
            f"{ALLOWLIST_ENV} must be a JSON list of non-empty argv-prefix "
            f'lists, e.g. [["redis-cli"], ["df", "-h"]]'
        )
    return [tuple(prefix) for prefix in value]


def exec_allowed(command: Sequence[str], allowlist: Sequence[Sequence[str]]) -> bool:
    """True when ``command`` starts with one of the argv prefixes, argument by argument."""
    return any(
        len(command) >= len(prefix) and tuple(command[: len(prefix)]) == tuple(prefix)
        for prefix in allowlist
    )


def _show(command: Sequence[str]) -> str:
    text = shlex.join(command)
    return text if len(text) <= 200 else text[:199] + "…"


@executor(ExecInPod)
async def exec_in_pod(action: ExecInPod, ctx: ActionContext) -> StepResult:
    """Run an allowlisted command in the newest Ready pod; fails on a non-zero exit or when
    the output does not match ``pattern``."""
    shown = _show(action.command)
    if not exec_allowed(action.command, exec_allowlist()):
        raise ActionError(f"command not allowed in execInPod: {shown} (see {ALLOWLIST_ENV})")
    kube, budget = kube_client(ctx), Budget(ctx)
    kind, name = workload_ref(action.workload)
    regex = patterns.compiled(action.pattern) if action.pattern else None
    with api_errors():
        result = await pods.exec_in_pod(
            kube, ctx.namespace, kind, name, action.command, action.container, budget.left()
        )
    exit_code = result.exit_code if result.exit_code is not None else -1
    findings: Findings = {"pod": result.pod, "exitCode": exit_code}
    output = result.stdout
    if result.stderr:
        output += (
            ("\n" if output and not output.endswith("\n") else "") + "[stderr]\n" + result.stderr
        )
    where = f"pod {result.pod}" + (f" (container {result.container})" if result.container else "")
    if result.timed_out or result.exit_code is None:
        return StepResult(
            False, f"`{shown}` in {where} did not finish: {result.error}.", findings, output or None
        )
    ok = result.exit_code == 0
    message = f"`{shown}` in {where} exited with code {result.exit_code}"
    if regex is not None:
        matched = await patterns.search(regex, result.stdout, result.stderr)
        findings["matched"] = matched
        ok = ok and matched
        message += (
            " and its output matches " if matched else " but its output does not match "
        ) + repr(action.pattern)
    return StepResult(ok, message + ".", findings, output or None)
