"""Floor (b) of the time to triage: the operator's requests per triage, and nothing else.

    .venv/bin/python bench/floor_raw.py -n NS --gets G --status-writes S --patches P --events E

A plain asyncio client (aiohttp, as Kopf uses) watches the namespace's Incidents and, for
each new one, makes the requests the operator makes per triage as ``bench_triage.py``
counted them, in the best order for the time to triage: at once, G reads and S status
writes of a status shaped like the operator's (a real triage decision, computed once); then,
through 16 lanes (the operator's client has 16 threads) and after every pending write, P
metadata patches (Kopf's record of the handled spec) and E Events. No decision is computed
per Incident: what the operator takes beyond this is its own work.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime as dt
import itertools
import json
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import kubernetes

from incident_operator.adapters.kube import event_body
from incident_operator.domain.lifecycle import decide
from incident_operator.domain.policy import load_policy
from incident_operator.domain.story import RunbookChoice
from incident_operator.models.objects import IncidentObject

GROUP, VERSION = "incidents.dev", "v1alpha1"
LANES = 16


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def template(policy_file: str | None) -> dict[str, Any]:
    """The status the operator writes when it triages a severity-3 Incident with no Runbook."""
    body = {
        "metadata": {"name": "t", "namespace": "n", "uid": "u", "generation": 1},
        "spec": {"service": "bench", "summary": "bench t", "severity": 3},
        "status": {},
    }
    choice = RunbookChoice(None, "NoMatchingRunbook", "No valid Runbook matches service bench")
    decision = decide(
        IncidentObject.parse(body), load_policy(policy_file), choice, dt.datetime.now(dt.UTC)
    )
    return decision.status.to_k8s()


class Floor:
    def __init__(self, args: argparse.Namespace) -> None:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(client_configuration=configuration)
        self.host = configuration.host
        bearer = configuration.auth_settings()["BearerToken"]["value"]
        self.headers = {"Authorization": bearer}
        self.ssl = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        self.args = args
        self.status = template(os.environ.get("INCIDENT_OPERATOR_POLICY"))
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{args.namespace}/incidents"
        self.incidents = base
        self.events = f"/apis/events.k8s.io/v1/namespaces/{args.namespace}/events"
        self.queue: asyncio.PriorityQueue[tuple[int, int, Callable[[], Awaitable[None]]]]
        self.order = itertools.count()
        self.tasks: set[asyncio.Future[None]] = set()

    async def request(self, method: str, path: str, body: Any = None, patch: bool = False) -> Any:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = (
                "application/merge-patch+json" if patch else "application/json"
            )
        data = json.dumps(body) if body is not None else None
        async with self.session.request(
            method, self.host + path, data=data, headers=headers, ssl=self.ssl
        ) as answer:
            text = await answer.read()
            if answer.status >= 400:
                raise RuntimeError(f"{method} {path}: {answer.status} {text[:200]!r}")
            return json.loads(text)

    def spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception as exc:
                print(f"floor: {exc!r}", file=sys.stderr, flush=True)

        task = asyncio.ensure_future(guarded())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def submit(self, priority: int, task: Callable[[], Awaitable[None]]) -> None:
        self.queue.put_nowait((priority, next(self.order), task))

    async def lane(self) -> None:
        while True:
            _, _, task = await self.queue.get()
            try:
                await task()
            except Exception as exc:
                print(f"floor: {exc!r}", file=sys.stderr, flush=True)

    async def triage(self, item: dict[str, Any]) -> None:
        name = item["metadata"]["name"]
        body = item
        for _ in range(self.args.gets):
            body = await self.request("GET", f"{self.incidents}/{name}")
        for _ in range(self.args.status_writes):
            status = copy.deepcopy(self.status)
            stamp = now()
            for condition in status.get("conditions", []):
                condition["lastTransitionTime"] = stamp
            new = {**body, "status": status}
            body = await self.request("PUT", f"{self.incidents}/{name}/status", new)
        for _ in range(self.args.patches):
            self.submit(1, lambda body=body: self.patch(body))  # type: ignore[misc]
        for i in range(self.args.events):
            self.submit(1, lambda i=i, body=body: self.event(body, i))  # type: ignore[misc]

    async def patch(self, body: dict[str, Any]) -> None:
        spec = json.dumps(body.get("spec"))
        patch = {"metadata": {"annotations": {"incidents.dev/last-handled": spec}}}
        path = f"{self.incidents}/{body['metadata']['name']}"
        await self.request("PATCH", path, patch, patch=True)

    async def event(self, body: dict[str, Any], index: int) -> None:
        # The operator's own Event body (same size and fields), only the reason and note differ.
        note = f"floor event {index} " + "x" * 80
        event = event_body(body, "Normal", "Floor", note, dt.datetime.now(dt.UTC))
        await self.request("POST", self.events, event)

    async def run(self) -> None:
        self.queue = asyncio.PriorityQueue()
        connector = aiohttp.TCPConnector(limit=LANES + 1)
        async with aiohttp.ClientSession(connector=connector) as self.session:
            lanes = [asyncio.create_task(self.lane()) for _ in range(LANES)]
            seen: set[str] = set()
            try:
                while True:  # a watch the API server ends (a restart of it) is watched again
                    try:
                        await self.watch(seen)
                    except aiohttp.ClientError as exc:
                        print(f"floor: watch: {exc!r}; watching again", file=sys.stderr)
                    await asyncio.sleep(1)
            finally:
                for lane in lanes:
                    lane.cancel()

    async def watch(self, seen: set[str]) -> None:
        url = f"{self.host}{self.incidents}?watch=true&timeoutSeconds=3600"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(
            url, headers=self.headers, ssl=self.ssl, timeout=timeout
        ) as stream:
            async for line in stream.content:
                event = json.loads(line)
                item = event["object"]
                if event["type"] != "ADDED" or "metadata" not in item:
                    continue
                name = item["metadata"]["name"]
                conditions = (item.get("status") or {}).get("conditions") or []
                if name in seen or (conditions and not self.args.existing):
                    continue
                seen.add(name)
                # At once, as Kopf starts a worker per object: nothing waits for a lane.
                self.spawn(self.triage(item))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--gets", type=int, default=1)
    parser.add_argument("--status-writes", type=int, default=1)
    parser.add_argument("--patches", type=int, default=1)
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument(
        "--existing",
        action="store_true",
        help="also act on Incidents that exist already (a restart's floor: bench_restart.py)",
    )
    asyncio.run(Floor(parser.parse_args()).run())


if __name__ == "__main__":
    main()
