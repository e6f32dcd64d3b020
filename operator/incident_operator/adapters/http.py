"""HTTP at the edge: health-check GETs and the Prometheus instant-query API, over httpx.

Every httpx call of the operator lives here. The operator creates one ``httpx.AsyncClient``
at startup and passes it in; without one, :func:`http_client` opens a short-lived client.
httpx exceptions never leave this module: they become :class:`HttpError`, whose message
names the URL without credentials or query string, and never a header value.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from .. import __version__

USER_AGENT = f"incident-operator/{__version__}"
MAX_BODY = 256 * 1024
MAX_JSON_BODY = 16 * 1024 * 1024


class HttpError(Exception):
    """An HTTP request failed; the message is safe to show (no secrets)."""


class HttpTimeout(HttpError):
    """No complete response within the timeout."""


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    status_code: int
    elapsed: float
    """Seconds from sending the request to the end of the (possibly cut) body."""
    body: bytes
    truncated: bool
    encoding: str | None = None

    @property
    def text(self) -> str:
        return self.body.decode(self.encoding or "utf-8", "replace")


@dataclasses.dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclasses.dataclass(frozen=True)
class QueryResult:
    result_type: str
    samples: list[Sample]


def display_url(url: str) -> str:
    """``url`` for messages: scheme, host, port and path; no user info, query or fragment."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text or "all connection attempts failed" in text:
            return "connection refused"
        if "name or service not known" in text or "nodename nor servname" in text:
            return "host not found"
        if "ssl" in text or "certificate" in text:
            return "TLS handshake failed"
        return "connection failed"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection or broke the protocol"
    if isinstance(exc, httpx.TooManyRedirects):
        return "too many redirects"
    return "request failed"


@contextlib.asynccontextmanager
async def http_client(shared: object | None, timeout: float) -> AsyncIterator[HttpProbe]:
    """The operator's shared client when given (it is not closed), else a short-lived one."""
    if isinstance(shared, httpx.AsyncClient):
        yield HttpProbe(shared)
        return
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
    ) as client:
        yield HttpProbe(client)


class HttpProbe:
    """GET requests with a deadline, a latency measurement and a bounded body."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def get(
        self,
        url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        max_body: int = MAX_BODY,
    ) -> HttpResponse:
        """GET ``url``; the whole exchange, body included, must end within ``timeout`` s."""
        shown = display_url(url)
        start = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                async with self._client.stream(
                    "GET",
                    url,
                    headers=dict(headers or {}),
                    params=dict(params or {}),
                    timeout=timeout,
                ) as response:
                    chunks: list[bytes] = []
                    size = 0
                    truncated = False
                    async for chunk in response.aiter_bytes():
                        chunks.append(chunk)
                        size += len(chunk)
                        if size > max_body:
                            truncated = True
                            break
                    elapsed = time.perf_counter() - start
                    return HttpResponse(
                        status_code=response.status_code,
                        elapsed=elapsed,
                        body=b"".join(chunks)[:max_body],
                        truncated=truncated,
                        encoding=response.charset_encoding,
                    )
        except (TimeoutError, httpx.TimeoutException):
            raise HttpTimeout(f"GET {shown}: no response within {timeout:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as exc:
            raise HttpError(f"GET {shown} failed: {_reason(exc)} ({type(exc).__name__})") from None


def _number(value: object) -> float:
    """A Prometheus sample value: a string such as "0.07", "NaN" or "+Inf"."""
    if not isinstance(value, str | int | float):
        raise TypeError(f"sample value {value!r}")
    return float(value)


class PrometheusClient:
    """``GET /api/v1/query``: instant vectors and scalars."""

    def __init__(self, probe: HttpProbe, base_url: str) -> None:
        self._probe = probe
        self._url = base_url.rstrip("/") + "/api/v1/query"

    @property
    def url(self) -> str:
        return display_url(self._url)

    async def query(self, promql: str, *, timeout: float) -> QueryResult:
        params = {"query": promql, "timeout": f"{max(1, math.floor(timeout))}s"}
        try:
            response = await self._probe.get(
                self._url, timeout=timeout, params=params, max_body=MAX_JSON_BODY
            )
        except HttpTimeout:
            raise HttpTimeout(
                f"Prometheus at {self.url} did not answer within {timeout:g} s"
            ) from None
        except HttpError as exc:
            raise HttpError(f"cannot query Prometheus: {exc}") from None
        if response.truncated:
            raise HttpError(f"Prometheus at {self.url} answered more than 16 MiB")
        try:
            payload = json.loads(response.body)
        except ValueError:
            raise HttpError(
                f"Prometheus at {self.url} answered HTTP {response.status_code} without JSON;"
                " is the URL that of a Prometheus server?"
            ) from None
        if not isinstance(payload, dict):
            raise HttpError(f"Prometheus at {self.url} answered an unexpected JSON value")
        if payload.get("status") != "success" or response.status_code != 200:
            kind = str(payload.get("errorType") or f"HTTP {response.status_code}")
            error = str(payload.get("error") or "no error message")[:300]
            raise HttpError(f"Prometheus at {self.url} rejected the query: {kind}: {error}")
        try:
            return self._parse(payload["data"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise HttpError(f"Prometheus at {self.url} answered a malformed query result") from None

    def _parse(self, data: dict[str, Any]) -> QueryResult:
        result_type = data["resultType"]
        result = data["result"]
        if result_type == "vector":
            samples = [
                Sample(
                    labels={str(k): str(v) for k, v in item.get("metric", {}).items()},
                    value=_number(item["value"][1]),
                )
                for item in result
            ]
            return QueryResult("vector", samples)
        if result_type == "scalar":
            return QueryResult("scalar", [Sample({}, _number(result[1]))])
        if result_type == "matrix":
            raise HttpError(
                "the query returned a range vector; use an instant vector or a scalar"
                " (e.g. wrap it in rate(), or drop the [range] selector)"
            )
        raise HttpError(f"the query returned a {result_type}, not a vector or scalar")
