"""The one Kubernetes client layer without a server: error mapping, request timeouts on
every call, its own thread pool, and reads capped while they stream."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
import urllib3
import websocket
from kubernetes.client.exceptions import ApiException, ApiValueError

from incident_operator.adapters import pods, rollouts
from incident_operator.adapters.client import (
    MAX_MESSAGE,
    Conflict,
    Forbidden,
    Invalid,
    KubeClient,
    KubeError,
    NotFound,
    Unavailable,
    map_error,
    operation,
    parse_time,
)
from incident_operator.adapters.guard import TargetGuard
from incident_operator.adapters.kube import KubeAdapter

# --- fakes ------------------------------------------------------------------------------------


class FakeResponse:
    """What a generated method returns with ``_preload_content=False`` (urllib3)."""

    def __init__(self, body: bytes = b"{}", chunks: Iterator[bytes] | None = None) -> None:
        self.data = body
        self.chunks = chunks
        self.read_chunks = 0
        self.closed = False
        self.released = False

    def stream(self, amt: int) -> Iterator[bytes]:
        for chunk in self.chunks if self.chunks is not None else iter([self.data]):
            self.read_chunks += 1
            yield chunk

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        self.released = True


def api_exception(status: int, message: str | None = None, reason: str = "Reason") -> ApiException:
    exc = ApiException(status=status, reason=reason)
    if message is not None:
        exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


@dataclasses.dataclass
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    thread: str


class FakeApi:
    """Any generated method: records the call and answers with ``answer(name, args)``."""

    def __init__(self, answer: Callable[[str, tuple[Any, ...]], Any]) -> None:
        self.answer = answer
        self.calls: list[Call] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def method(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(Call(name, args, kwargs, threading.current_thread().name))
            return self.answer(name, args)

        method.__name__ = name
        return method


def fake_client(answer: Callable[[str, tuple[Any, ...]], Any], **options: Any) -> KubeClient:
    kube = KubeClient(kubernetes.client.ApiClient(kubernetes.client.Configuration()), **options)
    fake = FakeApi(answer)
    kube.core = kube.apps = kube.batch = kube.custom = kube.coordination = kube.events = fake
    return kube


def calls(kube: KubeClient) -> list[Call]:
    api = kube.core
    assert isinstance(api, FakeApi)
    return api.calls


def json_answer(bodies: dict[str, Any]) -> Callable[[str, tuple[Any, ...]], Any]:
    def answer(name: str, args: tuple[Any, ...]) -> Any:
        body = bodies[name]
        if isinstance(body, Exception):
            raise body
        return FakeResponse(json.dumps(body).encode())

    return answer


# --- error mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls", "transient"),
    [
        (404, NotFound, False),
        (409, Conflict, False),
        (403, Forbidden, False),
        (422, Invalid, False),
        (500, Unavailable, True),
        (503, Unavailable, True),
        (429, Unavailable, True),
        (0, Unavailable, True),
        (400, KubeError, False),
        (401, KubeError, False),
    ],
)
def test_api_statuses_map_to_the_taxonomy(
    status: int, cls: type[KubeError], transient: bool
) -> None:
    error = map_error(api_exception(status, "the server says why"), "Deployment ns/web")
    assert type(error) is cls
    assert error.status == status and error.transient is transient
    assert str(error).startswith("Deployment ns/web")


def test_messages_name_the_object_and_the_servers_reason() -> None:
    assert str(map_error(api_exception(404, "x"), "Deployment ns/web")) == (
        "Deployment ns/web not found"
    )
    invalid = map_error(api_exception(422, "spec.replicas: Invalid value: -1"), "Deployment ns/w")
    assert str(invalid) == "Deployment ns/w: invalid: spec.replicas: Invalid value: -1"
    no_body = map_error(api_exception(500, reason="Internal Server Error"), "Pods")
    assert str(no_body) == "Pods: Kubernetes API unavailable: Internal Server Error"


def test_forbidden_says_which_verb_and_resource_was_denied() -> None:
    denied = 'deployments.apps "web" is forbidden: User "system:serviceaccount:x:y" cannot patch'
    error = map_error(api_exception(403, denied), "Deployment ns/web", "patch", "deployments/scale")
    assert isinstance(error, Forbidden)
    assert (error.verb, error.resource, error.reason) == ("patch", "deployments/scale", "Forbidden")
    assert str(error) == f"Deployment ns/web: Forbidden: may not patch deployments/scale: {denied}"


def test_a_refused_exec_handshake_keeps_its_real_status() -> None:
    """The websocket transport reports a failed handshake as status 0 with the real status,
    headers and body in the reason text."""
    body = json.dumps({"kind": "Status", "message": 'pods "web-1" is forbidden: cannot exec'})
    reason = f"Handshake status 403 Forbidden -+-+- {{'audit-id': 'x'}} -+-+- b'{body}'"
    error = map_error(ApiException(status=0, reason=reason), "exec in pod web-1", "create", "p")
    assert isinstance(error, Forbidden) and error.status == 403
    assert str(error) == (
        'exec in pod web-1: Forbidden: may not create p: pods "web-1" is forbidden: cannot exec'
    )


@pytest.mark.parametrize(
    "exc",
    [
        urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out. (read timeout=30)"),
        urllib3.exceptions.ConnectTimeoutError("connect timed out"),
        urllib3.exceptions.MaxRetryError(None, "/api", ConnectionRefusedError("refused")),
        urllib3.exceptions.ProtocolError("Connection aborted."),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
        websocket.WebSocketConnectionClosedException("closed"),
    ],
)
def test_transport_failures_and_timeouts_are_transient(exc: Exception) -> None:
    error = map_error(exc, "Pods")
    assert isinstance(error, Unavailable) and error.transient
    assert str(error).startswith(f"Pods: Kubernetes API unreachable: {type(exc).__name__}")


def test_client_side_refusals_and_bugs() -> None:
    refused = map_error(ApiValueError("Missing the required parameter `name`"), "Pods")
    assert type(refused) is KubeError and refused.reason == "ClientError"
    assert map_error(RuntimeError("a bug"), "Pods") is None  # surfaces as itself
    assert map_error(KeyError("x"), "Pods") is None


def test_messages_are_bounded_one_line_and_never_carry_the_request() -> None:
    error = map_error(api_exception(422, "bad\nvalue " + "x" * 5000), "Secret ns/s")
    assert error is not None
    assert len(str(error)) <= MAX_MESSAGE and "\n" not in str(error)


async def test_request_bodies_stay_out_of_messages() -> None:
    def answer(name: str, args: tuple[Any, ...]) -> Any:
        raise api_exception(422, "the Job is invalid")

    kube = fake_client(answer)
    body = {"spec": {"env": [{"name": "PGPASSWORD", "value": "hunter2"}]}}
    with pytest.raises(Invalid) as caught:
        await kube.json(kube.batch.create_namespaced_job, "ns", body, what="Job ns/j")
    assert "hunter2" not in str(caught.value)
    assert str(caught.value) == "Job ns/j: invalid: the Job is invalid"


def test_operation_names_verb_and_resource() -> None:
    def named(name: str) -> Callable[..., Any]:
        def method() -> None: ...

        method.__name__ = name
        return method

    assert operation(named("read_namespaced_deployment")) == ("get", "deployments")
    assert operation(named("patch_namespaced_stateful_set_scale")) == (
        "patch",
        "statefulsets/scale",
    )
    assert operation(named("list_namespaced_replica_set")) == ("list", "replicasets")
    assert operation(named("read_namespaced_pod_log")) == ("get", "pods/log")
    assert operation(named("connect_get_namespaced_pod_exec")) == ("create", "pods/exec")
    assert operation(named("replace_namespaced_custom_object_status")) == (
        "update",
        "customobjects/status",
    )
    assert operation(named("delete_namespaced_job")) == ("delete", "jobs")
    assert operation(named("create_namespaced_lease")) == ("create", "leases")


def test_parse_time() -> None:
    utc = dt.UTC
    assert parse_time("2026-01-01T12:00:00Z") == dt.datetime(2026, 1, 1, 12, tzinfo=utc)
    assert parse_time("2026-01-01T12:00:00.123456Z") == dt.datetime(
        2026, 1, 1, 12, 0, 0, 123456, tzinfo=utc
    )
    assert parse_time("2026-01-01T14:00:00+02:00") == dt.datetime(2026, 1, 1, 12, tzinfo=utc)
    assert parse_time("2026-01-01T12:00:00") == dt.datetime(2026, 1, 1, 12, tzinfo=utc)
    for value in (None, "", "yesterday", 17):
        assert parse_time(value) is None


# --- request timeouts and the pool ------------------------------------------------------------


async def test_every_call_carries_the_request_timeout_and_runs_in_the_clients_pool() -> None:
    kube = fake_client(json_answer({"read_namespaced_pod": {"metadata": {"name": "p"}}}))
    await kube.call(kube.core.read_namespaced_pod, "p", "ns")
    await kube.json(kube.core.read_namespaced_pod, "p", "ns")
    await kube.read_limited(kube.core.read_namespaced_pod, "p", "ns", limit=10)
    await kube.json(kube.core.read_namespaced_pod, "p", "ns", timeout=(1.0, 300.0))
    recorded = calls(kube)
    assert [c.kwargs["_request_timeout"] for c in recorded] == [(5.0, 30.0)] * 3 + [(1.0, 300.0)]
    assert all(c.thread.startswith("kube-api") for c in recorded)
    assert all(c.kwargs.get("_preload_content") is False for c in recorded[1:])


async def test_timeouts_and_pool_size_are_configurable() -> None:
    kube = fake_client(json_answer({"read_namespaced_pod": {}}), pool_size=2, read_timeout=90)
    await kube.json(kube.core.read_namespaced_pod, "p", "ns")
    assert calls(kube)[0].kwargs["_request_timeout"] == (5.0, 90)
    assert kube.pool_size == 2
    with pytest.raises(ValueError):
        fake_client(json_answer({}), pool_size=0)


async def test_the_pool_bounds_concurrent_calls() -> None:
    """At most ``pool_size`` calls block threads at once; the rest queue."""
    running, peak = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def answer(name: str, args: tuple[Any, ...]) -> Any:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1
        return FakeResponse()

    kube = fake_client(answer, pool_size=3)
    tasks = [
        asyncio.create_task(kube.json(kube.core.read_namespaced_pod, "p", "ns")) for _ in range(6)
    ]
    deadline = time.monotonic() + 10
    while running < 3 and time.monotonic() < deadline:  # poll until the pool is busy
        await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 3
    assert len({c.thread for c in calls(kube)}) == 3


async def test_adapters_reach_the_api_only_through_the_client() -> None:
    """The operator's adapters (Incidents, Leases, workloads) all pass the timeout."""
    statefulset = {
        "metadata": {"name": "db", "generation": 1, "uid": "u"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "db"}}},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "currentRevision": "db-1",
            "updateRevision": "db-1",
        },
    }
    secret = {"data": {"token": base64.b64encode(b"s3cret").decode()}}
    kube = fake_client(
        json_answer(
            {
                "get_namespaced_custom_object": {"metadata": {"name": "i"}},
                "list_namespaced_custom_object": {"items": []},
                "read_namespaced_secret": secret,
                "read_namespaced_lease": api_exception(404),
                "read_namespaced_stateful_set": statefulset,
                "read_namespaced_controller_revision": {"revision": 4},
                "list_namespaced_pod": {"items": []},
                "create_namespaced_event": {},
            }
        )
    )
    adapter = KubeAdapter(kube)
    assert await adapter.get("incidents", "ns", "i") == {"metadata": {"name": "i"}}
    assert await adapter.list("incidents", "ns") == []
    assert await adapter.read_secret("ns", "s", "token") == "s3cret"
    await adapter.event({"metadata": {"name": "i", "namespace": "ns"}}, "Normal", "R", "m")
    assert await TargetGuard(kube).read("ns", "deployment-web") is None
    summary = await rollouts.summary(kube, "ns", "StatefulSet", "db")
    assert summary.revision == 4 and summary.rollout_done
    assert await pods.pods(kube, "ns", "StatefulSet", "db") == []
    recorded = calls(kube)
    assert len(recorded) == 9
    assert all(c.kwargs["_request_timeout"] == (5.0, 30.0) for c in recorded)


