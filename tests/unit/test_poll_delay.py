"""Waits for rollouts and Jobs look often at first, when most of them finish, then settle."""

from __future__ import annotations

from incident_operator.adapters.workloads import (
    FAST_POLL_INTERVAL,
    FAST_POLL_WINDOW,
    POLL_INTERVAL,
    poll_delay,
)


def test_often_at_first_then_every_poll_interval() -> None:
    assert poll_delay(0.0, remaining=60) == FAST_POLL_INTERVAL
    assert poll_delay(FAST_POLL_WINDOW - 0.01, remaining=60) == FAST_POLL_INTERVAL
    assert poll_delay(FAST_POLL_WINDOW, remaining=60) == POLL_INTERVAL
    assert FAST_POLL_INTERVAL < POLL_INTERVAL


def test_never_sleeps_past_the_deadline() -> None:
    assert poll_delay(30.0, remaining=0.2) == 0.2
    assert poll_delay(0.0, remaining=0.05) == 0.05
    assert poll_delay(30.0, remaining=-1.0) == 0.0
