"""The one Kubernetes client layer: a thread pool, request timeouts and one error mapping.

The official client is synchronous. :class:`KubeClient` is created once at start-up and
every call goes through it: the call runs in the client's own thread pool (not asyncio's
default one, which other libraries share), always with ``_request_timeout=(connect, read)``,
and every failure comes out as a :class:`KubeError`:

============  ======================================================  =========
class         when                                                    transient
============  ======================================================  =========
NotFound      404                                                     no
Conflict      409 (the object changed since it was read, or exists)   no
Forbidden     403 (the message names the verb and resource denied)    no
Invalid       422 (the API server rejected the object)                no
Unavailable   5xx, 429, connection errors, timeouts                   yes
KubeError     anything else (400, 401, 410, a client-side error)      no
============  ======================================================  =========

Messages are safe to show in an Incident's status: they name the object and the API
server's reason, never a request body or a header, and are at most ``MAX_MESSAGE``
characters long.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import kubernetes
import urllib3
import websocket
from kubernetes.client.exceptions import ApiException, OpenApiException

from .. import API_GROUP, API_VERSION, COMPONENT

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "COMPONENT",
    "INCIDENT_LABEL",
    "JSON",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "Conflict",
    "Forbidden",
    "Invalid",
    "KubeClient",
    "KubeError",
    "NotFound",
    "Unavailable",
    "map_error",
    "micro_time",
    "parse_time",
]

JSON = dict[str, Any]
T = TypeVar("T")

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = COMPONENT
INCIDENT_LABEL = f"{API_GROUP}/incident"

DEFAULT_POOL_SIZE = 16
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
MAX_MESSAGE = 512
#: Streamed reads (pod logs) stop after this many bytes unless told otherwise.
DEFAULT_STREAM_LIMIT = 1024 * 1024
_CHUNK = 16 * 1024

Timeout = float | tuple[float, float]


# --- errors -----------------------------------------------------------------------------------


class KubeError(Exception):
    """A Kubernetes API call failed; ``str(error)`` is safe to show in status."""

    transient: ClassVar[bool] = False
    """Asking again later may succeed without anything else changing."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409: the object changed since it was read (read it again and redo the decision), or
    one with that name exists already."""


class Forbidden(KubeError):
    """403: the operator's ServiceAccount may not do this; ``verb`` and ``resource`` say what."""

    def __init__(self, status: int, reason: str, message: str, verb: str, resource: str) -> None:
        super().__init__(status, reason, message)
        self.verb = verb
        self.resource = resource


class Invalid(KubeError):
    """422: the API server rejected the object (validation, admission)."""


class Unavailable(KubeError):
    """5xx, 429, no connection or no answer in time: the API server may answer later."""

    transient = True


# --- helpers ----------------------------------------------------------------------------------


def parse_time(value: Any) -> dt.datetime | None:
    """A Kubernetes Time or MicroTime (RFC 3339) as an aware UTC datetime; ``None`` when it
    is missing or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def micro_time(value: dt.datetime) -> str:
    """A Kubernetes MicroTime (``2026-01-01T12:00:00.000000Z``)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_VERBS = {"read": "get", "replace": "update", "connect": "create"}
_SUBRESOURCES = ("status", "scale", "log", "exec")


def operation(func: Callable[..., Any]) -> tuple[str, str]:
    """(RBAC verb, resource) of a generated API method, from its name:
    ``patch_namespaced_deployment_scale`` is ("patch", "deployments/scale")."""
    name = getattr(func, "__name__", "") or "call"
    head, _, rest = name.partition("_")
    if head == "connect":  # connect_get_namespaced_pod_exec
        rest = rest.partition("_")[2]
    rest = rest.removeprefix("namespaced_").removesuffix("_for_all_namespaces")
    sub = ""
    for suffix in _SUBRESOURCES:
        if rest.endswith("_" + suffix):
            rest, sub = rest[: -len(suffix) - 1], "/" + suffix
            break
    resource = rest.replace("_", "")
    if resource and not resource.endswith("s"):
        resource += "s"
    return _VERBS.get(head, head), (resource or "objects") + sub


