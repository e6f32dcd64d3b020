"""The data-plane bridge: makes the fake (kwok) pods of the demo namespace real.

kwok pods run no containers. This process watches the Pods of one namespace and, for the apps it
knows (label ``app``), plays the kubelet's part on this machine:

- ``app=dashboard``: keeps ONE local ``python -m incident_demo.dashboard`` process in step
  with the newest Running pod. A new pod (rollout restart, new image, rollback) replaces the
  process; the version comes from the image tag (``incident-operator/dashboard:v2-broken`` ->
  ``VERSION=v2-broken``, a broken build). Env vars of the container are resolved like the
  kubelet does (values, Secret/ConfigMap refs, fieldRefs, envFrom); the endpoints of PostgreSQL
  and Redis are pointed at the local servers of ``services.env``.
- ``app=prometheus``: a local Prometheus (Debian package) scraping the local dashboard.
- ``app=postgres`` / ``app=redis``: "external": the pods stand for the local servers started by
  hack/services-up.sh, nothing is spawned; their server log is mirrored for ``kubectl logs`` and
  ``kubectl exec`` gets the connection settings.

For every pod it serves, the bridge creates the namespaced kwok ``Logs`` object of the same name
(owned by the pod, so it goes with it) that maps ``kubectl logs`` to
``$INCIDENT_OPERATOR_STATE/logs/<namespace>/<pod>.log``, written in the CRI log format from the
process's stdout/stderr; see hack/README.md and hack/cluster-up.sh.

State files, one per app: ``<state-dir>/<namespace>/<app>.json`` (pid, pod, podUID, image,
version, port, url, logFile, status, ...), plus ``bridge.json`` once the first sync is done.

Run: ``python -m incident_demo.dataplane --kubeconfig KUBECONFIG --namespace demo``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from . import DEFAULT_STATE_DIR, STATE_ENV, _proc
from . import prometheus as prom

log = logging.getLogger("dataplane")

KWOK_GROUP, KWOK_VERSION = "kwok.x-k8s.io", "v1alpha1"
MANAGED_BY = "incident-operator-dataplane"
CRI_MAX_LINE = 16 * 1024

# Env vars of the dashboard that name the network endpoints of its dependencies: the cluster
# names (postgres.demo.svc) do not resolve here, so these always point at the local servers.
ENDPOINT_KEYS = ("PGHOST", "PGPORT", "REDIS_HOST", "REDIS_PORT")
# Connection settings taken from services.env unless the pod sets them.
SERVICE_KEYS = (
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "REDIS_HOST",
    "REDIS_PORT",
)
# What a child inherits from the bridge's own environment (nothing else leaks in).
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")


def state_root(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(STATE_ENV) or DEFAULT_STATE_DIR).expanduser()


# --- pure helpers (unit-tested) ----------------------------------------------------------------


def image_tag(image: str) -> str:
    """The tag of an image reference (``latest`` when none, the digest when only pinned)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return digest or "latest"


def cri_line(stream: str, line: str, partial: bool = False, now_ns: int | None = None) -> str:
    """One line in the CRI log format kwok reads: ``<RFC3339Nano> stdout|stderr F|P <text>``."""
    ns = time.time_ns() if now_ns is None else now_ns
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z {stream} {'P' if partial else 'F'} {line}\n"


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines (as written by hack/services-up.sh); quotes around values are removed."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


@dataclass(frozen=True)
class PodView:
    """What the bridge needs from a Pod (plain data, so selection logic is testable)."""

    name: str
    uid: str
    app: str
    phase: str
    created: float
    deleting: bool = False
    image: str = ""
    container: str = ""
    owner_rs: str = ""
    raw: Any = field(default=None, compare=False, repr=False)

    @property
    def serving(self) -> bool:
        return self.phase == "Running" and not self.deleting


def newest_running(
    pods: Iterable[PodView], app: str, revision: Callable[[PodView], int] | None = None
) -> PodView | None:
    """The pod that the local process should stand for: newest Running, not terminating.

    Creation times have a resolution of one second; ties go to the higher Deployment revision
    (``revision`` is only asked then), then to the name.
    """
    candidates = [p for p in pods if p.app == app and p.serving]
    if not candidates:
        return None
    newest = max(p.created for p in candidates)
    top = [p for p in candidates if p.created == newest]
    if len(top) > 1 and revision is not None:
        return max(top, key=lambda p: (revision(p), p.name))
    return max(top, key=lambda p: p.name)


