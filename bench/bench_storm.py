"""Alert storm: 5,000 alerts in 50 groups through the real Alertmanager.

    .venv/bin/python bench/bench_storm.py [--groups 50] [--per-group 100]

The storm of tests/integration/test_alertmanager_storm.py, run with its fixtures
(tests/fixtures/alerting.py: Alertmanager of hack/build-alertmanager.sh, group_wait 1s,
group_interval 2s, grouped by alertname), as a benchmark. Between Alertmanager and the
receiver sits a loopback proxy of this script that times every webhook request: the
operator's answer time as Alertmanager sees it (plus well under a millisecond for the hop).

Two runs in the same process:
- floor: Alertmanager delivers to the proxy alone, which answers 200 at once; the time until
  it has seen all 50 groups is what Alertmanager itself takes;
- operator (as installed: leader election, its ServiceAccount, the receiver on a loopback
  port): the time until the 50th Incident exists, until every alert is recorded, webhook
  latency p50/p99, and the operator's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness as h
from aiohttp import ClientSession, ClientTimeout, web
from tests.fixtures.alerting import run_alertmanager
from tests.integration.test_alertmanager_storm import storm


class Proxy:
    """Times each webhook request; forwards it to ``target`` or, without one, answers 200."""

    def __init__(self) -> None:
        self.target: str | None = None
        self.timings: list[tuple[float, int, int]] = []  # (seconds, alerts, status)
        self.groups: dict[str, float] = {}
        self.port = h.free_port()
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._serve, args=(started,), daemon=True).start()
        if not started.wait(10):
            raise RuntimeError("the proxy did not start")

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/alertmanager", self.handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.session = self._loop.run_until_complete(self._session())
        started.set()
        self._loop.run_forever()

    @staticmethod
    async def _session() -> ClientSession:
        return ClientSession(timeout=ClientTimeout(total=60))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        payload = json.loads(body)
        self.groups.setdefault(payload.get("groupKey", ""), time.monotonic())
        alerts = len(payload.get("alerts") or [])
        started = time.perf_counter()
        if self.target is None:
            self.timings.append((time.perf_counter() - started, alerts, 200))
            return web.Response(status=200)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type")
        }
        async with self.session.post(self.target, data=body, headers=headers) as answer:
            text = await answer.read()
            status = answer.status
            retry = answer.headers.get("Retry-After")
        self.timings.append((time.perf_counter() - started, alerts, status))
        return web.Response(
            status=status, body=text, headers={"Retry-After": retry} if retry else None
        )

    def reset(self, target: str | None) -> None:
        self.target, self.timings, self.groups = target, [], {}


def alertmanager_bin() -> Path:
    done = subprocess.run(
        ["bash", str(h.ROOT / "hack" / "build-alertmanager.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def alertmanager(proxy: Proxy, workdir: Path, token: str) -> Iterator[Any]:
    url = f"http://127.0.0.1:{proxy.port}/alertmanager"
    with run_alertmanager(alertmanager_bin(), workdir, url, token, group_by=("alertname",)) as am:
        yield am


def post(am: Any, alerts: list[dict[str, Any]]) -> float:
    started = time.monotonic()
    for chunk in range(0, len(alerts), 500):
        am.post_alerts(alerts[chunk : chunk + 500])
    return started


def floor_run(proxy: Proxy, workdir: Path, groups: int) -> float:
    proxy.reset(None)
    with alertmanager(proxy, workdir / "am-floor", "floor") as am:
        started = post(am, storm())
        h.until(lambda: len(proxy.groups) >= groups, 240, "every group at the floor receiver")
        return max(proxy.groups.values()) - started


def operator_run(proxy: Proxy, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    cluster = h.Cluster()
    token, port = secrets.token_hex(16), h.free_port()
    env = {
        "INCIDENT_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
        "INCIDENT_OPERATOR_WEBHOOK_PORT": str(port),
        "INCIDENT_OPERATOR_WEBHOOK_TOKEN": token,
    }
    with h.bench_namespace(cluster, "storm") as namespace:
        operator = h.start_operator(cluster, namespace, workdir, env=env)
        try:
            h.until(lambda: _healthy(port), 60, "the alert receiver", operator)
            proxy.reset(f"http://127.0.0.1:{port}/alertmanager")
            rss_before = operator.stats.rss_mib()
            with alertmanager(proxy, workdir / "am", token) as am:
                started = post(am, storm())
                h.until(lambda: len(cluster.list(namespace)) >= args.groups, 240, "50 Incidents")
                to_last = time.monotonic() - started

                def recorded() -> bool:
                    items = cluster.list(namespace)
                    totals = [
                        ((i.get("status") or {}).get("alerts") or {}).get("total") for i in items
                    ]
                    return len(items) == args.groups and all(t == args.per_group for t in totals)

                h.until(recorded, 240, "every alert recorded", operator)
                to_all = time.monotonic() - started
            incidents = len(cluster.list(namespace))
            peak = operator.stats.hwm_mib()
        finally:
            operator.stop()
    latencies = [seconds for seconds, _, _ in proxy.timings]
    statuses = sorted({status for _, _, status in proxy.timings})
    return {
        "to_last": to_last,
        "to_all": to_all,
        "incidents": incidents,
        "requests": len(proxy.timings),
        "statuses": statuses,
        "latency": h.summary(latencies),
        "rss_before": rss_before,
        "peak": peak,
    }


def _healthy(port: int) -> bool:
    import urllib.request

    url = f"http://127.0.0.1:{port}/healthz"
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
        return bool(answer.status == 200)
    return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--per-group", type=int, default=100)
    args = parser.parse_args()
    if (args.groups, args.per_group) != (50, 100):
        import tests.integration.test_alertmanager_storm as shape

        shape.GROUPS, shape.PER_GROUP = args.groups, args.per_group  # storm() reads these
    h.header("bench_storm.py", sys.argv[1:])
    workdir = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    proxy = Proxy()
    floor = floor_run(proxy, workdir, args.groups)
    print(f"floor: Alertmanager delivered all {args.groups} groups after {floor:.2f}s ({h.load()})")
    r = operator_run(proxy, workdir, args)
    lat = r["latency"]
    print(
        f"operator: {args.groups * args.per_group} alerts -> {r['incidents']} Incidents; "
        f"{r['requests']} webhook requests (HTTP {r['statuses']}) ({h.load()})"
    )
    h.row("figure", "value", "floor", "ratio", "target")
    h.row("---", "---", "---", "---", "---")
    met = "met" if r["to_last"] < 10 else "missed"
    to_last, to_all = r["to_last"], r["to_all"]
    h.row("time to the 50th Incident s", f"{to_last:.2f}", f"{floor:.2f}",
          f"{h.ratio(to_last, floor):.2f}", f"< 10 s: {met}")  # fmt: skip
    h.row("time to every alert recorded s", f"{to_all:.2f}", f"{floor:.2f}",
          f"{h.ratio(to_all, floor):.2f}", "-")  # fmt: skip
    latency = f"{lat['p50']:.3f} / {lat['p99']:.3f} / {lat['max']:.3f}"
    h.row("webhook latency p50 / p99 / max s", latency, "-", "-", "-")
    memory = f"{r['rss_before']:.0f} / {r['peak']:.0f}"
    h.row("operator RSS before / peak MiB", memory, "-", "-", "bounded (the test: < 400)")


if __name__ == "__main__":
    main()
