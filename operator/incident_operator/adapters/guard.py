"""One remediation at a time per target, with cooldowns and attempt limits, kept in Leases.

Each target (``shop-deployment-dashboard``, ``postgres-127.0.0.1-5432``, ...) has one
``coordination.k8s.io/v1`` Lease named ``incident-operator-<key>`` in the operator's namespace:

* ``spec.holderIdentity`` is the Incident (its uid) running a remediation against the target;
  the lease expires ``leaseDurationSeconds`` after ``renewTime``, so a crashed operator does
  not block the target forever. The holder acquiring again while it holds the lease is
  granted (an operator restart resumes its remediation); another holder gets ``TargetBusy``
  until release or expiry.
* annotation ``incidents.dev/attempts`` is a JSON list of the times (UTC, ISO 8601) of the
  destructive actions taken against the target, newest last, at most ``MAX_KEPT_ATTEMPTS``.
  It drives the cooldown between destructive actions and the maximum number per window, for
  every holder alike (checked whenever the target is taken, i.e. not already held by the
  asking holder), and it outlives releases.

``acquire`` never records an attempt: the caller does, with ``record_attempt``, right before
it acts. Every write carries the resourceVersion its decision was based on; on a conflict
(another operator instance wrote first) the Lease is read again and the decision redone, so
two instances can never both be granted the same target.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import re

from ..domain.guarding import (
    COOLDOWN_ACTIVE,
    GRANTED,
    MAX_ATTEMPTS_REACHED,
    TARGET_BUSY,
    Verdict,
)
from ..durations import format_duration
from .client import (
    API_GROUP,
    COMPONENT,
    JSON,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Conflict,
    KubeClient,
    NotFound,
    micro_time,
    parse_time,
)

LEASE_PREFIX = f"{COMPONENT}-"
ATTEMPTS_ANNOTATION = f"{API_GROUP}/attempts"
TARGET_ANNOTATION = f"{API_GROUP}/target"
MAX_KEPT_ATTEMPTS = 64
DEFAULT_LEASE_SECONDS = 300.0
DEFAULT_RETENTION_SECONDS = 7 * 86400.0
MAX_CONFLICT_RETRIES = 10
#: The attempts annotation read at most: ``MAX_KEPT_ATTEMPTS`` entries take about 5,000
#: characters. Anyone who may write Leases can write it, so it is read defensively.
MAX_ANNOTATION_CHARS = 64 * 1024
#: Nesting the annotation may have: a list of objects.
MAX_ANNOTATION_DEPTH = 2


class GuardError(Exception):
    """The guard could not finish: the Lease kept changing under it, or the holder that
    records an attempt does not hold the target. The message is safe to show.

    API failures reaching the Lease are :class:`~.client.KubeError` (``Forbidden`` when the
    operator may not touch Leases, ``Unavailable`` when the API server does not answer).
    """


def lease_name(key: str) -> str:
    """``incident-operator-<key>`` as a DNS label: lowercase, ``[a-z0-9-]``, at most 63
    characters; a long key is cut and gets a hash of the whole key appended."""
    slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "target"
    name = LEASE_PREFIX + slug
    if len(name) > 63:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        name = name[: 63 - 9].rstrip("-") + "-" + digest
    return name


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    return now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _depth(text: str) -> int:
    """How deeply the JSON ``text`` nests arrays and objects (brackets in strings aside)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _bounded_json(raw: object) -> object:
    """The annotation's JSON, or None when it is too large, too deep or not JSON."""
    if not isinstance(raw, str) or len(raw) > MAX_ANNOTATION_CHARS:
        return None
    if _depth(raw) > MAX_ANNOTATION_DEPTH:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def attempt_records(lease: JSON | None) -> list[tuple[dt.datetime, str | None]]:
    """(time, holder) of every recorded attempt, oldest first; unreadable entries dropped.

    Entries are ``{"at": ..., "holder": ...}``; a bare timestamp (no holder) is accepted too.
    An annotation that is too large or too deep counts as none (see ``_bounded_json``).
    """
    raw = (((lease or {}).get("metadata") or {}).get("annotations") or {}).get(ATTEMPTS_ANNOTATION)
    values = _bounded_json(raw) if raw else None
    if not isinstance(values, list):
        return []
    records: list[tuple[dt.datetime, str | None]] = []
    for value in values:
        at = parse_time(value.get("at") if isinstance(value, dict) else value)
        holder = value.get("holder") if isinstance(value, dict) else None
        if at is not None:
            records.append((at, holder if isinstance(holder, str) else None))
    return sorted(records, key=lambda record: record[0])


def attempts_of(lease: JSON | None) -> list[dt.datetime]:
    """The recorded attempt times of a Lease, oldest first."""
    return [at for at, _ in attempt_records(lease)]