def _clean(text: str, limit: int = MAX_MESSAGE) -> str:
    """One line, at most ``limit`` characters."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_message(exc: ApiException) -> str:
    """The ``message`` of the API server's Status, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return _clean(body["message"], 300)
    return _clean(str(exc.reason or f"HTTP {exc.status}"), 300)


_HANDSHAKE = re.compile(r"Handshake status (\d{3})")
_STATUS_MESSAGE = re.compile(r'"message":\s*"((?:[^"\\]|\\.)*)"')


def _status_and_detail(exc: ApiException) -> tuple[int, str]:
    """The HTTP status and the server's message. A failed websocket handshake (exec) comes
    as status 0 with the real status, headers and body in the reason text."""
    status = int(exc.status or 0)
    if status == 0:
        reason = str(exc.reason or "")
        found = _HANDSHAKE.search(reason)
        if found:
            message = _STATUS_MESSAGE.search(reason)
            detail = f"HTTP {found.group(1)}"
            if message:
                try:
                    detail = str(json.loads(f'"{message.group(1)}"'))
                except ValueError:
                    detail = message.group(1)
            return int(found.group(1)), _clean(detail, 300)
    return status, _server_message(exc)


def _api_error(exc: ApiException, what: str, verb: str, resource: str) -> KubeError:
    status, detail = _status_and_detail(exc)
    if status == 404:
        return NotFound(status, "NotFound", _clean(f"{what} not found"))
    if status == 409:
        return Conflict(status, "Conflict", _clean(f"{what}: conflict: {detail}"))
    if status == 403:
        message = f"{what}: Forbidden: may not {verb} {resource}: {detail}"
        return Forbidden(status, "Forbidden", _clean(message), verb, resource)
    if status == 422:
        return Invalid(status, "Invalid", _clean(f"{what}: invalid: {detail}"))
    if status == 0 or status == 429 or status >= 500:
        # status 0: the client could not talk to the server (TLS, websocket handshake)
        reason = "TooManyRequests" if status == 429 else "Unavailable"
        return Unavailable(status, reason, _clean(f"{what}: Kubernetes API unavailable: {detail}"))
    reason = str(exc.reason or "Error").replace(" ", "")
    return KubeError(status, reason, _clean(f"{what}: Kubernetes API error {status}: {detail}"))


