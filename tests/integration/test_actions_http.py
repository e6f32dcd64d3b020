"""httpCheck and prometheusQuery against a real local aiohttp server (no mocks).

The server (tests/fixtures/services.py) serves health routes and a fake Prometheus
``/api/v1/query`` that answers with Prometheus' JSON shapes for a few canned queries.
"""

from __future__ import annotations

import json
import logging
import secrets

import httpx
import pytest

from incident_operator.actions import http as http_actions
from incident_operator.actions.base import EXECUTORS, ActionError, StepResult, run_action
from incident_operator.models.actions import Comparison, HttpCheck, PrometheusQuery
from incident_operator.models.runbook import HttpTarget, PrometheusTarget, Targets
from tests.fixtures.services import (
    PROM_ERROR_RATE,
    PROM_INVALID,
    PROM_NAN,
    PROM_NO_DATA,
    PROM_P99_BY_HANDLER,
    PROM_RANGE,
    PROM_UP_SCALAR,
    DictSecretReader,
    FakeHttpServer,
    closed_port,
    make_ctx,
)

# Importing the module registers its executors (the operator imports actions.catalog).
assert EXECUTORS["httpCheck"] is http_actions.http_check


def _check(path: str = "/health", **params: object) -> HttpCheck:
    return HttpCheck.model_validate({"type": "httpCheck", "path": path, **params})


def _query(
    query: str, comparison: str = ">", threshold: float = 0.05, **params: object
) -> PrometheusQuery:
    return PrometheusQuery.model_validate(
        {
            "type": "prometheusQuery",
            "query": query,
            "comparison": comparison,
            "threshold": threshold,
            **params,
        }
    )


async def _probe(server: FakeHttpServer, action: HttpCheck, **ctx: object) -> StepResult:
    target = server.target(with_key=False)
    return await run_action(action, make_ctx(Targets(http=target), **ctx))  # type: ignore[arg-type]


async def _prom(server: FakeHttpServer, action: PrometheusQuery) -> StepResult:
    return await run_action(action, make_ctx(Targets(prometheus=server.prometheus())))


# --- httpCheck -------------------------------------------------------------------------------


async def test_healthy_endpoint_passes(http_server: FakeHttpServer) -> None:
    result = await _probe(http_server, _check(pattern=r'"status":\s*"healthy"', maxLatency="5s"))

    assert result.ok, result.message
    assert result.findings["statusCode"] == 200
    assert result.findings["patternMatched"] is True
    assert result.findings["timedOut"] is False
    assert 0 < result.findings["latencyMs"] < 5000  # type: ignore[operator]
    assert result.message.startswith(f"GET {http_server.base_url}/health returned 200 in ")
    assert result.output is not None and result.output.startswith("HTTP 200\n")


async def test_503_fails(http_server: FakeHttpServer) -> None:
    result = await _probe(http_server, _check("/status/503"))

    assert not result.ok
    assert result.findings["statusCode"] == 503
    assert "returned 503 (expected 200)" in result.message
    assert result.output is not None and "unhealthy" in result.output


async def test_expected_non_200_status_passes(http_server: FakeHttpServer) -> None:
    result = await _probe(http_server, _check("/status/503", expectStatus=503))
    assert result.ok and result.findings["statusCode"] == 503


async def test_slow_response_fails_on_latency(http_server: FakeHttpServer) -> None:
    slow = await _probe(http_server, _check("/slow?delay=0.4", maxLatency="100ms"))
    relaxed = await _probe(http_server, _check("/slow?delay=0.4", maxLatency="5s"))

    assert not slow.ok
    assert slow.findings["statusCode"] == 200
    assert slow.findings["latencyMs"] >= 400  # type: ignore[operator]
    assert "slower than the limit of 100ms" in slow.message
    assert relaxed.ok, relaxed.message


async def test_no_response_within_the_timeout_fails(http_server: FakeHttpServer) -> None:
    result = await _probe(http_server, _check("/slow?delay=3"), timeout=0.5)

    assert not result.ok
    # The step's own deadline leaves the engine's timeout (0.5 s) a margin of 10 %.
    assert result.findings == {"timedOut": True, "latencyMs": 450.0}
    assert result.message == f"GET {http_server.base_url}/slow gave no response within 450ms."