async def test_adapter_errors_name_the_object() -> None:
    kube = fake_client(json_answer({"get_namespaced_custom_object": api_exception(404)}))
    with pytest.raises(NotFound, match=r"^incidents ns/gone not found$"):
        await KubeAdapter(kube).get("incidents", "ns", "gone")
    kube = fake_client(json_answer({"read_namespaced_deployment": api_exception(403, "no")}))
    with pytest.raises(Forbidden, match=r"^Deployment ns/web: Forbidden: may not get deployments"):
        await rollouts.summary(kube, "ns", "Deployment", "web")


async def test_a_failed_event_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    kube = fake_client(json_answer({"create_namespaced_event": api_exception(503, "busy")}))
    await KubeAdapter(kube).event(
        {"metadata": {"name": "i", "namespace": "ns"}}, "Normal", "R", "m"
    )
    assert "could not post event R on i" in caplog.text


# --- reads capped while streaming -------------------------------------------------------------


async def test_a_streamed_read_stops_at_the_cap_of_an_endless_answer() -> None:
    """Like ``cat /dev/zero``: the answer never ends; the client reads a cap's worth."""
    endless = FakeResponse(chunks=itertools.repeat(b"\0" * 1000))
    kube = fake_client(lambda name, args: endless)
    data, truncated = await kube.read_limited(
        kube.core.read_namespaced_pod_log, "p", "ns", limit=4500
    )
    assert truncated and data == b"\0" * 4500
    assert endless.read_chunks == 5 and endless.closed and endless.released