def pod_view(pod: Any) -> PodView | None:
    """A :class:`PodView` of a kubernetes client ``V1Pod``, or None without an ``app`` label."""
    meta = pod.metadata
    labels = meta.labels or {}
    app = labels.get("app")
    if not app:
        return None
    containers = list(pod.spec.containers or []) if pod.spec else []
    main = next((c for c in containers if c.name == app), containers[0] if containers else None)
    owner_rs = next(
        (ref.name for ref in meta.owner_references or [] if ref.kind == "ReplicaSet"), ""
    )
    created = meta.creation_timestamp.timestamp() if meta.creation_timestamp else 0.0
    return PodView(
        name=meta.name,
        uid=meta.uid,
        app=app,
        phase=(pod.status.phase if pod.status else None) or "Pending",
        created=created,
        deleting=meta.deletion_timestamp is not None,
        image=main.image if main is not None else "",
        container=main.name if main else "",
        owner_rs=owner_rs,
        raw=pod,
    )


# --- logs --------------------------------------------------------------------------------------


class CriLog:
    """Appends lines to a file in the CRI log format (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, stream: str, text: str) -> None:
        text = text.rstrip("\r\n")
        with self._lock:
            if self._f.closed:
                return
            while len(text) > CRI_MAX_LINE:
                self._f.write(cri_line(stream, text[:CRI_MAX_LINE], partial=True))
                text = text[CRI_MAX_LINE:]
            self._f.write(cri_line(stream, text))
            self._f.flush()

    def pump(self, stream_name: str, pipe: IO[bytes]) -> threading.Thread:
        """Copies ``pipe`` line by line into the log, in a thread; returns the thread."""

        def run() -> None:
            with contextlib.suppress(ValueError, OSError):
                for raw in iter(pipe.readline, b""):
                    self.write(stream_name, raw.decode("utf-8", "replace"))
            with contextlib.suppress(OSError):
                pipe.close()

        t = threading.Thread(target=run, name=f"pump-{self.path.name}-{stream_name}", daemon=True)
        t.start()
        return t

    def close(self) -> None:
        with self._lock:
            self._f.close()


class FileMirror:
    """Follows a plain text log (e.g. postgres.log) into a CRI log file, in a thread."""

    def __init__(self, source: Path, sink: CriLog, backlog: int = 64 * 1024) -> None:
        self.source, self.sink, self.backlog = source, sink, backlog
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mirror-{source.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pos: int | None = None
        buf = b""
        while not self._stop.is_set():
            try:
                size = self.source.stat().st_size
                if pos is None:
                    pos = max(0, size - self.backlog)
                if size < pos:  # truncated or replaced
                    pos, buf = 0, b""
                if size > pos:
                    with open(self.source, "rb") as f:
                        f.seek(pos)
                        chunk = f.read(1024 * 1024)
                    pos += len(chunk)
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for raw in lines:
                        self.sink.write("stderr", raw.decode("utf-8", "replace"))
            except OSError:
                pass
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sink.close()


# --- Kubernetes side ---------------------------------------------------------------------------


class ConfigError(Exception):
    """The pod's configuration cannot be resolved yet (missing Secret key, ...)."""


