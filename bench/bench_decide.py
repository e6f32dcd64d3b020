"""How fast the pure lifecycle decision runs, and how big a full status gets.

    .venv/bin/python bench/bench_decide.py [--rounds N]

Prints decisions per second for a fresh incident and for one with a full timeline, and the
serialized size of the largest status the operator writes (bounded timeline, 32 steps).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import tracemalloc

from incident_operator.domain import timeline
from incident_operator.domain.lifecycle import decide
from incident_operator.domain.policy import load_policy
from incident_operator.domain.story import RunbookChoice
from incident_operator.models.incident import MAX_STEP_OUTPUT, IncidentStatus, StepStatus
from incident_operator.models.objects import IncidentObject

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
CHOICE = RunbookChoice("dashboard-outage", "RunbookSelected", "matched", None, 300)


def body(status: IncidentStatus | None = None) -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {
            "name": "bench",
            "namespace": "n",
            "uid": "u",
            "generation": 1,
            "creationTimestamp": T0.isoformat(),
        },
        "spec": {"service": "dashboard", "summary": "Dashboard down", "severity": 1},
        "status": status.to_k8s() if status else {},
    }


def full_status() -> IncidentStatus:
    status = decide(IncidentObject.parse(body()), load_policy(), CHOICE, T0).status
    for i in range(500):
        timeline.append(status, T0, "StatusUpdate", f"Incident update #{i} sent " + "x" * 200)
    status.steps = [
        StepStatus(
            name=f"step-{i}",
            stage="recovery",
            action="httpCheck",
            message="m" * 1024,
            output="o" * MAX_STEP_OUTPUT,
            findings={f"k{j}": "v" * 64 for j in range(8)},
        )
        for i in range(32)
    ]
    return status


def rate(label: str, make_body: dict, rounds: int) -> None:  # type: ignore[type-arg]
    policy = load_policy()
    started = time.perf_counter()
    for i in range(rounds):
        decide(IncidentObject.parse(make_body), policy, CHOICE, T0 + dt.timedelta(seconds=i % 60))
    elapsed = time.perf_counter() - started
    print(f"{label}: {rounds / elapsed:,.0f} decisions/s ({elapsed / rounds * 1e6:,.0f} us each)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    rate("fresh incident (triage + initial notification)", body(), args.rounds)
    full = full_status()
    rate("incident with full timeline and 32 steps", body(full), args.rounds // 4)
    size = len(json.dumps(full.to_k8s()))
    print(
        f"largest status: {len(full.timeline)} timeline entries "
        f"({full.timeline_folded} folded), {len(full.steps)} steps, {size / 1024:.0f} KiB JSON"
    )
    tracemalloc.start()
    IncidentObject.parse(body(full))
    _, peak = tracemalloc.get_traced_memory()
    print(f"parsing it allocates {peak / 1024:.0f} KiB at peak")


if __name__ == "__main__":
    main()
