"""Restart recovery: how long a restarted operator takes to resume 1,000 open Incidents, and
that it repeats nothing.

    .venv/bin/python bench/bench_restart.py [--incidents 1000] [--cadence 90]

Each Incident's Runbook has a diagnosis step whose effect is counted outside the operator
(an httpCheck against a loopback server of this script, which counts the requests) and a
recovery step that waits for an approval nobody gives, so every Incident stays open. With
all of them waiting, the operator is killed (SIGKILL, a crash: its Lease stays held), and
started again once every Incident's next update (``--cadence``) is overdue. Each resumed
Incident then owes exactly one update (missed windows collapse into one), so every
Incident shows when it was decided again.

Figures: time from the restart to the new leader (the killed one's Lease must expire:
INCIDENT_OPERATOR_LEASE_SECONDS, 15 s as installed), from leading to every Incident
decided again, and the total. Checks: the counted step ran exactly once per Incident, no
update number appears twice in any timeline, and no Incident owes an update.
Floor: a plain client (bench/floor_raw.py --existing) that lists the same Incidents and
makes the writes a resume needs, one status write and one Event each, in the same run
(after the operator, since it overwrites status).
"""

from __future__ import annotations

import argparse
import collections
import http.server
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness as h
import watching

UPDATE = re.compile(r"^Incident update #(\d+) sent")


class Counter(http.server.BaseHTTPRequestHandler):
    hits = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with Counter.lock:
            Counter.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: Any) -> None:
        pass


def serve() -> int:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


def runbook(port: int) -> dict[str, Any]:
    return {
        "kind": "Runbook",
        "metadata": {"name": "counted"},
        "spec": {
            "title": "A counted check, then a step waiting for approval",
            "match": {"services": ["bench"]},
            "rto": {"mitigation": "24h"},
            "targets": {"http": {"baseUrl": f"http://127.0.0.1:{port}"}},
            "safety": {"approvalTimeout": "24h"},
            "diagnosis": [{"name": "counted", "action": {"type": "httpCheck", "path": "/count"}}],
            "recovery": [
                {
                    "name": "held",
                    "requiresApproval": True,
                    "action": {"type": "wait", "duration": "1s"},
                }
            ],
        },
    }


def waiting(item: dict[str, Any]) -> bool:
    steps = (item.get("status") or {}).get("steps") or []
    return any(s.get("name") == "held" and s.get("phase") == "AwaitingApproval" for s in steps)


def updates(item: dict[str, Any]) -> list[int]:
    return [
        int(m.group(1))
        for e in (item.get("status") or {}).get("timeline") or []
        if e.get("reason") == "StatusUpdate" and (m := UPDATE.match(e.get("message", "")))
    ]


def due(item: dict[str, Any]) -> float:
    state = (item.get("status") or {}).get("notifications") or {}
    return h.parse_time(state["nextUpdateAt"])


def prepare(
    cluster: h.Cluster, namespace: str, workdir: Path, policy: dict[str, Any], n: int
) -> tuple[float, int]:
    """Every Incident waiting for approval, then the operator killed: (setup s, checks)."""
    names = [f"inc-{i:04d}" for i in range(n)]
    first = h.start_operator(cluster, namespace, workdir, policy)
    try:
        started = time.monotonic()
        h.create_concurrently(cluster, namespace, [h.incident(x, severity=4) for x in names])
        h.until(
            lambda: sum(waiting(i) for i in cluster.list(namespace)) == n,
            1800,
            "every Incident waiting for approval",
            first,
        )
        return time.monotonic() - started, Counter.hits
    finally:
        first.stop(signal.SIGKILL)


def resume(
    cluster: h.Cluster, namespace: str, workdir: Path, policy: dict[str, Any], n: int
) -> dict[str, Any]:
    """Start the operator again once every update is overdue; time it until each Incident
    has been decided again (its update sent)."""
    items = cluster.list(namespace)
    before = {i["metadata"]["name"]: len(updates(i)) for i in items}
    overdue_at = max(due(i) for i in items) + 1
    print(f"restart when all are overdue (in {max(0.0, overdue_at - time.time()):.0f}s)")
    time.sleep(max(0.0, overdue_at - time.time()))
    restarted_at = time.monotonic()
    second = h.start_operator(cluster, namespace, workdir, policy, wait=False)
    try:
        h.until(second.leading, 120, "the restarted operator to lead", second)
        leading = time.monotonic() - restarted_at

        def resumed() -> int:
            return sum(
                len(updates(i)) > before[i["metadata"]["name"]] for i in cluster.list(namespace)
            )

        h.until(lambda: resumed() == n, 1800, "every Incident decided again", second)
        total = time.monotonic() - restarted_at
        time.sleep(5)  # anything repeated would show now
        return {
            "leading": leading,
            "total": total,
            "items": cluster.list(namespace),
            "rss": second.stats.rss_mib(),
            "peak": second.stats.hwm_mib(),
        }
    finally:
        second.stop()