async def test_a_short_streamed_read_is_whole() -> None:
    short = FakeResponse(chunks=iter([b"line 1\n", b"line 2\n"]))
    kube = fake_client(lambda name, args: short)
    data, truncated = await kube.read_limited(
        kube.core.read_namespaced_pod_log, "p", "ns", limit=100
    )
    assert (data, truncated) == (b"line 1\nline 2\n", False)
    assert short.released and not short.closed


async def test_pod_logs_ask_the_server_for_the_cap_too() -> None:
    kube = fake_client(lambda name, args: FakeResponse(chunks=iter([b"a\nb\n"])))
    text, truncated = await pods.log_text(kube, "ns", "web-1", 50, "app", limit=1000)
    assert (text, truncated) == ("a\nb\n", False)
    kwargs = calls(kube)[0].kwargs
    assert kwargs["limit_bytes"] == 1000 and kwargs["tail_lines"] == 50
    assert kwargs["container"] == "app" and kwargs["_request_timeout"] == (5.0, 30.0)


@dataclasses.dataclass
class Frame:
    data: bytes


class EndlessExecSocket:
    """An exec websocket whose command writes to stdout forever."""

    sock = None  # no OS socket: always readable

    def __init__(self) -> None:
        self.frames = 0
        self.timeout: float | None = None

    def settimeout(self, timeout: float) -> None:
        self.timeout = timeout

    def recv_data_frame(self, control_frame: bool) -> tuple[int, Frame]:
        self.frames += 1
        return websocket.ABNF.OPCODE_BINARY, Frame(b"\x01" + b"\0" * 4096)