def holder_of(lease: JSON | None, now: dt.datetime) -> tuple[str | None, dt.datetime | None]:
    """(holder, expiry) of a Lease that is held and not expired at ``now``, else (None, None)."""
    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder:
        return None, None
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int):
        return None, None
    try:
        expiry = renewed + dt.timedelta(seconds=duration)
    except OverflowError:  # beyond the calendar: not a lease anyone wrote for a step
        return None, None
    if expiry <= now:
        return None, None
    return str(holder), expiry


def lease_verdict(
    lease: JSON | None,
    key: str,
    holder: str,
    cooldown_s: float,
    max_attempts: int,
    window_s: float,
    now: dt.datetime,
) -> Verdict:
    """The decision of :meth:`TargetGuard.acquire` on the Lease as read (``None``: none yet).

    In this order: ``holder`` already holds a live lease (``Granted``: it resumes, e.g. after
    an operator restart), another live holder (``TargetBusy``), too many attempts within the
    window (``MaxAttemptsReached``), a recent attempt (``CooldownActive``); else ``Granted``.
    Cooldown and maximum thus apply whenever a target is taken, so a holder releases it
    after each destructive action.
    """
    current, expiry = holder_of(lease, now)
    if current == holder:
        return Verdict(True, GRANTED, f"Target {key} is already held by {holder}; renewed.")
    if current is not None:
        return Verdict(
            False,
            TARGET_BUSY,
            f"Another remediation ({current}) holds target {key} until {_iso(expiry or now)}.",
            expiry,
        )
    attempts = attempts_of(lease)
    since = now - dt.timedelta(seconds=window_s)
    recent = [t for t in attempts if t > since]
    if len(recent) >= max_attempts:
        retry_at = recent[len(recent) - max_attempts] + dt.timedelta(seconds=window_s)
        return Verdict(
            False,
            MAX_ATTEMPTS_REACHED,
            f"Target {key} had {len(recent)} destructive actions in the last "
            f"{format_duration(window_s)} (maximum {max_attempts}); the next is "
            f"allowed at {_iso(retry_at)}.",
            retry_at,
        )
    # The cooldown stops a loop across remediations (a flapping alert opening incident after
    # incident); one incident never repeats a step, so its own earlier steps do not count.
    others = [at for at, by in attempt_records(lease) if by != holder]
    if others and cooldown_s > 0:
        last = others[-1]
        ends = last + dt.timedelta(seconds=cooldown_s)
        if ends > now:
            return Verdict(
                False,
                COOLDOWN_ACTIVE,
                f"Target {key} is cooling down: the last destructive action was at "
                f"{_iso(last)}, the next is allowed at {_iso(ends)} (cooldown "
                f"{format_duration(cooldown_s)}).",
                ends,
            )
    return Verdict(True, GRANTED, f"Target {key} granted to {holder}.")


