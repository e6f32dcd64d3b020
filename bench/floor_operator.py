"""Floor (a) of the time to triage: the least a Kopf operator can do per Incident.

    .venv/bin/python bench/floor_operator.py -n NAMESPACE   (bench_triage.py starts it)

One handler on create that writes one status field, the Triaged condition, and nothing
else: no read, no decision, no Event. It runs as its own process with the operator's Kopf
settings and its ServiceAccount's credentials ($KUBECONFIG), as the operator does, so its
latency is what Kopf and the API server cost on this machine at this moment.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
from typing import Any

import kopf

from incident_operator.startup import configure_kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure_kopf(settings)


@kopf.on.create("incidents.dev", "v1alpha1", "incidents", id="triage")
def triage(patch: kopf.Patch, **_: Any) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch.status["conditions"] = [
        {
            "type": "Triaged",
            "status": "True",
            "reason": "Triaged",
            "message": "floor",
            "lastTransitionTime": now,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--namespace", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(kopf.operator(namespaces=[args.namespace], standalone=True))


if __name__ == "__main__":
    main()