class Cluster:
    """The few API calls of the bridge (kubernetes python client)."""

    def __init__(self, kubeconfig: str | None, namespace: str) -> None:
        import kubernetes

        k8s: Any = kubernetes
        client, config = k8s.client, k8s.config
        if kubeconfig:
            api = config.new_client_from_config(config_file=kubeconfig)
        else:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.ApiClient()
        self.api: Any = api
        self.namespace = namespace
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self._kwok_ok: bool | None = None

    def rs_revision(self, name: str) -> int:
        """The Deployment revision of a ReplicaSet (read fresh: a rollback renumbers it)."""
        from kubernetes.client.exceptions import ApiException

        try:
            rs = self.apps.read_namespaced_replica_set(name, self.namespace, _request_timeout=10)
            ann = rs.metadata.annotations or {}
            return int(ann.get("deployment.kubernetes.io/revision", "0"))
        except (ApiException, ValueError, OSError):
            return 0

    def resolve_env(self, pod: Any, container_name: str) -> dict[str, str]:
        """The container's environment as the kubelet would compute it (no $(VAR) expansion)."""
        from kubernetes.client.exceptions import ApiException

        container = next(c for c in pod.spec.containers if c.name == container_name)
        out: dict[str, str] = {}
        secrets: dict[str, dict[str, str] | None] = {}
        cms: dict[str, dict[str, str] | None] = {}

        def secret(name: str) -> dict[str, str] | None:
            if name not in secrets:
                try:
                    s = self.core.read_namespaced_secret(name, self.namespace, _request_timeout=10)
                    data = {
                        k: base64.b64decode(v).decode("utf-8", "replace")
                        for k, v in (s.data or {}).items()
                    }
                    secrets[name] = data
                except ApiException as e:
                    if e.status != 404:
                        raise ConfigError(f"secret {name}: {e.reason}") from e
                    secrets[name] = None
            return secrets[name]

        def configmap(name: str) -> dict[str, str] | None:
            if name not in cms:
                try:
                    cm = self.core.read_namespaced_config_map(
                        name, self.namespace, _request_timeout=10
                    )
                    cms[name] = dict(cm.data or {})
                except ApiException as e:
                    if e.status != 404:
                        raise ConfigError(f"configmap {name}: {e.reason}") from e
                    cms[name] = None
            return cms[name]

        for src in container.env_from or []:
            prefix = src.prefix or ""
            if src.secret_ref is not None:
                data = secret(src.secret_ref.name)
                if data is None and not src.secret_ref.optional:
                    raise ConfigError(f'secret "{src.secret_ref.name}" not found')
            elif src.config_map_ref is not None:
                data = configmap(src.config_map_ref.name)
                if data is None and not src.config_map_ref.optional:
                    raise ConfigError(f'configmap "{src.config_map_ref.name}" not found')
            else:
                data = None
            for k, v in (data or {}).items():
                out[prefix + k] = v
        for var in container.env or []:
            if var.value_from is None:
                out[var.name] = var.value or ""
                continue
            vf = var.value_from
            if vf.secret_key_ref is not None:
                ref = vf.secret_key_ref
                data = secret(ref.name)
                if data is None or ref.key not in data:
                    if ref.optional:
                        continue
                    raise ConfigError(f'key "{ref.key}" of secret "{ref.name}" not found')
                out[var.name] = data[ref.key]
            elif vf.config_map_key_ref is not None:
                ref = vf.config_map_key_ref
                data = configmap(ref.name)
                if data is None or ref.key not in data:
                    if ref.optional:
                        continue
                    raise ConfigError(f'key "{ref.key}" of configmap "{ref.name}" not found')
                out[var.name] = data[ref.key]
            elif vf.field_ref is not None:
                out[var.name] = _field_ref(pod, vf.field_ref.field_path)
        return out

    def ensure_kwok(self, plural: str, pod: PodView, spec: dict[str, Any]) -> None:
        """Creates or replaces the per-pod kwok Logs/Exec object named like the pod."""
        from kubernetes.client.exceptions import ApiException

        if self._kwok_ok is False:
            return
        body: dict[str, Any] = {
            "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}",
            "kind": "Logs" if plural == "logs" else "Exec",
            "metadata": {
                "name": pod.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid}
                ],
            },
            "spec": spec,
        }
        args = (KWOK_GROUP, KWOK_VERSION, self.namespace, plural)
        try:
            try:
                self.custom.create_namespaced_custom_object(*args, body, _request_timeout=10)
            except ApiException as e:
                if e.status != 409:
                    raise
                cur = self.custom.get_namespaced_custom_object(*args, pod.name, _request_timeout=10)
                body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
                self.custom.replace_namespaced_custom_object(
                    *args, pod.name, body, _request_timeout=10
                )
            self._kwok_ok = True
        except ApiException as e:
            if e.status == 404 and self._kwok_ok is None:
                log.warning("kwok %s CRD not found: kubectl logs/exec will not be mapped", plural)
                self._kwok_ok = False
                return
            raise