async def test_body_pattern_mismatch_fails(http_server: FakeHttpServer) -> None:
    result = await _probe(http_server, _check(pattern="database.: .down"))

    assert not result.ok
    assert result.findings["patternMatched"] is False
    assert result.findings["statusCode"] == 200
    assert "the body does not match /database.: .down/" in result.message


async def test_api_key_comes_from_the_secret_and_is_never_shown(
    http_server: FakeHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Stands in for the client the operator creates at startup (marked by a header).
    shared_client = httpx.AsyncClient(headers={"X-Client": "shared"})
    ctx = make_ctx(
        Targets(http=http_server.target()),
        http_server.secrets(),
        clients={"http": shared_client},
    )
    try:
        result = await run_action(_check("/api/circuit-breaker/status", pattern="closed"), ctx)
        assert not shared_client.is_closed  # the step did not close the shared client
    finally:
        await shared_client.aclose()

    assert result.ok, result.message
    sent = http_server.requests[-1]
    assert sent.path == "/api/circuit-breaker/status"
    assert sent.headers["X-API-Key"] == http_server.api_key
    assert sent.headers["X-Client"] == "shared"  # the operator's shared client was used
    # The server echoes the key in its body; the step shows it masked.
    assert result.output is not None and "(key *** accepted)" in result.output
    shown = json.dumps([result.message, result.findings, result.output])
    assert http_server.api_key not in shown
    assert http_server.api_key not in caplog.text


async def test_wrong_api_key_fails_without_showing_it(http_server: FakeHttpServer) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    ctx = make_ctx(Targets(http=http_server.target()), http_server.secrets(wrong))
    result = await run_action(_check("/api/circuit-breaker/status"), ctx)

    assert not result.ok
    assert result.findings["statusCode"] == 401
    assert http_server.requests[-1].headers["X-API-Key"] == wrong
    assert wrong not in json.dumps([result.message, result.findings, result.output])


async def test_missing_api_key_secret_is_a_clear_action_error(http_server: FakeHttpServer) -> None:
    ctx = make_ctx(Targets(http=http_server.target()), DictSecretReader())
    with pytest.raises(ActionError, match=r"^secret incidents/dashboard-api has no key api-key$"):
        await run_action(_check("/api/circuit-breaker/status"), ctx)


async def test_unreachable_endpoint_is_an_action_error() -> None:
    port = closed_port()
    target = HttpTarget(base_url=f"http://user:pw@127.0.0.1:{port}/")
    with pytest.raises(ActionError) as caught:
        await run_action(_check("/health?token=abc"), make_ctx(Targets(http=target), timeout=3))
    assert str(caught.value) == (
        f"GET http://127.0.0.1:{port}/health failed: connection refused (ConnectError)"
    )


async def test_missing_http_target_is_a_clear_action_error() -> None:
    with pytest.raises(ActionError, match=r"^runbook has no http target$"):
        await run_action(_check(), make_ctx(Targets()))


# --- prometheusQuery -------------------------------------------------------------------------


async def test_error_rate_above_threshold_fails(http_server: FakeHttpServer) -> None:
    result = await _prom(http_server, _query(PROM_ERROR_RATE, ">", 0.05))

    assert not result.ok
    assert result.findings == {"value": 0.07, "series": 1, "matching": 1}
    assert "is 0.07, above the threshold 0.05; bad signal." in result.message
    sent = http_server.requests[-1]
    assert sent.path == "/api/v1/query"
    assert sent.query["query"] == PROM_ERROR_RATE
    assert sent.query["timeout"] == "14s"  # the step's 15 s less a margin


async def test_error_rate_below_threshold_passes(http_server: FakeHttpServer) -> None:
    result = await _prom(http_server, _query(PROM_ERROR_RATE, ">", 0.10))
    assert result.ok
    assert result.findings == {"value": 0.07, "series": 1, "matching": 0}
    assert "is 0.07, not above the threshold 0.1." in result.message


async def test_less_than(http_server: FakeHttpServer) -> None:
    holds = await _prom(http_server, _query(PROM_ERROR_RATE, "<", 0.10))
    does_not = await _prom(http_server, _query(PROM_ERROR_RATE, "<", 0.05))

    assert not holds.ok and holds.findings["matching"] == 1
    assert "below the threshold 0.1" in holds.message
    assert does_not.ok and does_not.findings["matching"] == 0
    assert "not below the threshold 0.05" in does_not.message


async def test_required_condition_with_fail_when_true_false(http_server: FakeHttpServer) -> None:
    up = await _prom(http_server, _query(PROM_UP_SCALAR, "==", 1, failWhenTrue=False))
    down = await _prom(http_server, _query(PROM_UP_SCALAR, "==", 0, failWhenTrue=False))

    assert up.ok and up.findings["value"] == 1.0
    assert up.output is not None and "(scalar)" in up.output
    assert not down.ok
    assert "not equal to the threshold 0; value == 0 is required." in down.message


async def test_the_worst_series_is_reported(http_server: FakeHttpServer) -> None:
    slow = await _prom(http_server, _query(PROM_P99_BY_HANDLER, ">", 2000))
    fast = await _prom(http_server, _query(PROM_P99_BY_HANDLER, "<", 20))

    assert not slow.ok
    assert slow.findings == {"value": 2500.0, "series": 3, "matching": 1}
    assert 'for {handler="/api/inventory/stats"}, above the threshold 2000 (1 of 3 series)' in (
        slow.message
    )
    assert slow.output is not None
    assert [line.split()[:2] for line in slow.output.splitlines()] == [
        ["12.5", '{handler="/health"}'],
        ["2500", "*"],
        ["40", '{handler="/metrics"}'],
    ]
    assert not fast.ok and fast.findings["value"] == 12.5


async def test_no_data_is_a_clear_finding(http_server: FakeHttpServer) -> None:
    bad_signal = await _prom(http_server, _query(PROM_NO_DATA, ">", 0))
    required = await _prom(http_server, _query(PROM_NO_DATA, ">", 0, failWhenTrue=False))

    assert bad_signal.ok
    assert bad_signal.findings == {"series": 0, "matching": 0}
    assert bad_signal.message.startswith("Prometheus returned no data for sum(rate(")
    assert "the step passes (bad signal)" in bad_signal.message
    assert not required.ok
    assert "the step fails (required signal)" in required.message


async def test_nan_counts_as_no_data(http_server: FakeHttpServer) -> None:
    result = await _prom(http_server, _query(PROM_NAN, "<", 0.8))
    assert result.ok
    assert "value" not in result.findings
    assert result.findings["series"] == 1
    assert "no data (1 NaN)" in result.message


async def test_range_vector_is_rejected_clearly(http_server: FakeHttpServer) -> None:
    with pytest.raises(ActionError, match="range vector; use an instant vector or a scalar"):
        await _prom(http_server, _query(PROM_RANGE))


async def test_invalid_query_is_rejected_with_prometheus_error(http_server: FakeHttpServer) -> None:
    with pytest.raises(ActionError) as caught:
        await _prom(http_server, _query(PROM_INVALID))
    assert str(caught.value) == (
        f"Prometheus at {http_server.base_url}/api/v1/query rejected the query:"
        " bad_data: 1:34: parse error: unclosed left parenthesis"
    )


async def test_prometheus_down_fails_clearly() -> None:
    port = closed_port()
    ctx = make_ctx(Targets(prometheus=PrometheusTarget(url=f"http://127.0.0.1:{port}")), timeout=3)
    with pytest.raises(ActionError) as caught:
        await run_action(_query(PROM_ERROR_RATE), ctx)
    assert str(caught.value) == (
        f"cannot query Prometheus: GET http://127.0.0.1:{port}/api/v1/query failed:"
        " connection refused (ConnectError)"
    )


async def test_a_url_that_is_not_prometheus_fails_clearly(http_server: FakeHttpServer) -> None:
    target = PrometheusTarget(url=f"{http_server.base_url}/health")
    with pytest.raises(ActionError, match="answered HTTP 404 without JSON"):
        await run_action(_query(PROM_ERROR_RATE), make_ctx(Targets(prometheus=target)))


async def test_missing_prometheus_target_is_a_clear_action_error() -> None:
    with pytest.raises(ActionError, match=r"^runbook has no prometheus target$"):
        await run_action(_query(PROM_ERROR_RATE), make_ctx(Targets()))


def test_comparison_enum_covers_every_operator() -> None:
    assert {c.value for c in Comparison} == {">", ">=", "<", "<=", "==", "!="}
