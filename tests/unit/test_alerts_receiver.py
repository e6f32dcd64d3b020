"""The receiver over HTTP on loopback, with a recording sink: authentication, limits, the
answer per alert, backpressure, TLS, and Hypothesis fuzzing (never a 500)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incident_operator.domain import alerts
from incident_operator.domain.alert_policy import ReceiverLimits
from incident_operator.webhook import (
    AlertReceiver,
    ReceiverConfig,
    ReceiverError,
    Route,
    check_route,
)

TOKEN = "s3cret-token-for-the-tests"
ANSWERS = {200, 207, 400, 401, 404, 413, 422, 503}


class Sink:
    """Records batches; a slice whose service is 'broken' fails for now, 'gone' for good."""

    def __init__(self) -> None:
        self.batches: list[alerts.Batch] = []
        self.gate: asyncio.Event | None = None

    async def apply(self, batch: alerts.Batch) -> list[alerts.SliceResult]:
        self.batches.append(batch)
        if self.gate is not None:
            await self.gate.wait()
        results = []
        for piece in batch.slices:
            ref = f"{piece.namespace}/{piece.base_name}"
            if piece.service == "broken":
                results.append(alerts.SliceResult(None, "failed", "Unavailable: try again"))
            elif piece.service == "gone":
                results.append(alerts.SliceResult(None, "rejected", "NotFound"))
            else:
                results.append(alerts.SliceResult(ref, "created"))
        return results


class Served:
    def __init__(self, receiver: AlertReceiver, sink: Sink, url: str, loop: Any) -> None:
        self.receiver, self.sink, self.url, self.loop = receiver, sink, url, loop

    def post(self, body: Any = None, *, token: str | bytes | None = TOKEN, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = (
                b"Bearer " + token if isinstance(token, bytes) else f"Bearer {token}"
            )
        if body is not None and "content" not in kw:
            kw["content"] = json.dumps(body).encode()
        return httpx.post(
            self.url + kw.pop("path", "/alertmanager"), headers=headers, timeout=10, **kw
        )

    def open_gate(self) -> None:
        gate = self.sink.gate
        if gate is not None:
            self.loop.call_soon_threadsafe(gate.set)


@contextlib.contextmanager
def serve(
    limits: ReceiverLimits | None = None, tls: tuple[str, str] | None = None
) -> Iterator[Served]:
    """The receiver on 127.0.0.1 in a thread with its own event loop."""
    sink = Sink()
    routes = {
        "default": Route("default", TOKEN, ("demo", "team-b")),
        "team-b": Route("team-b", TOKEN + "-b", ("team-b",)),
    }
    config = ReceiverConfig(routes, limits or ReceiverLimits(), *(tls or (None, None)))
    receiver = AlertReceiver(sink, config)
    loop = asyncio.new_event_loop()
    port: list[int] = []
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        port.append(loop.run_until_complete(receiver.start("127.0.0.1", 0)))
        started.set()
        loop.run_forever()
        loop.run_until_complete(receiver.stop())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    scheme = "https" if tls else "http"
    try:
        yield Served(receiver, sink, f"{scheme}://127.0.0.1:{port[0]}", loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve(ReceiverLimits(max_body_bytes=64 * 1024, max_alerts_per_request=50)) as s:
        yield s
    if EXAMPLES["count"]:
        print(f"\nfuzz: {EXAMPLES['count']} requests, none answered 500")


def alert(fp: str, service: str = "dashboard", **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "fingerprint": fp,
        "labels": {"alertname": "DashboardDown", "service": service, **labels},
    }


def payload(*items: dict[str, Any]) -> dict[str, Any]:
    return {"status": "firing", "groupKey": "g", "receiver": "am", "alerts": list(items)}


def test_a_valid_notification_is_answered_per_alert(served: Served) -> None:
    answer = served.post(payload(alert("a1"), alert("a2")))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (2, 0, 0)
    assert [a["outcome"] for a in body["alerts"]] == ["created", "created"]
    assert body["incidents"] == [body["alerts"][0]["incident"]]


@pytest.mark.parametrize(
    "token",
    [None, "wrong-token-of-some-length", "Bearer", b"\xc3\xa9t\xc3\xa9", b"\xff\xfe"],
)
def test_without_the_right_bearer_token_401(served: Served, token: Any) -> None:
    assert served.post(payload(alert("a1")), token=token).status_code == 401


def test_a_token_without_the_bearer_prefix_is_refused(served: Served) -> None:
    answer = served.post(payload(alert("a1")), token=None, headers={"Authorization": TOKEN})
    assert answer.status_code == 401


def test_each_receiver_has_its_token_and_namespaces(served: Served) -> None:
    assert served.post(payload(alert("a1")), path="/alertmanager/team-b").status_code == 401
    answer = served.post(
        payload(alert("a1"), alert("a2", namespace="demo")),
        token=TOKEN + "-b",
        path="/alertmanager/team-b",
    )
    assert answer.status_code == 207
    entries = answer.json()["alerts"]
    assert entries[0]["incident"].startswith("team-b/")
    assert entries[1]["status"] == "rejected" and "not allowed" in entries[1]["error"]
    assert served.post(payload(alert("a1")), path="/alertmanager/nobody").status_code == 404


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", 400),
        (b"\xff\xfe{}", 400),
        (b"[" * 50000 + b"]" * 50000, 413),
        (b"[" * 20000 + b"]" * 20000, 400),
        (b'{"alerts": ' + b"[" * 5000 + b"]" * 5000 + b', "status": "firing"}', 400),
        (b" " * (70 * 1024), 413),
        (b"", 400),
        (b"null", 400),
    ],
)
def test_bad_bodies_get_400_or_413(served: Served, content: bytes, code: int) -> None:
    answer = served.post(content=content)
    assert answer.status_code == code, answer.text
    assert "error" in answer.json()


def test_too_many_alerts_413(served: Served) -> None:
    answer = served.post(payload(*[alert(f"{i:x}") for i in range(51)]))
    assert answer.status_code == 413 and "max_alerts" in answer.json()["error"]


def test_outcomes_per_alert_and_the_status_they_make(served: Served) -> None:
    mixed = served.post(payload(alert("a1"), alert("b1", namespace="kube-system")))
    assert mixed.status_code == 207
    none = served.post(payload(alert("c1", "gone")))
    assert none.status_code == 422 and none.json()["rejected"] == 1
    retry = served.post(payload(alert("a1"), alert("d1", "broken", namespace="team-b")))
    assert retry.status_code == 503 and retry.headers["Retry-After"]
    assert {a["status"] for a in retry.json()["alerts"]} == {"accepted", "failed"}


def _concurrently(count: int, call: Callable[[], Any]) -> list[Any]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def test_a_full_queue_answers_503_with_retry_after() -> None:
    limits = ReceiverLimits(queue_size=1, workers=1, max_concurrent_requests=64)
    with serve(limits) as s:
        s.sink.gate = asyncio.Event()
        with ThreadPoolExecutor(4) as pool:
            waiting = [pool.submit(s.post, payload(alert(f"{i}"))) for i in range(2)]
            refused = _poll_refusal(s)
            s.open_gate()
            assert [f.result().status_code for f in waiting] == [200, 200]
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert "queue" in refused.json()["error"]


def _poll_refusal(s: Served) -> Any:
    """Once the worker holds one batch and the queue the other, the next request is refused."""
    _until(lambda: len(s.sink.batches) == 1 and s.receiver.queue.qsize() == 1)
    return s.post(payload(alert("ff")))


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_concurrent_requests_are_capped() -> None:
    limits = ReceiverLimits(max_concurrent_requests=2, workers=1)
    with serve(limits) as s:
        s.sink.gate = asyncio.Event()
        with ThreadPoolExecutor(4) as pool:
            waiting = [pool.submit(s.post, payload(alert(f"{i}"))) for i in range(2)]
            _until(lambda: s.receiver.active == 2)
            refused = s.post(payload(alert("ee")))
            s.open_gate()
            assert [f.result().status_code for f in waiting] == [200, 200]
        assert refused.status_code == 503 and "concurrent" in refused.json()["error"]


def test_no_token_refuses_to_start_unless_insecure() -> None:
    route = Route("default", None, ("demo",))
    with pytest.raises(ReceiverError, match="no token"):
        check_route(route, None, insecure=False)
    check_route(route, None, insecure=True)
    with pytest.raises(ReceiverError, match="16"):
        check_route(Route("default", "short", ("demo",)), None, insecure=False)
    with pytest.raises(ReceiverError, match="does not watch"):
        check_route(Route("default", TOKEN, ("demo",)), ["other"], insecure=False)


def test_tls_from_certificate_files(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    with serve(tls=(str(cert), str(key))) as s:
        trusted = ssl.create_default_context(cafile=str(cert))
        answer = s.post(payload(alert("a1")), verify=trusted)
        assert answer.status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.post(s.url.replace("https", "http") + "/alertmanager", timeout=5)
    with pytest.raises(ReceiverError, match="both"):
        ReceiverConfig({}, tls_cert=str(cert)).ssl_context()


# --- fuzzing ----------------------------------------------------------------------------------

EXAMPLES = {"count": 0}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
alert_like = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved", "x", ""]) | json_values},
    optional={
        "labels": st.dictionaries(
            st.sampled_from(["alertname", "service", "namespace", "severity", "a"])
            | st.text(max_size=5),
            st.text(max_size=70) | json_values,
            max_size=5,
        ),
        "fingerprint": st.text(max_size=70) | json_values,
        "startsAt": st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", ""]) | json_values,
        "annotations": json_values,
    },
)
payload_like = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved"]) | json_values},
    optional={
        "alerts": st.lists(alert_like, max_size=6) | json_values,
        "groupKey": st.text(max_size=30) | json_values,
        "groupLabels": json_values,
        "truncatedAlerts": st.integers() | json_values,
        "version": json_values,
    },
)
bodies = (
    payload_like.map(lambda p: json.dumps(p).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=300)
    | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
)
#: Header bytes HTTP allows (visible ASCII, space, tab, obs-text 0x80-0xFF); control
#: characters are refused by aiohttp's parser before any handler (see the test below).
header_bytes = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c <= 126 or c >= 128).strip()
)
auth = (
    st.sampled_from([f"Bearer {TOKEN}".encode()])
    | header_bytes
    | header_bytes.map(lambda b: (b"Bearer " + b).strip())
)


@settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, authorization=auth)
def test_fuzz_every_input_gets_a_well_formed_answer(
    served: Served, body: bytes, authorization: bytes
) -> None:
    EXAMPLES["count"] += 1
    answer = httpx.post(
        served.url + "/alertmanager",
        content=body,
        headers={"Authorization": authorization, "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code in ANSWERS, (answer.status_code, answer.text)
    shaped = answer.json()
    assert isinstance(shaped, dict) and ("error" in shaped or "alerts" in shaped)


def test_a_control_character_in_a_header_is_a_400_from_the_parser(served: Served) -> None:
    answer = served.post(payload(alert("a1")), token=b"\x01abc")
    assert answer.status_code == 400