class TargetGuard:
    """Leases in the namespace the caller names (the operator's own), through its KubeClient."""

    def __init__(
        self,
        kube: KubeClient,
        lease_duration_s: float = DEFAULT_LEASE_SECONDS,
        retention_s: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        self.kube = kube
        self.lease_duration_s = lease_duration_s
        self.retention_s = retention_s

    # -- API plumbing --------------------------------------------------------------------------

    async def read(self, namespace: str, key: str) -> JSON | None:
        """The target's Lease as JSON, ``None`` when there is none yet."""
        name = lease_name(key)
        try:
            return await self.kube.json(
                self.kube.coordination.read_namespaced_lease,
                name,
                namespace,
                what=f"Lease {namespace}/{name}",
            )
        except NotFound:
            return None

    async def _ensure(self, namespace: str, key: str) -> None:
        """Create the target's Lease, empty (nobody holds it); fine when it exists."""
        name = lease_name(key)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY},
                "annotations": {TARGET_ANNOTATION: key[:1024]},
            },
            "spec": {},
        }
        with contextlib.suppress(Conflict):  # another instance created it first
            await self.kube.json(
                self.kube.coordination.create_namespaced_lease,
                namespace,
                body,
                what=f"Lease {namespace}/{name}",
            )

    async def _patch(
        self, namespace: str, lease: JSON, spec: JSON, annotations: JSON | None = None
    ) -> JSON:
        """A merge patch guarded by the resourceVersion the decision was based on: the API
        server answers 409 (:class:`Conflict`) when the Lease changed since it was read."""
        metadata: JSON = {"resourceVersion": lease["metadata"]["resourceVersion"]}
        if annotations:
            metadata["annotations"] = annotations
        name = lease["metadata"]["name"]
        return await self.kube.json(
            self.kube.coordination.patch_namespaced_lease,
            name,
            namespace,
            {"metadata": metadata, "spec": spec},
            _content_type="application/merge-patch+json",
            what=f"Lease {namespace}/{name}",
        )

    # -- the API -------------------------------------------------------------------------------

    async def acquire(
        self,
        namespace: str,
        key: str,
        holder: str,
        cooldown_s: float,
        max_attempts: int,
        window_s: float,
        now: dt.datetime | None = None,
        lease_duration_s: float | None = None,
    ) -> Verdict:
        """Hold ``key`` for ``holder`` unless it is busy, cooling down or out of attempts.

        A grant (re)writes holder, acquire/renew time and duration; a refusal writes
        nothing. ``lease_duration_s`` defaults to the guard's; a holder whose action runs
        longer must :meth:`renew`.
        """
        if not holder:
            raise ValueError("holder must not be empty")
        if max_attempts < 1 or cooldown_s < 0 or window_s < 0:
            raise ValueError("need max_attempts >= 1, cooldown_s >= 0 and window_s >= 0")
        now = _utc(now)
        duration = max(1, math.ceil(lease_duration_s or self.lease_duration_s))
        for _ in range(MAX_CONFLICT_RETRIES):
            lease = await self.read(namespace, key)
            verdict = lease_verdict(lease, key, holder, cooldown_s, max_attempts, window_s, now)
            if not verdict.granted:
                return verdict
            if lease is None:
                await self._ensure(namespace, key)
                continue  # decide again on the Lease as created (maybe by someone else)
            spec = lease.get("spec") or {}
            previous = spec.get("holderIdentity")
            change: JSON = {
                "holderIdentity": holder,
                "renewTime": micro_time(now),
                "leaseDurationSeconds": duration,
            }
            if previous != holder:
                change["acquireTime"] = micro_time(now)
                if previous:
                    change["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            try:
                await self._patch(namespace, lease, change)
            except Conflict:
                continue  # someone else wrote first: decide again on what they wrote
            if previous and previous != holder:
                verdict = dataclasses.replace(
                    verdict,
                    message=verdict.message[:-1] + f" (the lease of {previous} had expired).",
                )
            return verdict
        raise GuardError(f"Lease {lease_name(key)} kept changing; could not acquire it")

    async def record_attempt(
        self, namespace: str, key: str, holder: str, now: dt.datetime | None = None
    ) -> list[dt.datetime]:
        """Record a destructive action by ``holder`` (who must hold the target) at ``now``
        and renew the lease; returns the attempts kept, oldest first."""
        now = _utc(now)
        for _ in range(MAX_CONFLICT_RETRIES):
            lease = await self.read(namespace, key)
            current = ((lease or {}).get("spec") or {}).get("holderIdentity")
            if lease is None or current != holder:
                raise GuardError(f"target {key} is not held by {holder}; acquire it first")
            horizon = now - dt.timedelta(seconds=self.retention_s)
            records = [r for r in attempt_records(lease) if r[0] > horizon]
            records = sorted([*records, (now, holder)], key=lambda r: r[0])[-MAX_KEPT_ATTEMPTS:]
            kept = [at for at, _ in records]
            stamps = json.dumps(
                [
                    {"at": micro_time(at), "holder": by} if by else micro_time(at)
                    for at, by in records
                ]
            )
            try:
                await self._patch(
                    namespace, lease, {"renewTime": micro_time(now)}, {ATTEMPTS_ANNOTATION: stamps}
                )
            except Conflict:
                continue
            return kept
        raise GuardError(f"Lease {lease_name(key)} kept changing; attempt not recorded")

    async def renew(
        self, namespace: str, key: str, holder: str, now: dt.datetime | None = None
    ) -> bool:
        """Push the expiry of ``holder``'s lease forward; False when it holds it no more."""
        now = _utc(now)
        for _ in range(MAX_CONFLICT_RETRIES):
            lease = await self.read(namespace, key)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != holder:
                return False
            try:
                await self._patch(namespace, lease, {"renewTime": micro_time(now)})
            except Conflict:
                continue
            return True
        raise GuardError(f"Lease {lease_name(key)} kept changing; could not renew it")

    async def release(self, namespace: str, key: str, holder: str) -> bool:
        """Give the target up; the attempt history stays. False (and nothing written) when
        ``holder`` does not hold it, so releasing twice is harmless."""
        for _ in range(MAX_CONFLICT_RETRIES):
            lease = await self.read(namespace, key)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != holder:
                return False
            try:
                await self._patch(namespace, lease, {"holderIdentity": None})
            except Conflict:
                continue
            return True
        raise GuardError(f"Lease {lease_name(key)} kept changing; could not release it")

    async def attempts(self, namespace: str, key: str) -> list[dt.datetime]:
        """The recorded destructive actions against ``key``, oldest first."""
        return attempts_of(await self.read(namespace, key))