def report(n: int, r: dict[str, Any], floor_seconds: float, hits_before: int) -> None:
    items, leading, total = r["items"], r["leading"], r["total"]
    duplicated = sum(len(u) != len(set(u)) for u in map(updates, items))
    counted = [
        s
        for i in items
        for s in (i.get("status") or {}).get("steps") or []
        if s.get("name") == "counted"
    ]
    phases = collections.Counter(s.get("phase") for s in counted)
    print("| figure | value | floor | ratio |")
    print("|---|---|---|---|")
    print(f"| restart to leading (Lease expiry) s | {leading:.1f} | - | - |")
    print(
        f"| leading to all {n} decided again s | {total - leading:.1f} | "
        f"{floor_seconds:.1f} (plain client: list, 1 write + 1 Event each) | "
        f"{h.ratio(total - leading, floor_seconds):.2f} |"
    )
    print(f"| restart to all decided again s | {total:.1f} | - | - |")
    print(f"| RSS MiB after (peak) | {r['rss']:.0f} ({r['peak']:.0f}) | - | - |")
    ok = Counter.hits == n and not duplicated
    print(
        f"checks: counted step ran {Counter.hits} times for {n} Incidents "
        f"({Counter.hits - hits_before} after the restart; step phases {dict(phases)}); "
        f"Incidents with a repeated update number: {duplicated}; "
        + ("nothing duplicated" if ok else "DUPLICATES")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--cadence", type=float, default=90)
    args = parser.parse_args()
    h.header("bench_restart.py", sys.argv[1:])
    port = serve()
    cluster = h.Cluster()
    workdir = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    policy = {
        "targets": {"http": ["127.0.0.1:*"]},
        "levels": [{"level": 4, "updateCadence": f"{args.cadence:g}s"}],
    }
    with h.bench_namespace(cluster, "restart") as namespace:
        cluster.create(namespace, "runbooks", runbook(port))
        setup, hits_before = prepare(cluster, namespace, workdir, policy, args.incidents)
        print(
            f"setup: {args.incidents} Incidents waiting after {setup:.0f}s, "
            f"{hits_before} counted checks; killed",
            flush=True,
        )
        result = resume(cluster, namespace, workdir, policy, args.incidents)
        try:
            floor_seconds = floor(cluster, namespace, workdir, args.incidents)
        except (RuntimeError, TimeoutError) as exc:  # keep the operator's figures
            print(f"the floor failed: {exc}", flush=True)
            floor_seconds = float("nan")
        watching.clear_finalizers(cluster, namespace)
    report(args.incidents, result, floor_seconds, hits_before)


def floor(cluster: h.Cluster, namespace: str, workdir: Path, n: int) -> float:
    """Seconds a plain client takes to list the Incidents and make the writes a resume
    needs (one status write and one Event each); it overwrites status, so it runs last."""
    base = cluster.dispatched(namespace)
    process = h.spawn(
        [
            *(h.PYTHON, str(h.ROOT / "bench" / "floor_raw.py"), "-n", namespace, "--existing"),
            *("--gets", "0", "--status-writes", "1", "--patches", "0", "--events", "1"),
        ],
        {"KUBECONFIG": cluster.operator_kubeconfig()},
        workdir / "floor.log",
    )
    try:
        # From its first request (the watch's list), as the operator's from its leading on.
        h.until(lambda: cluster.dispatched(namespace) > base, 60, "the floor's list", process)
        started = time.monotonic()
        h.until(lambda: cluster.dispatched(namespace) - base >= 2 * n, 600, "the floor", process)
        return time.monotonic() - started
    finally:
        process.stop()


if __name__ == "__main__":
    main()
