"""parse_duration / format_duration: the CRD duration grammar to seconds and back."""

from __future__ import annotations

import math

import pytest

from incident_operator.durations import format_duration, inner_timeout, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0.0),
        ("500ms", 0.5),
        ("1s", 1.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("1m30.25s", 90.25),
        ("1d2h3m4s5ms", 86400 + 7200 + 180 + 4 + 0.005),
        ("30s500ms", 30.5),
        (" 24h ", 86400.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert math.isclose(parse_duration(text), seconds, abs_tol=1e-9)


@pytest.mark.parametrize(
    "text", ["", "10", "m", "10x", "-5s", "1h 30m", "1.h", ".5s", "10M", "1h30", "5sec"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "0s"),
        (0.5, "500ms"),
        (0.0126, "13ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (60, "1m"),
        (90, "1m30s"),
        (600, "10m"),
        (3600, "1h"),
        (5400, "1h30m"),
        (86400, "1d"),
        (90061.25, "1d1h1m1.25s"),
        (3600.5, "1h0.5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1.0, math.inf, math.nan])
def test_format_duration_rejects(seconds: float) -> None:
    with pytest.raises(ValueError):
        format_duration(seconds)


@pytest.mark.parametrize("seconds", [0.001, 0.25, 7, 61.5, 3599.999, 5400, 86401.002, 1234567.8])
def test_round_trip(seconds: float) -> None:
    assert math.isclose(parse_duration(format_duration(seconds)), seconds, abs_tol=5e-4)


def test_formatted_text_matches_the_crd_pattern() -> None:
    from incident_operator.models.actions import Wait

    for seconds in (0.2, 5, 90.5, 5400, 90061.25):
        assert Wait(type="wait", duration=format_duration(seconds)).duration


@pytest.mark.parametrize(
    ("timeout", "inner"), [(30, 29), (10, 9), (5, 4.5), (0.5, 0.45), (0.05, 0.1), (600, 599)]
)
def test_inner_timeout_leaves_a_margin(timeout: float, inner: float) -> None:
    assert inner_timeout(timeout) == pytest.approx(inner)
