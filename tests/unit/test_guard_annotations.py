"""The safety gate reads a Lease's attempts annotation defensively: size, depth and shape.

Anyone who may write Leases in the operator's namespace can write the annotation. A deeply
nested one (``[[[[...]]]]``) raised RecursionError in ``json.loads``, and every guarded step
on that target failed to be decided. Now an annotation that is too large, too deep or of
the wrong shape counts as no recorded attempts, and the gate decides as usual.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from incident_operator.adapters.guard import (
    ATTEMPTS_ANNOTATION,
    MAX_ANNOTATION_CHARS,
    attempt_records,
    holder_of,
    lease_verdict,
)

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def _lease(annotation: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"annotations": {ATTEMPTS_ANNOTATION: annotation}}, "spec": spec or {}}


@pytest.mark.parametrize(
    "annotation",
    [
        "[" * 100_000 + "]" * 100_000,  # RecursionError in json.loads
        '[{"at": ' * 5_000 + "1" + "}]" * 5_000,
        json.dumps([[[[[["2026-11-27T11:00:00Z"]]]]]]),
        json.dumps(["2026-11-27T11:00:00Z"] * 20_000),  # longer than the size cap
        "not json",
        json.dumps({"at": "2026-11-27T11:00:00Z"}),
    ],
)
def test_an_unreadable_attempts_annotation_counts_as_none(annotation: str) -> None:
    assert attempt_records(_lease(annotation)) == []
    verdict = lease_verdict(_lease(annotation), "k", "me", 600, 3, 3600, NOW)
    assert verdict.granted


def test_entries_of_the_wrong_shape_are_skipped() -> None:
    annotation = json.dumps(
        [
            {"at": "yesterday"},
            {"at": True},
            {"at": 12},
            {"at": "2026-11-27T11:00:00Z", "holder": 7},
            "2026-11-27T11:30:00Z",
            None,
        ]
    )
    records = attempt_records(_lease(annotation))
    assert records == [
        (dt.datetime(2026, 11, 27, 11, 0, tzinfo=dt.UTC), None),
        (dt.datetime(2026, 11, 27, 11, 30, tzinfo=dt.UTC), None),
    ]


def test_a_valid_annotation_up_to_the_cap_is_read() -> None:
    stamps = [{"at": "2026-11-27T11:00:00Z", "holder": "u"}] * 64
    annotation = json.dumps(stamps)
    assert len(annotation) < MAX_ANNOTATION_CHARS
    assert len(attempt_records(_lease(annotation))) == 64


def test_a_lease_duration_beyond_the_calendar_means_no_holder() -> None:
    spec = {
        "holderIdentity": "other",
        "renewTime": "2026-11-27T11:59:00.000000Z",
        "leaseDurationSeconds": 10**20,
    }
    assert holder_of(_lease("[]", spec), NOW) == (None, None)