def map_error(
    exc: BaseException, what: str, verb: str = "call", resource: str = "objects"
) -> KubeError | None:
    """The :class:`KubeError` for an exception of the client or its transport; ``None`` for
    anything else (a bug, which should surface as itself)."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        return _api_error(exc, what, verb, resource)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | websocket.WebSocketException):
        # timeouts, refused, reset, a broken exec stream
        message = f"{what}: Kubernetes API unreachable: {type(exc).__name__}: {exc}"
        return Unavailable(0, "Unavailable", _clean(message, 300))
    if isinstance(exc, OpenApiException):  # parameters the client refused to send
        message = f"{what}: {type(exc).__name__}: {exc}"
        return KubeError(0, "ClientError", _clean(message, 300))
    return None


# --- the client -------------------------------------------------------------------------------


class KubeClient:
    """The operator's connection to the API server; created once at start-up.

    ``pool_size`` threads carry the blocking calls (the ApiClient's connection pool is
    at least as large when :func:`incident_operator.adapters.kube.load_api_client` built
    it). ``connect_timeout`` and ``read_timeout`` (seconds) apply to every call unless the
    call passes ``timeout=`` (a number: total; a pair: connect and read).
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        pool: concurrent.futures.ThreadPoolExecutor | None = None,
    ) -> None:
        if pool_size < 1 or connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("need pool_size >= 1 and positive timeouts")
        self.api_client = api_client
        self.pool_size = pool_size
        self.timeout: tuple[float, float] = (connect_timeout, read_timeout)
        # A client acting for someone else (adapters.identities) shares its parent's pool.
        self._owns_pool = pool is None
        self._pool = pool or concurrent.futures.ThreadPoolExecutor(
            max_workers=pool_size, thread_name_prefix="kube-api"
        )
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.batch = kubernetes.client.BatchV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.coordination = kubernetes.client.CoordinationV1Api(api_client)
        self.authorization = kubernetes.client.AuthorizationV1Api(api_client)
        self.events = kubernetes.client.EventsV1Api(api_client)

    async def run(
        self,
        func: Callable[..., T],
        *args: Any,
        what: str = "Kubernetes API",
        named: Callable[..., Any] | None = None,
    ) -> T:
        """``func(*args)`` in the client's pool, for what the client cannot do in one call
        (an exec stream): ``func`` passes the request timeout and bounds its own waiting.
        Errors become :class:`KubeError`, named after the API method ``named``."""
        verb, resource = operation(named) if named is not None else ("call", "objects")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(func, *args))
        except Exception as exc:
            error = map_error(exc, what, verb, resource)
            if error is None:
                raise
            raise error from None

    async def call(
        self,
        func: Callable[..., Any],
        *args: Any,
        what: str | None = None,
        resource: str | None = None,
        timeout: Timeout | None = None,
        **kwargs: Any,
    ) -> Any:
        """One API call, as the client returns it. ``what`` names the object in messages
        (default: the resource); ``resource`` overrides the one read from the method name."""
        return await self._submit(func, func, args, kwargs, what, resource, timeout)

    async def json(
        self,
        func: Callable[..., Any],
        *args: Any,
        what: str | None = None,
        resource: str | None = None,
        timeout: Timeout | None = None,
        **kwargs: Any,
    ) -> JSON:
        """One API call whose answer is read as plain JSON (fields this client version does
        not know survive a read-modify-write)."""
        reader = functools.partial(_read_body, func, None)
        kwargs["_preload_content"] = False
        data, _ = await self._submit(func, reader, args, kwargs, what, resource, timeout)
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            name = what or operation(func)[1]
            raise KubeError(0, "BadResponse", f"{name}: the API server's answer is not JSON")
        return body

    async def read_limited(
        self,
        func: Callable[..., Any],
        *args: Any,
        limit: int = DEFAULT_STREAM_LIMIT,
        what: str | None = None,
        resource: str | None = None,
        timeout: Timeout | None = None,
        **kwargs: Any,
    ) -> tuple[bytes, bool]:
        """(body, truncated): the answer streamed in chunks and cut at ``limit`` bytes while
        reading, so a huge answer never sits in memory whole."""
        reader = functools.partial(_read_body, func, max(1, limit))
        kwargs["_preload_content"] = False
        result: tuple[bytes, bool] = await self._submit(
            func, reader, args, kwargs, what, resource, timeout
        )
        return result

    async def _submit(
        self,
        named: Callable[..., Any],
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        what: str | None,
        resource: str | None,
        timeout: Timeout | None,
    ) -> Any:
        """``target(*args, **kwargs)`` in the pool with the request timeout; errors named
        after ``named`` (the generated API method)."""
        verb, derived = operation(named)
        resource = resource or derived
        kwargs["_request_timeout"] = timeout if timeout is not None else self.timeout
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._pool, functools.partial(target, *args, **kwargs)
            )
        except Exception as exc:
            error = map_error(exc, what or resource, verb, resource)
            if error is None:
                raise
            raise error from None

    def acting_with(self, api_client: kubernetes.client.ApiClient) -> KubeClient:
        """A client with other credentials (``api_client``) on this client's pool and limits."""
        connect, read = self.timeout
        return KubeClient(api_client, self.pool_size, connect, read, pool=self._pool)

    def close(self) -> None:
        """Stop the pool (running calls end at their timeout) and the connection pool."""
        if self._owns_pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.api_client.close()


def _read_body(
    func: Callable[..., Any], limit: int | None, *args: Any, **kwargs: Any
) -> tuple[bytes, bool]:
    """Call ``func`` (``_preload_content=False``) and read its urllib3 response: whole, or
    at most ``limit`` bytes; runs in the pool thread, so the blocking reads stay off the loop."""
    response = func(*args, **kwargs)
    try:
        if limit is None:
            return bytes(response.data or b""), False
        chunks: list[bytes] = []
        size = 0
        for chunk in response.stream(_CHUNK):
            chunks.append(chunk[: limit - size])
            size += len(chunks[-1])
            if size >= limit:
                response.close()  # stop the transfer: the rest is never read
                return b"".join(chunks), True
        return b"".join(chunks), False
    finally:
        response.release_conn()
