"""Time to triage, per Incident, against two floors measured in the same run.

    .venv/bin/python bench/bench_triage.py [--incidents 1 100 1000] [--runbooks 4]

For each count N, three systems in turn, each in a fresh namespace holding ``--runbooks``
Runbooks that match other services, each as its own process with the operator's
ServiceAccount:
- ``operator``: ``python -m incident_operator run`` (leader election, as installed);
- ``kopf`` (floor a): ``bench/floor_operator.py``, one Kopf handler writing the Triaged
  condition only;
- ``raw`` (floor b): ``bench/floor_raw.py``, a plain client making the requests the operator
  made per triage in this run (reads, status writes, metadata patches, Events), no decision.

N Incidents are created at once from 32 threads. Per Incident, the latency runs from the
moment its create request was sent (the API server's creationTimestamp has whole seconds
only) to the Triaged condition's lastTransitionTime (microseconds, set by whoever triaged).
Requests are the API server's own count (APF, see harness.py); writes per Incident come from
a watch (status and metadata changes), Events from the namespace's events.k8s.io list.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h
import watching

SYSTEMS = ("operator", "raw", "kopf")


def start(
    system: str, cluster: h.Cluster, namespace: str, workdir: Path, counts: dict[str, int]
) -> h.Process:
    if system == "operator":
        return h.start_operator(cluster, namespace, workdir)
    env = {"KUBECONFIG": cluster.operator_kubeconfig()}
    if system == "kopf":
        command = [h.PYTHON, str(h.ROOT / "bench" / "floor_operator.py"), "-n", namespace]
    else:
        command = [h.PYTHON, str(h.ROOT / "bench" / "floor_raw.py"), "-n", namespace]
        for key, value in counts.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
    return h.spawn(command, env, workdir / f"{system}.log")


def run(system: str, n: int, args: argparse.Namespace, counts: dict[str, int]) -> dict[str, Any]:
    cluster = h.Cluster()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-triage-{system}-"))
    with h.bench_namespace(cluster, f"tri-{system}") as namespace:
        for i in range(args.runbooks):
            cluster.create(namespace, "runbooks", h.runbook(f"rb-{i}", f"other-{i}"))
        process = start(system, cluster, namespace, workdir, counts)
        try:
            # Warm up (watch established, code paths imported) with one Incident first.
            cluster.create(namespace, "incidents", h.incident("warmup"))
            watcher = watching.Watcher(cluster, namespace)
            h.until(lambda: watcher.count_done({"warmup"}), 120, "the warm-up triage", process)
            before = watching.settle(cluster, namespace)
            profiler = profile(process, args, system, n)
            cpu = process.stats.cpu_seconds()
            names = [f"inc-{i:04d}" for i in range(n)]
            started = time.time()
            sent = h.create_concurrently(cluster, namespace, [h.incident(x) for x in names])
            wanted = set(names)
            h.until(lambda: watcher.count_done(wanted) == n, 900, f"{n} triaged", process)
            requests = watching.settle(cluster, namespace) - before
            cpu = process.stats.cpu_seconds() - cpu
            watcher.stop()
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=60)
            items = {i["metadata"]["name"]: i for i in cluster.list(namespace)}
            events = sum(
                1
                for e in cluster.events(namespace)
                if (e.get("regarding") or {}).get("name") in wanted
            )
        finally:
            process.stop()
            watching.clear_finalizers(cluster, namespace)
    latencies = [h.condition_time(items[x], "Triaged") - sent[x][0] for x in names]  # type: ignore[operator]
    create_rtt = [answered - at for at, answered in sent.values()]
    last = max(h.condition_time(items[x], "Triaged") or 0 for x in names)
    return {
        "system": system,
        "n": n,
        "latency": h.summary(latencies),
        "create_rtt": h.summary(create_rtt),
        "makespan": last - started,
        "requests": requests / n,
        "status_writes": sum(watcher.status_writes.get(x, 0) for x in names) / n,
        "meta_writes": sum(watcher.meta_writes.get(x, 0) for x in names) / n,
        "watch_gaps": watcher.gaps,
        "events": events / n,
        "cpu": cpu,
        "rss_peak": process.stats.hwm_mib(),
    }


def profile(
    process: h.Process, args: argparse.Namespace, system: str, n: int
) -> subprocess.Popen[bytes] | None:
    """py-spy on the process from the first create until the requests settle (--profile)."""
    if not args.profile or system != "operator":
        return None
    out = Path(args.profile).with_suffix(f".{n}.txt")
    command = [str(Path(h.PYTHON).parent / "py-spy"), "record", "--pid", str(process.pid)]
    command += ["--rate", "50", "--format", "raw", "--output", str(out), "--nonblocking"]
    command += ["--gil"] if args.profile_gil else []
    profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # py-spy attaches
    print(f"profiling the operator into {out}", flush=True)
    return profiler


def floor_counts(result: dict[str, Any]) -> dict[str, int]:
    """The operator's requests per triage, as floor_raw.py's arguments."""
    status, patches, events = (
        round(result["status_writes"]),
        round(result["meta_writes"]),
        round(result["events"]),
    )
    gets = max(0, round(result["requests"]) - status - patches - events)
    return {"gets": gets, "status_writes": status, "patches": patches, "events": events}


def show(results: list[dict[str, Any]]) -> None:
    print(
        "| N | system | p50 s | p95 s | p99 s | max s | all done s | requests/inc | status "
        "writes/inc | meta writes/inc | Events/inc | CPU s | peak RSS MiB |"
    )
    print("|" + "---|" * 13)
    for r in results:
        lat = r["latency"]
        print(
            f"| {r['n']} | {r['system']} | {lat['p50']:.3f} | {lat['p95']:.3f} | "
            f"{lat['p99']:.3f} | {lat['max']:.3f} | {r['makespan']:.2f} | {r['requests']:.1f} | "
            f"{r['status_writes']:.1f} | {r['meta_writes']:.1f} | {r['events']:.1f} | "
            f"{r['cpu']:.1f} | {r['rss_peak']:.0f} |"
            + (" (watch gaps: write counts low)" if r["watch_gaps"] else "")
        )
    print()
    print("| N | figure | operator | floor kopf | ratio | floor raw | ratio | target |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sorted({r["n"] for r in results}):
        by = {r["system"]: r for r in results if r["n"] == n}
        if "operator" not in by:
            continue
        for q in ("p50", "p95", "p99"):
            value = by["operator"]["latency"][q]
            cells = []
            for floor in ("kopf", "raw"):
                if floor in by:
                    f = by[floor]["latency"][q]
                    cells += [f"{f:.3f}", f"{h.ratio(value, f):.2f}x"]
                else:
                    cells += ["-", "-"]
            target = ""
            if q == "p99":
                target = targets(n, value, by)
            print(f"| {n} | {q} | {value:.3f} | " + " | ".join(cells) + f" | {target} |")
    print()
    for r in results:
        rtt = r["create_rtt"]
        print(
            f"N={r['n']} {r['system']}: create request p50 {rtt['p50']:.3f}s p99 {rtt['p99']:.3f}s "
            "(included in each latency)"
        )


def targets(n: int, p99: float, by: dict[str, dict[str, Any]]) -> str:
    """p99 within 1.5x of each floor measured (and under 1 s at N=100)."""
    verdicts = []
    if n == 100:
        verdicts.append(f"<1 s: {'met' if p99 < 1.0 else 'missed'}")
    for floor in ("kopf", "raw"):
        if floor in by:
            met = p99 <= 1.5 * by[floor]["latency"]["p99"]
            verdicts.append(f"<=1.5x {floor}: {'met' if met else 'missed'}")
    return ", ".join(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--runbooks", type=int, default=4)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--profile", help="py-spy the operator into PATH.N.txt (raw stacks)")
    parser.add_argument("--profile-gil", action="store_true", help="only samples holding the GIL")
    args = parser.parse_args()
    h.header("bench_triage.py", sys.argv[1:])
    results = []
    # The raw floor replays the operator's counts of the last run that counted them all.
    counts = {"gets": 0, "status_writes": 1, "patches": 1, "events": 5}
    for n in args.incidents:
        for system in args.systems:
            result = run(system, n, args, counts)
            if system == "operator" and not result["watch_gaps"]:
                counts = floor_counts(result)
            results.append(result)
            lat = result["latency"]
            with contextlib.suppress(Exception):
                print(
                    f"N={n} {system}: p50 {lat['p50']:.3f}s p99 {lat['p99']:.3f}s, "
                    f"{result['requests']:.1f} requests/incident ({h.load()})",
                    flush=True,
                )
    show(results)


if __name__ == "__main__":
    main()