def _field_ref(pod: Any, path: str) -> str:
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": pod.status.pod_ip if pod.status else None,
        "status.hostIP": pod.status.host_ip if pod.status else None,
    }
    if path in simple:
        return str(simple[path] or "")
    for prefix, mapping in (
        ("metadata.labels", meta.labels),
        ("metadata.annotations", meta.annotations),
    ):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((mapping or {}).get(path[len(prefix) + 2 : -2], ""))
    return ""


# --- local processes ---------------------------------------------------------------------------


@dataclass
class Local:
    """A local process standing for one pod."""

    app: str
    pod: PodView
    version: str
    port: int
    argv: list[str]
    env: dict[str, str]
    log_file: Path
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    sink: CriLog | None = None
    pumps: list[threading.Thread] = field(default_factory=list)
    started_at: float = 0.0
    restarts: int = 0
    exit_code: int | None = None
    next_restart: float | None = None
    cleanup: Callable[[], None] | None = None

    def start(self) -> None:
        self.sink = CriLog(self.log_file)
        self.proc = _proc.spawn(
            self.argv, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.pumps = [
            self.sink.pump("stdout", self.proc.stdout),
            self.sink.pump("stderr", self.proc.stderr),
        ]
        self.started_at = time.time()
        self.exit_code = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            self.exit_code = _proc.stop(self.proc)
            self.proc = None
        for t in self.pumps:
            t.join(2)
        self.pumps = []
        if self.sink is not None:
            self.sink.close()
            self.sink = None

    def finish(self) -> None:
        """Stops the process and removes what it owned on disk."""
        self.stop()
        if self.cleanup is not None:
            self.cleanup()
            self.cleanup = None


@dataclass
class External:
    """A pod standing for a local server (postgres, redis): logs mirrored, nothing spawned."""

    pod: PodView
    mirror: FileMirror | None


# --- the bridge --------------------------------------------------------------------------------


@dataclass
class Config:
    namespace: str
    kubeconfig: str | None
    state_dir: Path
    logs_dir: Path
    services_env: Path
    dashboard_port: int = 9000
    prometheus_port: int = 9090
    scrape_interval: str = "5s"
    debounce: float = 0.3
    max_delay: float = 3.0
    restart_policy: str = "never"
    python: str = sys.executable
    prometheus_enabled: bool = True
    postgres_log: Path | None = None
    redis_log: Path | None = None


class Bridge:
    PROCESS_APPS = ("dashboard", "prometheus")
    EXTERNAL_APPS = ("postgres", "redis")

    def __init__(self, cfg: Config, cluster: Cluster | None = None) -> None:
        self.cfg = cfg
        self.cluster = cluster or Cluster(cfg.kubeconfig, cfg.namespace)
        self.ns_dir = cfg.state_dir / cfg.namespace
        self.ns_dir.mkdir(parents=True, exist_ok=True)
        self.pod_logs_dir = cfg.logs_dir / cfg.namespace
        self.pods: dict[str, Any] = {}
        self.synced = False
        self.locals: dict[str, Local] = {}
        self.externals: dict[str, External] = {}
        self.retry_at: dict[str, float] = {}
        self._pods_lock = threading.Lock()
        self._kick: queue.Queue[None] = queue.Queue()
        self._stop = threading.Event()
        self._lock_fd: int | None = None
        self._watch: Any = None

    # -- lifecycle

    def acquire_lock(self) -> None:
        fd = os.open(self.ns_dir / "bridge.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SystemExit(
                f"another dataplane bridge already serves namespace {self.cfg.namespace} "
                f"(lock {self.ns_dir / 'bridge.lock'})"
            ) from None
        self._lock_fd = fd
        # Holding the lock, anything a previous (killed) bridge left in its directory is stale.
        for stale in self.ns_dir.glob("prom-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def stop(self) -> None:
        self._stop.set()
        self._kick.put(None)

    def run(self) -> None:
        self.acquire_lock()
        watcher = threading.Thread(target=self._watch_loop, name="pod-watch", daemon=True)
        watcher.start()
        try:
            self._loop()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self._stop.set()
        if self._watch is not None:
            with contextlib.suppress(Exception):
                self._watch.stop()
        for app in list(self.locals):
            self._stop_local(app, "bridge exiting")
        for uid in list(self.externals):
            self._drop_external(uid)
        with contextlib.suppress(OSError):
            (self.ns_dir / "bridge.json").unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- watching

    def _watch_loop(self) -> None:
        import kubernetes.watch

        watch: Any = kubernetes.watch
        from kubernetes.client.exceptions import ApiException

        rv: str | None = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if rv is None:
                    lst: Any = self.cluster.core.list_namespaced_pod(
                        self.cfg.namespace, _request_timeout=30
                    )
                    with self._pods_lock:
                        self.pods = {p.metadata.uid: p for p in lst.items}
                        self.synced = True
                    rv = lst.metadata.resource_version
                    self._kick.put(None)
                w = watch.Watch()
                self._watch = w
                for ev in w.stream(
                    self.cluster.core.list_namespaced_pod,
                    self.cfg.namespace,
                    resource_version=rv,
                    timeout_seconds=60,
                    allow_watch_bookmarks=True,
                    _request_timeout=90,
                ):
                    if self._stop.is_set():
                        w.stop()
                        break
                    kind = ev["type"]
                    raw = ev["raw_object"]
                    rv = (raw.get("metadata") or {}).get("resourceVersion") or rv
                    if kind == "BOOKMARK":
                        continue
                    pod = ev["object"]
                    with self._pods_lock:
                        if kind == "DELETED":
                            self.pods.pop(pod.metadata.uid, None)
                        else:
                            self.pods[pod.metadata.uid] = pod
                    self._kick.put(None)
                backoff = 0.5
            except ApiException as e:
                if e.status == 410:
                    log.info("watch expired (410); relisting")
                    rv = None
                    continue
                log.warning(
                    "pod watch failed: %s %s; retrying in %.1fs", e.status, e.reason, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10)
            except Exception as e:  # connection resets, timeouts, apiserver restarts
                if self._stop.is_set():
                    break
                log.warning("pod watch interrupted: %s; retrying in %.1fs", e, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10)
                rv = None

    # -- reconciling

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._kick.get(timeout=1.0)
                # Debounce: act once the pod set has been quiet for `debounce` seconds.
                first = time.monotonic()
                while not self._stop.is_set() and time.monotonic() - first < self.cfg.max_delay:
                    try:
                        self._kick.get(timeout=self.cfg.debounce)
                    except queue.Empty:
                        break
            except queue.Empty:
                pass
            if self._stop.is_set():
                break
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
                self._stop.wait(1)
                self._kick.put(None)

    def snapshot(self) -> list[PodView]:
        with self._pods_lock:
            pods = list(self.pods.values())
        views = [pod_view(p) for p in pods]
        return [v for v in views if v is not None]

    def _revision(self, pod: PodView) -> int:
        return self.cluster.rs_revision(pod.owner_rs) if pod.owner_rs else 0

    def reconcile(self) -> None:
        if not self.synced:
            return
        views = self.snapshot()
        now = time.monotonic()
        for app in self.PROCESS_APPS:
            if app == "prometheus" and not self.cfg.prometheus_enabled:
                continue
            desired = newest_running(views, app, self._revision)
            cur = self.locals.get(app)
            if desired is None:
                if cur is not None:
                    self._stop_local(app, "no Running pod")
                continue
            if cur is None or cur.pod.uid != desired.uid:
                if self.retry_at.get(app, 0) > now and cur is None:
                    continue
                if cur is not None:
                    self._stop_local(app, f"pod {cur.pod.name} replaced by {desired.name}")
                self._start_local(app, desired)
            else:
                self._check_local(cur, now)
        self._sync_externals(views)
        self._gc_logs(views)
        self._write_bridge_state()

    def _start_local(self, app: str, pod: PodView) -> None:
        try:
            local = self._dashboard(pod) if app == "dashboard" else self._prometheus(pod)
        except ConfigError as e:
            log.error("cannot start %s for pod %s: %s (retrying)", app, pod.name, e)
            self.retry_at[app] = time.monotonic() + 2
            self._kick.put(None)
            return
        except FileNotFoundError as e:
            log.error("cannot start %s for pod %s: %s", app, pod.name, e)
            self.retry_at[app] = time.monotonic() + 60
            return
        self.retry_at.pop(app, None)
        self._map_logs(pod, local.log_file)
        self._map_exec(pod, {"PORT": str(local.port), "APP_URL": f"http://127.0.0.1:{local.port}"})
        local.start()
        self.locals[app] = local
        log.info(
            "started %s %s for pod %s (pid %s, port %d, log %s)",
            app,
            local.version,
            pod.name,
            local.proc.pid if local.proc else None,
            local.port,
            local.log_file,
        )
        self._write_state(local, "running")

    def _check_local(self, cur: Local, now: float) -> None:
        if cur.alive():
            return
        if cur.proc is not None:
            code = cur.proc.returncode
            cur.stop()
            cur.proc, cur.exit_code = None, code
            log.error("%s of pod %s exited with code %s", cur.app, cur.pod.name, code)
            if self.cfg.restart_policy == "always":
                delay = min(2**cur.restarts, 30)
                cur.next_restart = now + delay
                log.info("restarting %s in %ss (restart policy always)", cur.app, delay)
            self._write_state(cur, "exited")
            return
        if cur.next_restart is not None and now >= cur.next_restart:
            cur.next_restart = None
            cur.restarts += 1
            prev = cur.log_file.with_suffix(".previous.log")
            with contextlib.suppress(OSError):
                os.replace(cur.log_file, prev)
            cur.start()
            log.info(
                "restarted %s for pod %s (restart %d, pid %s)",
                cur.app,
                cur.pod.name,
                cur.restarts,
                cur.proc.pid if cur.proc else None,
            )
            self._write_state(cur, "running")

    def _stop_local(self, app: str, reason: str) -> None:
        cur = self.locals.pop(app, None)
        if cur is None:
            return
        log.info("stopping %s of pod %s: %s", app, cur.pod.name, reason)
        cur.finish()
        self._write_state(cur, "stopped")

    # -- per-app process recipes

    def services(self) -> dict[str, str]:
        try:
            return parse_env_file(self.cfg.services_env.read_text())
        except OSError:
            log.warning(
                "no %s: run hack/services-up.sh; dependencies keep the pod's settings",
                self.cfg.services_env,
            )
            return {}

    def _log_file(self, pod: PodView) -> Path:
        return self.pod_logs_dir / f"{pod.name}.log"

    def _dashboard(self, pod: PodView) -> Local:
        version = image_tag(pod.image)
        pod_env = self.cluster.resolve_env(pod.raw, pod.container) if pod.container else {}
        svc = self.services()
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        env.update({k: svc[k] for k in SERVICE_KEYS if k in svc})
        env.update(pod_env)
        env.update({k: svc[k] for k in ENDPOINT_KEYS if k in svc})
        env.update(
            {
                "HOST": "127.0.0.1",
                "PORT": str(self.cfg.dashboard_port),
                "VERSION": version,
                "DASHBOARD_PARENT_PID": str(os.getpid()),
                "POD_NAME": pod.name,
                "POD_NAMESPACE": self.cfg.namespace,
                "PGAPPNAME": f"dashboard-{version} {self.cfg.namespace}/{pod.name}"[:63],
                "PYTHONUNBUFFERED": "1",
            }
        )
        if env.get("API_KEY"):
            _proc.write_atomic(self.ns_dir / "dashboard-api-key", env["API_KEY"], 0o600)
        return Local(
            app="dashboard",
            pod=pod,
            version=version,
            port=self.cfg.dashboard_port,
            argv=[self.cfg.python, "-m", "incident_demo.dashboard"],
            env=env,
            log_file=self._log_file(pod),
        )

    def _prometheus(self, pod: PodView) -> Local:
        binary = prom.find_binary()
        if binary is None:
            raise FileNotFoundError("no prometheus binary (apt-get install -y prometheus)")
        key_file = self.ns_dir / "dashboard-api-key"
        cfg = prom.render_scrape_config(
            f"127.0.0.1:{self.cfg.dashboard_port}",
            scrape_interval=self.cfg.scrape_interval,
            credentials_file=key_file,
            labels={"namespace": self.cfg.namespace},
        )
        work = Path(tempfile.mkdtemp(prefix=f"prom-{self.cfg.namespace}-", dir=self.ns_dir))
        server = prom.PrometheusServer(
            cfg, port=self.cfg.prometheus_port, workdir=work, binary=binary
        )
        _proc.write_atomic(server.config_path, cfg, 0o600)
        argv = [a if a != "--log.level=warn" else "--log.level=info" for a in server.argv()]
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        return Local(
            app="prometheus",
            pod=pod,
            version=image_tag(pod.image),
            port=self.cfg.prometheus_port,
            argv=argv,
            env=env,
            log_file=self._log_file(pod),
            cwd=work,
            cleanup=lambda: shutil.rmtree(work, ignore_errors=True),
        )

    # -- kwok mappings

    def _map_logs(self, pod: PodView, log_file: Path) -> None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.touch()
        spec = {
            "logs": [
                {
                    "logsFile": str(log_file),
                    "previousLogsFile": str(log_file.with_suffix(".previous.log")),
                    "follow": True,
                }
            ]
        }
        try:
            self.cluster.ensure_kwok("logs", pod, spec)
        except Exception as e:
            log.warning("could not map kubectl logs for pod %s: %s", pod.name, e)

    def _map_exec(self, pod: PodView, envs: Mapping[str, str]) -> None:
        root = state_root()
        spec = {
            "execs": [
                {
                    "local": {
                        "workDir": str(root / "exec"),
                        "envs": [{"name": STATE_ENV, "value": str(root)}]
                        + [{"name": k, "value": v} for k, v in envs.items()],
                    }
                }
            ]
        }
        try:
            self.cluster.ensure_kwok("execs", pod, spec)
        except Exception as e:
            log.warning("could not map kubectl exec for pod %s: %s", pod.name, e)

    def _sync_externals(self, views: list[PodView]) -> None:
        wanted = {v.uid: v for v in views if v.app in self.EXTERNAL_APPS and v.serving}
        for uid in list(self.externals):
            if uid not in wanted:
                self._drop_external(uid)
        if not wanted:
            return
        svc = self.services()
        root = state_root()
        for uid, pod in wanted.items():
            if uid in self.externals:
                continue
            envs: dict[str, str]
            if pod.app == "postgres":
                source = self.cfg.postgres_log or root / "postgres" / "postgres.log"
                envs = {k: svc[k] for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE") if k in svc}
                if "PGPASSWORD" in svc:
                    # The password goes to a 0600 file, not into the cluster.
                    pgpass = self.ns_dir / "pgpass"
                    _proc.write_atomic(
                        pgpass,
                        "*:*:*:*:"
                        + svc["PGPASSWORD"].replace("\\", "\\\\").replace(":", "\\:")
                        + "\n",
                        0o600,
                    )
                    envs["PGPASSFILE"] = str(pgpass)
            else:
                source = self.cfg.redis_log or root / "redis" / "redis.log"
                envs = {k: svc[k] for k in ("REDIS_HOST", "REDIS_PORT") if k in svc}
            log_file = self._log_file(pod)
            self._map_logs(pod, log_file)
            self._map_exec(pod, envs)
            mirror = FileMirror(source, CriLog(log_file)) if source.exists() else None
            self.externals[uid] = External(pod=pod, mirror=mirror)
            log.info(
                "mapped external %s pod %s to the local server (log %s)",
                pod.app,
                pod.name,
                source if mirror else "none",
            )

    def _drop_external(self, uid: str) -> None:
        ext = self.externals.pop(uid, None)
        if ext is not None and ext.mirror is not None:
            ext.mirror.stop()

    def _gc_logs(self, views: list[PodView]) -> None:
        """Removes log files of pods that no longer exist (the kubelet does the same)."""
        if not self.pod_logs_dir.is_dir():
            return
        names = {v.name for v in views}
        with self._pods_lock:
            names |= {p.metadata.name for p in self.pods.values()}
        in_use = {loc.log_file.name for loc in self.locals.values()}
        for f in self.pod_logs_dir.glob("*.log"):
            pod_name = f.name.removesuffix(".log").removesuffix(".previous")
            if pod_name not in names and f.name not in in_use:
                with contextlib.suppress(OSError):
                    f.unlink()

    # -- state files

    def _write_state(self, local: Local, status: str) -> None:
        alive = status == "running"
        state = {
            "app": local.app,
            "namespace": self.cfg.namespace,
            "status": status,
            "pod": local.pod.name,
            "podUID": local.pod.uid,
            "image": local.pod.image,
            "version": local.version,
            "pid": local.proc.pid if (local.proc and alive) else None,
            "host": "127.0.0.1",
            "port": local.port,
            "url": f"http://127.0.0.1:{local.port}",
            "logFile": str(local.log_file),
            "startedAt": _iso(local.started_at) if local.started_at else None,
            "restarts": local.restarts,
            "exitCode": None if alive else local.exit_code,
            "bridgePid": os.getpid(),
            "updatedAt": _iso(time.time()),
        }
        _proc.write_atomic(self.ns_dir / f"{local.app}.json", json.dumps(state, indent=2) + "\n")

    def _write_bridge_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "namespace": self.cfg.namespace,
            "ready": True,
            "dashboardPort": self.cfg.dashboard_port,
            "prometheusPort": self.cfg.prometheus_port if self.cfg.prometheus_enabled else None,
            "apps": sorted(self.locals),
            "externals": sorted(e.pod.name for e in self.externals.values()),
            "updatedAt": _iso(time.time()),
        }
        _proc.write_atomic(self.ns_dir / "bridge.json", json.dumps(state, indent=2) + "\n")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- entry point -------------------------------------------------------------------------------


def read_state(
    state_dir: str | os.PathLike[str], namespace: str, app: str
) -> dict[str, Any] | None:
    """The state file of one app (for tests and scripts), or None."""
    path = Path(state_dir) / namespace / f"{app}.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def parse_args(argv: list[str] | None = None) -> Config:
    root = state_root()
    p = argparse.ArgumentParser(
        prog="python -m incident_demo.dataplane",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig (default $KUBECONFIG, in-cluster, ~/.kube/config)",
    )
    p.add_argument("--namespace", "-n", default="demo")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=root / "dataplane",
        help="where <namespace>/<app>.json state files go (default %(default)s)",
    )
    p.add_argument(
        "--logs-dir",
        type=Path,
        default=root / "logs",
        help="pod log files, <logs-dir>/<namespace>/<pod>.log (default %(default)s)",
    )
    p.add_argument(
        "--services-env",
        type=Path,
        default=root / "services.env",
        help="hack/services-up.sh output (default %(default)s)",
    )
    p.add_argument("--dashboard-port", type=int, default=9000)
    p.add_argument("--prometheus-port", type=int, default=9090)
    p.add_argument("--no-prometheus", action="store_true", help="do not run app=prometheus")
    p.add_argument("--scrape-interval", default="5s", help="Prometheus scrape interval")
    p.add_argument(
        "--debounce",
        type=float,
        default=0.3,
        help="seconds the pod set must stay quiet before acting",
    )
    p.add_argument(
        "--restart-policy",
        choices=("never", "always"),
        default="never",
        help="what to do when a local process dies while its pod stays Running: "
        "'never' (default) leaves it down until the pod is replaced, e.g. by a "
        "rollout restart, which is the outage the runbooks repair; 'always' "
        "restarts it with back-off like the kubelet",
    )
    p.add_argument("--python", default=sys.executable, help="interpreter for the dashboard")
    p.add_argument("--postgres-log", type=Path, help="server log mirrored for app=postgres pods")
    p.add_argument("--redis-log", type=Path, help="server log mirrored for app=redis pods")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    if not a.verbose:
        logging.getLogger("kubernetes").setLevel(logging.WARNING)
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    return Config(
        namespace=a.namespace,
        kubeconfig=a.kubeconfig,
        state_dir=a.state_dir.expanduser(),
        logs_dir=a.logs_dir.expanduser(),
        services_env=a.services_env.expanduser(),
        dashboard_port=a.dashboard_port,
        prometheus_port=a.prometheus_port,
        scrape_interval=a.scrape_interval,
        debounce=a.debounce,
        restart_policy=a.restart_policy,
        python=a.python,
        prometheus_enabled=not a.no_prometheus,
        postgres_log=a.postgres_log,
        redis_log=a.redis_log,
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    bridge = Bridge(cfg)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        bridge.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    log.info(
        "dataplane bridge for namespace %s (state %s, logs %s)",
        cfg.namespace,
        cfg.state_dir / cfg.namespace,
        cfg.logs_dir / cfg.namespace,
    )
    bridge.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
