"""HTTP health checks and Prometheus queries (playbook: Dashboard Service Outage, High Error
Rate > 5 %, High Latency p99 > 2000 ms).

The step logic only; every request goes through :mod:`incident_operator.adapters.http`. Both
executors use the operator's shared ``httpx.AsyncClient`` from ``ctx.clients["http"]`` when
there is one. The API key (``X-API-Key``) is read from its Secret per step and never shown.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from ..adapters.http import (
    HttpError,
    HttpResponse,
    HttpTimeout,
    PrometheusClient,
    Sample,
    display_url,
    http_client,
)
from ..durations import format_duration, inner_timeout, parse_duration
from ..models.actions import Comparison, HttpCheck, PrometheusQuery
from ..models.patterns import Pattern
from . import patterns
from .base import ActionContext, ActionError, Finding, StepResult, executor, read_secret

BODY_EXCERPT = 1024
QUERY_WIDTH = 80
MAX_SERIES_SHOWN = 20

_WORDS = {
    Comparison.GT: "above",
    Comparison.GE: "at or above",
    Comparison.LT: "below",
    Comparison.LE: "at or below",
    Comparison.EQ: "equal to",
    Comparison.NE: "different from",
}


def compare(value: float, comparison: Comparison, threshold: float) -> bool:
    return comparison.holds(value, threshold)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The comparison applied to every series of an instant query."""

    holds: bool | None
    """Whether the comparison holds for at least one series; None when there is no data."""
    sample: Sample | None
    """The series reported: the most extreme one in the comparison's direction."""
    series: int
    matching: int
    ignored_nan: int


def evaluate(samples: Sequence[Sample], comparison: Comparison, threshold: float) -> Evaluation:
    """Compare each series with the threshold. NaN samples (e.g. 0/0 rates) count as no data.

    The reported sample is the highest for ``>``/``>=``, the lowest for ``<``/``<=`` and, for
    ``==``/``!=``, the first matching one (else the first).
    """
    numbers = [s for s in samples if not math.isnan(s.value)]
    ignored = len(samples) - len(numbers)
    if not numbers:
        return Evaluation(None, None, len(samples), 0, ignored)
    matching = [s for s in numbers if compare(s.value, comparison, threshold)]
    if comparison in (Comparison.GT, Comparison.GE):
        sample = max(numbers, key=lambda s: s.value)
    elif comparison in (Comparison.LT, Comparison.LE):
        sample = min(numbers, key=lambda s: s.value)
    else:
        sample = (matching or numbers)[0]
    return Evaluation(bool(matching), sample, len(samples), len(matching), ignored)


def step_ok(holds: bool | None, fail_when_true: bool) -> bool:
    """With ``failWhenTrue`` the comparison is a bad signal: the step fails when it holds.

    Without it the comparison is what must hold. No data is neither: it passes a bad-signal
    check (an error-rate query has no series when nothing fails) and fails a must-hold check.
    """
    if holds is None:
        return fail_when_true
    return not holds if fail_when_true else holds


