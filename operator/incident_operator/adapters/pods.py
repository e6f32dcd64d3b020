"""A workload's pods, their logs and ``kubectl exec``.

Logs and exec output are capped while they stream: pod logs are asked for with
``limitBytes`` and read in chunks up to the same cap; exec output is read frame by frame
from the websocket, and the stream is closed once the cap is reached, so a command like
``cat /dev/zero`` costs at most the cap in memory.
"""

from __future__ import annotations

import dataclasses
import json
import re
import select
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes
import websocket
from kubernetes.stream import stream

from .client import JSON, KubeClient
from .workloads import WorkloadError, created, get_workload, selector_string

#: Pod logs are read up to this many bytes (``limitBytes``): 5000 lines of ~200 bytes.
LOG_LIMIT_BYTES = 1024 * 1024
#: Exec output (stdout and stderr together) is read up to this many bytes.
EXEC_LIMIT_BYTES = 64 * 1024
STDOUT, STDERR, ERROR, CLOSE = 1, 2, 3, 255
MAX_STATUS_BYTES = 16 * 1024


@dataclasses.dataclass(frozen=True)
class PodLog:
    pod: str
    container: str | None
    text: str
    truncated: bool = False
    """The log was longer than the byte cap; ``text`` is its beginning."""


@dataclasses.dataclass(frozen=True)
class ExecResult:
    pod: str
    container: str | None
    stdout: str
    stderr: str
    exit_code: int | None
    """``None`` when the command did not run to an exit status (see ``error``)."""
    error: str | None
    timed_out: bool
    truncated: bool = False
    """The output reached the byte cap and the stream was closed before the command ended."""


# --- pure helpers -----------------------------------------------------------------------------