def test_exec_output_stops_at_the_cap_of_an_endless_command() -> None:
    kube = fake_client(json_answer({}))
    run = pods._Exec(kube, "ns", "web-1", ["cat", "/dev/zero"], None)
    sock = EndlessExecSocket()
    ended = run._read(sock, deadline=float("inf"), limit=64 * 1024)  # type: ignore[arg-type]
    assert ended == "limit" and sock.frames == 16 and sock.timeout == 30.0
    assert len(run.output[pods.STDOUT]) == 64 * 1024
    result = run._outcome(ended, 60, 64 * 1024)
    assert result.truncated and result.exit_code is None and not result.timed_out
    assert result.error == "its output reached the 64 KiB limit, so the operator stopped it"


class ScriptedExecSocket(EndlessExecSocket):
    def __init__(self, frames: list[tuple[int, bytes]]) -> None:
        super().__init__()
        self.script = frames

    def recv_data_frame(self, control_frame: bool) -> tuple[int, Frame]:
        opcode, data = self.script.pop(0)
        return opcode, Frame(data)


def test_exec_collects_stdout_stderr_and_the_exit_status() -> None:
    binary = websocket.ABNF.OPCODE_BINARY
    status = b'{"status":"Failure","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}'
    sock = ScriptedExecSocket(
        [
            (binary, b"\x01out\n"),
            (binary, b"\x02oops\n"),
            (binary, b"\x03" + status),
            (websocket.ABNF.OPCODE_CLOSE, b""),
        ]
    )
    run = pods._Exec(fake_client(json_answer({})), "ns", "web-1", ["sh"], "app")
    ended = run._read(sock, deadline=float("inf"), limit=1024)  # type: ignore[arg-type]
    result = run._outcome(ended, 60, 1024)
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "oops\n", 3)
    assert not result.truncated and not result.timed_out and result.container == "app"