def _labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _short(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _value_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return f"{value:g}" if math.isfinite(value) else ("+Inf" if value > 0 else "-Inf")


def _series_table(
    samples: Sequence[Sample], comparison: Comparison, threshold: float, scalar: bool
) -> str:
    """One line per series: value, ``*`` when the comparison holds, labels."""
    lines = []
    for s in samples[:MAX_SERIES_SHOWN]:
        mark = "*" if not math.isnan(s.value) and compare(s.value, comparison, threshold) else ""
        labels = _labels(s.labels) if s.labels or not scalar else "(scalar)"
        lines.append(f"{_value_text(s.value):>12}  {mark:1}  {labels}")
    if len(samples) > MAX_SERIES_SHOWN:
        lines.append(f"... {len(samples) - MAX_SERIES_SHOWN} more series")
    return "\n".join(lines)


@executor(HttpCheck)
async def http_check(action: HttpCheck, ctx: ActionContext) -> StepResult:
    """GET ``baseUrl + path``: expected status, latency within ``maxLatency``, body pattern."""
    target = ctx.targets.http
    if target is None:
        raise ActionError("runbook has no http target")
    try:
        max_latency = parse_duration(action.max_latency) if action.max_latency else None
    except ValueError as exc:
        raise ActionError(f"invalid httpCheck parameters: {exc}") from None
    pattern = patterns.compiled(action.pattern) if action.pattern else None
    headers: dict[str, str] = {}
    api_key = None
    if target.api_key_secret_ref is not None:
        api_key = await read_secret(ctx, target.api_key_secret_ref)
        headers["X-API-Key"] = api_key
    url = target.base_url.rstrip("/") + action.path
    shown = display_url(url)
    timeout = inner_timeout(ctx.timeout)
    try:
        async with http_client(ctx.clients.get("http"), timeout) as probe:
            response = await probe.get(url, headers=headers, timeout=timeout)
    except HttpTimeout:
        return StepResult(
            ok=False,
            message=f"GET {shown} gave no response within {format_duration(timeout)}.",
            findings={"timedOut": True, "latencyMs": round(timeout * 1000, 1)},
        )
    except HttpError as exc:
        raise ActionError(str(exc)) from None

    body = response.text
    if api_key:
        body = body.replace(api_key, "***")
    return await _judge(action, response, body, pattern, max_latency, shown)


async def _judge(
    action: HttpCheck,
    response: HttpResponse,
    body: str,
    pattern: Pattern | None,
    max_latency: float | None,
    shown: str,
) -> StepResult:
    """The step's result from the response: status, latency and body pattern."""
    latency_ms = response.elapsed * 1000
    status = f"{response.status_code}"
    problems: list[str] = []
    if response.status_code != action.expect_status:
        status += f" (expected {action.expect_status})"
        problems.append("status")
    timing = f"in {latency_ms:.1f} ms"
    if max_latency is not None and response.elapsed > max_latency:
        timing += f", slower than the limit of {action.max_latency}"
        problems.append("latency")
    findings: dict[str, Finding] = {
        "statusCode": response.status_code,
        "latencyMs": round(latency_ms, 1),
        "timedOut": False,
    }
    content = ""
    if pattern is not None:
        matched = await patterns.search(pattern, body)
        findings["patternMatched"] = matched
        if not matched:
            content = f"; the body does not match /{action.pattern}/"
            problems.append("pattern")
    excerpt = body[:BODY_EXCERPT] + ("\n..." if len(body) > BODY_EXCERPT else "")
    return StepResult(
        ok=not problems,
        message=f"GET {shown} returned {status} {timing}{content}.",
        findings=findings,
        output=f"HTTP {response.status_code}\n{excerpt}".rstrip(),
    )


@executor(PrometheusQuery)
async def prometheus_query(action: PrometheusQuery, ctx: ActionContext) -> StepResult:
    """An instant query compared with ``threshold`` (see :func:`evaluate` and :func:`step_ok`)."""
    target = ctx.targets.prometheus
    if target is None:
        raise ActionError("runbook has no prometheus target")
    timeout = inner_timeout(ctx.timeout)
    try:
        async with http_client(ctx.clients.get("http"), timeout) as probe:
            result = await PrometheusClient(probe, target.url).query(action.query, timeout=timeout)
    except HttpError as exc:
        raise ActionError(str(exc)) from None

    cmp, threshold = action.comparison, action.threshold
    ev = evaluate(result.samples, cmp, threshold)
    ok = step_ok(ev.holds, action.fail_when_true)
    query = _short(action.query, QUERY_WIDTH)
    condition = f"value {cmp} {threshold:g}"
    findings: dict[str, Finding] = {"series": ev.series, "matching": ev.matching}
    if ev.sample is None:
        nan = f" ({ev.ignored_nan} NaN)" if ev.ignored_nan else ""
        verdict = "passes" if ok else "fails"
        message = (
            f"Prometheus returned no data{nan} for {query}, so {condition} could not be"
            f" checked; the step {verdict} ({'bad' if action.fail_when_true else 'required'}"
            " signal)."
        )
        return StepResult(ok=ok, message=message, findings=findings)

    value = ev.sample.value
    if math.isfinite(value):
        findings["value"] = value
    where = f" for {_labels(ev.sample.labels)}" if ev.sample.labels else ""
    relation = _WORDS[cmp] if ev.holds else f"not {_WORDS[cmp]}"
    of = f" ({ev.matching} of {ev.series} series)" if ev.series > 1 and ev.holds else ""
    message = f"{query} is {_value_text(value)}{where}, {relation} the threshold {threshold:g}{of}"
    if not ok:
        message += "; bad signal" if action.fail_when_true else f"; {condition} is required"
    output = _series_table(result.samples, cmp, threshold, result.result_type == "scalar")
    return StepResult(ok=ok, message=message + ".", findings=findings, output=output)
