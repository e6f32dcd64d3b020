"""The pure parts of the HTTP and Prometheus steps: comparisons, no-data semantics, URLs."""

from __future__ import annotations

import math

import pytest

from incident_operator.actions.http import compare, evaluate, step_ok
from incident_operator.adapters.http import Sample, display_url
from incident_operator.models.actions import Comparison

SERIES = [
    Sample({"handler": "/health"}, 12.5),
    Sample({"handler": "/api"}, 2500.0),
    Sample({"handler": "/metrics"}, 40.0),
]


@pytest.mark.parametrize(
    ("comparison", "value", "holds"),
    [
        (Comparison.GT, 0.07, True),
        (Comparison.GT, 0.05, False),
        (Comparison.GE, 0.05, True),
        (Comparison.LT, 0.04, True),
        (Comparison.LT, 0.05, False),
        (Comparison.LE, 0.05, True),
        (Comparison.EQ, 0.05, True),
        (Comparison.NE, 0.05, False),
        (Comparison.GT, math.inf, True),
        (Comparison.LT, -math.inf, True),
    ],
)
def test_compare(comparison: Comparison, value: float, holds: bool) -> None:
    assert compare(value, comparison, 0.05) is holds


def test_greater_than_reports_the_highest_series() -> None:
    ev = evaluate(SERIES, Comparison.GT, 2000)
    assert ev.holds is True
    assert ev.sample == SERIES[1]
    assert (ev.series, ev.matching) == (3, 1)


def test_less_than_reports_the_lowest_series() -> None:
    ev = evaluate(SERIES, Comparison.LT, 20)
    assert ev.holds is True and ev.sample == SERIES[0]
    ev = evaluate(SERIES, Comparison.LT, 10)
    assert ev.holds is False and ev.sample == SERIES[0] and ev.matching == 0


def test_equality_reports_the_first_matching_series() -> None:
    assert evaluate(SERIES, Comparison.EQ, 40).sample == SERIES[2]
    assert evaluate(SERIES, Comparison.EQ, 41).sample == SERIES[0]
    assert evaluate(SERIES, Comparison.NE, 12.5).sample == SERIES[1]


def test_nan_is_no_data() -> None:
    ev = evaluate([Sample({}, math.nan)], Comparison.GT, 0)
    assert ev.holds is None and ev.sample is None
    assert (ev.series, ev.ignored_nan) == (1, 1)
    mixed = evaluate([Sample({"a": "1"}, math.nan), Sample({"a": "2"}, 3.0)], Comparison.GT, 1)
    assert mixed.holds is True and mixed.sample is not None and mixed.sample.value == 3.0


def test_empty_result_is_no_data() -> None:
    ev = evaluate([], Comparison.GT, 0)
    assert ev.holds is None and ev.series == 0


@pytest.mark.parametrize(
    ("holds", "fail_when_true", "ok"),
    [
        (True, True, False),  # bad signal present
        (False, True, True),
        (None, True, True),  # no error series: nothing is failing
        (True, False, True),  # required signal present
        (False, False, False),
        (None, False, False),  # required signal absent
    ],
)
def test_step_ok(holds: bool | None, fail_when_true: bool, ok: bool) -> None:
    assert step_ok(holds, fail_when_true) is ok


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:9000/health", "http://127.0.0.1:9000/health"),
        ("https://user:secret@api.example.com/v1/x?token=abc#f", "https://api.example.com/v1/x"),
        ("http://prometheus:9090/api/v1/query?query=up", "http://prometheus:9090/api/v1/query"),
    ],
)
def test_display_url_drops_credentials_and_query(url: str, shown: str) -> None:
    assert display_url(url) == shown
