"""Runbook patterns are RE2 expressions, matched off the event loop in bounded time.

A ``pattern`` of httpCheck, podLogs or execInPod is written by a Runbook's author and runs
against text the operator does not control. Python's backtracking ``re`` takes exponential
time on ``^(a+)+$`` against a run of ``a`` and a ``!``, on the event loop, where no timeout can
interrupt it. RE2 runs in time linear in the text; a pattern it cannot compile (lookaround,
backreferences) or one too large is refused when the Runbook is validated.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from incident_operator.actions import (
    catalog,  # noqa: F401  (registers the executors)
    pods,
)
from incident_operator.actions.base import ActionContext, run_action
from incident_operator.adapters.pods import ExecResult, PodLog
from incident_operator.domain import runbook_check
from incident_operator.domain.allowlists import ExecCommand
from incident_operator.models.actions import ExecInPod, HttpCheck, PodLogs
from incident_operator.models.runbook import HttpTarget, Targets
from tests.fixtures.loop_stalls import StallWatch, no_loop_stalls  # noqa: F401  (fixture)
from tests.fixtures.services import DictSecretReader

#: Exponential for a backtracking engine: each two more ``a`` take four times longer.
EVIL = r"^(a+)+$"
EVIL_TEXT = "a" * 40 + "!"
WORKLOAD = {"name": "dashboard"}


def _runbook(action: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "rb", "namespace": "n"},
        "spec": {
            "title": "t",
            "rto": {"mitigation": "5m"},
            "targets": {"http": {"baseUrl": "http://127.0.0.1:9"}},
            "diagnosis": [{"name": "check", "action": action}],
        },
    }


ACTIONS = {
    "httpCheck": {"type": "httpCheck"},
    "podLogs": {"type": "podLogs", "workload": WORKLOAD},
    "execInPod": {
        "type": "execInPod",
        "workload": WORKLOAD,
        "command": ["redis-cli", "-p", "6379", "PING"],
    },
}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(?=ERROR)", "RE2"),  # lookahead: Python-only syntax
        (r"(a)\1", "RE2"),  # backreference
        ("(ERROR", "RE2"),  # not a regular expression at all
        (r"(\w+\s*){1000}", "too large"),  # compiles, but far beyond the program-size cap
    ],
)
def test_a_pattern_re2_refuses_makes_the_runbook_invalid_with_a_clear_message(
    action: str, pattern: str, why: str
) -> None:
    runbook, problem = runbook_check.parse(_runbook({**ACTIONS[action], "pattern": pattern}))
    assert runbook is None
    assert problem.startswith("spec.diagnosis.0.action.")
    assert "pattern" in problem and why in problem


def test_the_shipped_kinds_of_pattern_are_accepted() -> None:
    for pattern in ("ERROR", "FATAL|PANIC", r'"status":\s*"healthy"', "(?i)timeout", "^OK$"):
        assert PodLogs.model_validate({**ACTIONS["podLogs"], "pattern": pattern}).pattern


def test_an_admin_exec_parameter_pattern_re2_refuses_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"params\.port: not a pattern RE2 accepts"):
        ExecCommand(name="x", command=["redis-cli", "-p", "{port}"], params={"port": "(?=1)"})


def _ctx(clients: dict[str, Any], targets: Targets | None = None) -> ActionContext:
    return ActionContext(
        namespace="n",
        incident="i",
        targets=targets or Targets(),
        secrets=DictSecretReader(),
        clients=clients,
        timeout=10.0,
    )


@pytest.mark.timeout(30)
async def test_a_pathological_pattern_on_an_http_body_ends_at_once(
    no_loop_stalls: StallWatch,  # noqa: F811
) -> None:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, text=EVIL_TEXT))
    )
    target = Targets(http=HttpTarget(base_url="http://127.0.0.1:9"))
    action = HttpCheck.model_validate({"type": "httpCheck", "pattern": EVIL})
    async with client:
        result = await run_action(action, _ctx({"http": client}, target))
    assert result.findings["patternMatched"] is False and not result.ok


@pytest.fixture
def fake_pods(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """podLogs and execInPod without a cluster: the pod adapter answers with ``seen``."""
    seen: dict[str, Any] = {"logs": "", "stdout": ""}

    async def pod_logs(*_: Any) -> PodLog:
        return PodLog("web-1", None, seen["logs"])

    async def exec_in_pod(*_: Any) -> ExecResult:
        return ExecResult("web-1", None, seen["stdout"], "", 0, None, False)

    monkeypatch.setattr(pods, "kube_client", lambda _: object())
    monkeypatch.setattr(pods.pods, "pod_logs", pod_logs)
    monkeypatch.setattr(pods.pods, "exec_in_pod", exec_in_pod)
    return seen


@pytest.mark.timeout(30)
async def test_a_pathological_pattern_on_log_lines_ends_at_once(
    fake_pods: dict[str, Any],
    no_loop_stalls: StallWatch,  # noqa: F811
) -> None:
    fake_pods["logs"] = "\n".join([EVIL_TEXT] * 50 + ["aaa"])
    action = PodLogs.model_validate({**ACTIONS["podLogs"], "pattern": EVIL, "threshold": 0})
    result = await run_action(action, _ctx({}))
    assert result.findings["matches"] == 1 and not result.ok


@pytest.mark.timeout(30)
async def test_a_pathological_pattern_on_exec_output_ends_at_once(
    fake_pods: dict[str, Any],
    no_loop_stalls: StallWatch,  # noqa: F811
) -> None:
    fake_pods["stdout"] = EVIL_TEXT
    action = ExecInPod.model_validate({**ACTIONS["execInPod"], "pattern": EVIL})
    result = await run_action(action, _ctx({}))
    assert result.findings["matched"] is False and not result.ok


async def test_patterns_run_in_a_worker_thread_not_on_the_event_loop() -> None:
    from incident_operator.actions import patterns

    loop_thread = threading.get_ident()
    seen: list[int] = []

    class Spy:
        def search(self, text: str) -> object | None:
            seen.append(threading.get_ident())
            return None

    assert await patterns.search(Spy(), "text") is False  # type: ignore[arg-type]
    assert await patterns.matching_lines(Spy(), ["a", "b"], 5.0) == []  # type: ignore[arg-type]
    assert seen and loop_thread not in seen


async def test_the_text_a_pattern_sees_is_capped() -> None:
    from incident_operator.actions import patterns

    compiled = patterns.compile_pattern("x$")
    huge = "a" * (patterns.MAX_TEXT + 10) + "x"
    assert await patterns.search(compiled, huge) is True  # the end is kept
    assert await patterns.search(compiled, "x" + "a" * (patterns.MAX_TEXT + 10)) is False


async def test_matching_many_lines_stops_at_the_step_deadline() -> None:
    from incident_operator.actions import patterns
    from incident_operator.actions.base import ActionError

    compiled = patterns.compile_pattern("ERROR")
    with pytest.raises(ActionError, match="took longer than"):
        await patterns.matching_lines(compiled, ["ERROR"] * 10, timeout=-1.0)