def pod_ready(pod: Mapping[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def check_container(pod: Mapping[str, Any], container: str | None) -> str | None:
    """``container`` when the pod has it (``None``: the pod's default container)."""
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    if container is not None and container not in names:
        raise WorkloadError(
            f"pod {pod['metadata']['name']} has no container {container} "
            f"(containers: {', '.join(names)})"
        )
    return container


def exec_exit_status(raw: str) -> tuple[int | None, str | None]:
    """The exit code from the exec error channel (a ``metav1.Status``), or why there is none.

    The kubelet reports a non-zero exit as reason ``NonZeroExitCode`` with an ``ExitCode``
    cause; kwok's exec simulation reports it as an internal error ending in "exit status N".
    """
    if not raw.strip():
        return None, "the exec stream closed without reporting an exit status"
    try:
        status = json.loads(raw)
    except ValueError:
        return None, f"unreadable exec status: {raw[:200]}"
    if status.get("status") == "Success":
        return 0, None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", "")), None
            except ValueError:
                break
    message = str(status.get("message") or status.get("reason") or "exec failed")
    found = re.search(r"exit (?:status|code) (\d+)\s*$", message)
    if found:
        return int(found.group(1)), None
    return None, message[:512]


# --- pods and logs ----------------------------------------------------------------------------


async def pods(kube: KubeClient, namespace: str, kind: str, name: str) -> list[JSON]:
    """The workload's pods (by its selector), newest first."""
    obj = await get_workload(kube, namespace, kind, name)
    selector = selector_string((obj.get("spec") or {}).get("selector"))
    listing = await kube.json(
        kube.core.list_namespaced_pod, namespace, label_selector=selector, what="Pods"
    )
    items: list[JSON] = listing.get("items") or []
    return sorted(items, key=lambda p: (created(p), p["metadata"]["name"]), reverse=True)


async def newest_ready_pod(kube: KubeClient, namespace: str, kind: str, name: str) -> JSON:
    found = await pods(kube, namespace, kind, name)
    for pod in found:
        if pod_ready(pod):
            return pod
    raise WorkloadError(f"{kind} {name} has no Ready pod ({len(found)} pods found)")


async def log_text(
    kube: KubeClient,
    namespace: str,
    pod: str,
    tail_lines: int,
    container: str | None = None,
    limit: int = LOG_LIMIT_BYTES,
) -> tuple[str, bool]:
    """(text, truncated): the last ``tail_lines`` lines of the pod's log, at most ``limit``
    bytes of them (the server stops at ``limitBytes``; the client reads no further)."""
    kwargs: JSON = {"tail_lines": int(tail_lines), "limit_bytes": int(limit)}
    if container:
        kwargs["container"] = container
    data, truncated = await kube.read_limited(
        kube.core.read_namespaced_pod_log,
        pod,
        namespace,
        limit=limit,
        what=f"logs of pod {pod}",
        **kwargs,
    )
    # limitBytes cuts silently: a log exactly ``limit`` bytes long counts as cut too.
    return data.decode("utf-8", "replace"), truncated or len(data) >= limit


async def pod_logs(
    kube: KubeClient,
    namespace: str,
    kind: str,
    name: str,
    tail_lines: int,
    container: str | None = None,
) -> PodLog:
    """The last ``tail_lines`` log lines of the newest Ready pod (``kubectl logs --tail``)."""
    pod = await newest_ready_pod(kube, namespace, kind, name)
    pod_name = str(pod["metadata"]["name"])
    container = check_container(pod, container)
    text, truncated = await log_text(kube, namespace, pod_name, tail_lines, container)
    return PodLog(pod_name, container, text, truncated)


# --- exec -------------------------------------------------------------------------------------


async def exec_in_pod(
    kube: KubeClient,
    namespace: str,
    kind: str,
    name: str,
    command: Sequence[str],
    container: str | None = None,
    timeout: float = 60.0,
    limit: int = EXEC_LIMIT_BYTES,
) -> ExecResult:
    """``kubectl exec`` in the newest Ready pod: stdout, stderr and the exit status, within
    ``timeout`` seconds and ``limit`` bytes of output."""
    pod = await newest_ready_pod(kube, namespace, kind, name)
    pod_name = str(pod["metadata"]["name"])
    container = check_container(pod, container)
    run = _Exec(kube, namespace, pod_name, list(command), container)
    return await kube.run(
        run.result,
        timeout,
        limit,
        what=f"exec in pod {pod_name}",
        named=kube.core.connect_get_namespaced_pod_exec,
    )


@dataclasses.dataclass
class _Exec:
    """One exec, run in a thread of the client's pool."""

    kube: KubeClient
    namespace: str
    pod: str
    command: list[str]
    container: str | None
    output: dict[int, bytearray] = dataclasses.field(
        default_factory=lambda: {STDOUT: bytearray(), STDERR: bytearray(), ERROR: bytearray()}
    )

    def result(self, timeout: float, limit: int) -> ExecResult:
        """``kubernetes.stream`` swaps the transport of the ApiClient it is given while the
        call runs, so every exec uses a private ApiClient built from the shared one's
        configuration."""
        kwargs: JSON = {
            "command": self.command,
            "stdin": False,
            "stdout": True,
            "stderr": True,
            "tty": False,
            "_preload_content": False,
            "_request_timeout": self.kube.timeout,
        }
        if self.container:
            kwargs["container"] = self.container
        deadline = time.monotonic() + max(0.1, timeout)
        with kubernetes.client.ApiClient(self.kube.api_client.configuration) as private:
            core = kubernetes.client.CoreV1Api(private)
            client = stream(
                core.connect_get_namespaced_pod_exec, self.pod, self.namespace, **kwargs
            )
            try:
                ended = self._read(client.sock, deadline, limit)
            finally:
                client.close()
        return self._outcome(ended, timeout, limit)

    def _read(self, sock: websocket.WebSocket, deadline: float, limit: int) -> str:
        """Collect frames until the stream ends; returns how it ended: ``closed``,
        ``timeout`` or ``limit``."""
        sock.settimeout(self.kube.timeout[1])  # a frame that started must finish in time
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            if not _readable(sock, min(remaining, 1.0)):
                continue
            try:
                opcode, frame = sock.recv_data_frame(True)
            except websocket.WebSocketConnectionClosedException:
                return "closed"
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return "closed"
            data = bytes(frame.data or b"")
            if opcode not in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT) or not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == ERROR:
                self.output[ERROR] += payload[: MAX_STATUS_BYTES - len(self.output[ERROR])]
            elif channel in (STDOUT, STDERR):
                kept = payload[: limit - size]
                self.output[channel] += kept
                size += len(kept)
                if size >= limit:
                    return "limit"

    def _outcome(self, ended: str, timeout: float, limit: int) -> ExecResult:
        stdout = self.output[STDOUT].decode("utf-8", "replace")
        stderr = self.output[STDERR].decode("utf-8", "replace")
        result = ExecResult(self.pod, self.container, stdout, stderr, None, None, False)
        if ended == "timeout":
            running = f"command still running after {timeout:g}s"
            return dataclasses.replace(result, error=running, timed_out=True)
        if ended == "limit":
            capped = f"its output reached the {limit // 1024} KiB limit, so the operator stopped it"
            return dataclasses.replace(result, error=capped, truncated=True)
        exit_code, error = exec_exit_status(self.output[ERROR].decode("utf-8", "replace"))
        return dataclasses.replace(result, exit_code=exit_code, error=error)


def _readable(sock: websocket.WebSocket, timeout: float) -> bool:
    """A frame (or part of one) can be read without waiting longer than ``timeout``."""
    raw = sock.sock
    if raw is None:
        return True  # closed: the next read says so
    if isinstance(raw, ssl.SSLSocket) and raw.pending():
        return True  # decrypted bytes wait in the TLS buffer, invisible to select
    readable, _, _ = select.select([raw], [], [], timeout)
    return bool(readable)
