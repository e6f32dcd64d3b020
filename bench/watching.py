"""Following a bench namespace's Incidents as the API server sees them: when each was first
seen with a condition, how many writes of each kind each had, and when the operator's
requests have settled."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import kubernetes
from harness import GROUP, VERSION, Cluster, condition_time


class Watcher:
    """Follows a namespace's Incidents from a resourceVersion on: when each was first seen
    Triaged, and how many writes of each kind each one had (status, metadata).

    A watch the API server closes (it drops a watcher that reads too slowly while a busy
    bench creates 1,000 objects) is listed and watched again; writes in such a gap are not
    counted, so ``gaps`` says whether the write counts are complete."""

    def __init__(self, cluster: Cluster, namespace: str, condition: str = "Triaged") -> None:
        self.cluster, self.namespace, self.condition = cluster, namespace, condition
        self.last: dict[str, dict[str, Any]] = {}
        self.done: dict[str, float] = {}
        self.status_writes: dict[str, int] = {}
        self.meta_writes: dict[str, int] = {}
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.gaps = -1
        self._stopped = False
        self._response = self._connect()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _connect(self) -> Any:
        self.gaps += 1
        listing = self.cluster.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "incidents"
        )
        with self.lock:
            for item in listing["items"]:
                self.last[item["metadata"]["name"]] = item
                if condition_time(item, self.condition) is not None:
                    self.done.setdefault(item["metadata"]["name"], time.time())
        return self.cluster.custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            "incidents",
            watch=True,
            resource_version=listing["metadata"]["resourceVersion"],
            timeout_seconds=1800,
            _preload_content=False,
        )

    def _follow(self) -> None:
        from kubernetes.watch.watch import iter_resp_lines

        while not self._stopped:
            try:
                for line in iter_resp_lines(self._response):
                    event = json.loads(line)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._seen(event["object"])
                if not self._stopped:
                    self._response = self._connect()
            except Exception as exc:  # closed by stop(), or broken
                if self._stopped:
                    return
                try:
                    self._response = self._connect()
                except Exception:
                    self.error = exc
                    return

    def _seen(self, item: dict[str, Any]) -> None:
        name = item["metadata"]["name"]
        with self.lock:
            before = self.last.get(name)
            self.last[name] = item
            if before is not None:
                if (before.get("status") or {}) != (item.get("status") or {}):
                    self.status_writes[name] = self.status_writes.get(name, 0) + 1
                meta = ("annotations", "labels", "finalizers")
                if any(before["metadata"].get(k) != item["metadata"].get(k) for k in meta):
                    self.meta_writes[name] = self.meta_writes.get(name, 0) + 1
            if name not in self.done and condition_time(item, self.condition) is not None:
                self.done[name] = time.time()

    def count_done(self, names: set[str]) -> int:
        if self.error is not None:
            raise RuntimeError(f"the watch failed: {self.error!r}")
        with self.lock:
            return len(names & self.done.keys())

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(Exception):
            self._response.shutdown()
        with contextlib.suppress(Exception):
            self._response.close()


def settle(cluster: Cluster, namespace: str, quiet: float = 2.0, timeout: float = 120) -> int:
    """Wait until the operator's request count stops moving for ``quiet`` seconds (Events
    trail the status writes); the count then."""
    deadline = time.monotonic() + timeout
    last, since = cluster.dispatched(namespace), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cluster.dispatched(namespace)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def clear_finalizers(cluster: Cluster, namespace: str) -> None:
    """Nothing should hold a finalizer (no timers), but a floor's Kopf might: drop them so
    the namespace can go."""
    with contextlib.suppress(kubernetes.client.ApiException):
        for item in cluster.list(namespace):
            if item["metadata"].get("finalizers"):
                cluster.custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    "incidents",
                    item["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                )
