"""What an admin allows Runbooks to run and reach: exec command templates and target hosts.

A Runbook is written by people who do not own the servers it reaches or the pods it execs
into. Two allowlists in the operator's policy bound what they can do:

- ``exec.commands``: an ``execInPod`` command must match one template *whole*: the same
  number of arguments, literal arguments equal, and each ``{placeholder}`` fully matching
  the pattern the template declares for it. A prefix match would let ``psql -c '\\! sh'``
  or ``cat /var/run/secrets/...`` through.
- ``targets``: every PostgreSQL, Redis, HTTP and Prometheus target's ``host:port`` must be
  listed for its kind (``{namespace}`` stands for the Runbook's namespace, and ``*`` as the
  port for any port). Credentials from a ``*SecretRef`` are only ever sent to such a host.

Both are checked when a Runbook is validated (an off-list Runbook is Invalid and never
selected) and again before each step runs.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

import re2
from pydantic import Field, StringConstraints, field_validator, model_validator

from ..models.actions import ExecInPod
from ..models.base import Model
from ..models.patterns import MAX_POLICY_PROGRAM_SIZE, Pattern, compile_pattern
from ..models.runbook import RunbookSpec, Step

Placeholder = Annotated[str, StringConstraints(pattern=r"^[a-z][a-zA-Z0-9]{0,31}$")]
ArgPattern = Annotated[str, StringConstraints(min_length=1, max_length=256)]
_PLACEHOLDER = re.compile(r"\{([a-z][a-zA-Z0-9]{0,31})\}")
HOST = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
PORT = r"[0-9]{1,5}"


class ExecCommand(Model):
    """One command execInPod may run, argument by argument."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=63)] = Field(
        description="A name for messages, e.g. redis-flushdb."
    )
    command: list[Annotated[str, StringConstraints(min_length=1, max_length=1024)]] = Field(
        min_length=1,
        max_length=64,
        description="The argv; an argument may contain {placeholders} declared in params.",
    )
    params: dict[Placeholder, ArgPattern] = Field(
        default_factory=dict,
        description="A regular expression for each placeholder, matched in full.",
    )

    @model_validator(mode="after")
    def _placeholders_declared(self) -> ExecCommand:
        used = {name for arg in self.command for name in _PLACEHOLDER.findall(arg)}
        missing = used - set(self.params)
        if missing:
            raise ValueError(f"placeholders without a pattern: {sorted(missing)}")
        for name, pattern in self.params.items():
            try:
                compile_pattern(pattern, max_program_size=MAX_POLICY_PROGRAM_SIZE)
            except ValueError as exc:
                raise ValueError(f"params.{name}: {exc}") from None
        for arg in self.command:
            try:
                _arg_regex(arg, self.params)
            except ValueError as exc:
                raise ValueError(f"command argument {arg!r}: {exc}") from None
        return self

    def matches(self, argv: list[str]) -> bool:
        if len(argv) != len(self.command):
            return False
        return all(
            _arg_regex(t, self.params).fullmatch(a) for t, a in zip(self.command, argv, strict=True)
        )


def _arg_regex(template: str, params: dict[str, str]) -> Pattern:
    """The argument template as one RE2 pattern (``.`` matches newlines too): the
    Runbook's argv is untrusted text, so no backtracking engine sees it."""
    parts, last = [], 0
    for found in _PLACEHOLDER.finditer(template):
        parts.append(re2.escape(template[last : found.start()]))
        parts.append(f"(?:{params[found.group(1)]})")
        last = found.end()
    parts.append(re2.escape(template[last:]))
    return compile_pattern(
        "".join(parts), dot_matches_newline=True, max_program_size=MAX_POLICY_PROGRAM_SIZE
    )


def _playbook_commands() -> list[ExecCommand]:
    """The playbook's ``docker exec`` diagnostics and the Redis flush, nothing that opens a
    shell, reads files or runs arbitrary SQL."""
    redis = {"port": PORT}
    listed = [
        ("redis-ping", ["redis-cli", "-p", "{port}", "PING"], redis),
        ("redis-dbsize", ["redis-cli", "-p", "{port}", "DBSIZE"], redis),
        ("redis-flushdb", ["redis-cli", "-p", "{port}", "FLUSHDB"], redis),
        (
            "redis-info",
            ["redis-cli", "-p", "{port}", "INFO", "{section}"],
            {**redis, "section": "memory|stats|server|clients|keyspace|persistence|replication"},
        ),
        (
            "pg-isready",
            ["pg_isready", "-h", "{host}", "-p", "{port}"],
            {"host": HOST, "port": PORT},
        ),
        ("psql-ping", ["psql", "-tAc", "SELECT 1"], {}),
        ("disk-usage", ["df", "-h"], {}),
        ("memory", ["free", "-m"], {}),
        ("uptime", ["uptime"], {}),
        ("processes", ["ps", "aux"], {}),
    ]
    return [ExecCommand(name=n, command=c, params=p) for n, c, p in listed]


class ExecPolicy(Model):
    """The commands execInPod may run."""

    commands: list[ExecCommand] = Field(
        default_factory=_playbook_commands,
        max_length=128,
        description="Templates; a command must match one whole. Default: the playbook's "
        "diagnostics (redis-cli PING/DBSIZE/INFO/FLUSHDB, pg_isready, df -h, free -m, ...).",
    )

    def allowed(self, argv: list[str]) -> bool:
        return any(template.matches(argv) for template in self.commands)


HostPort = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9{}.-]{1,253}:([0-9]{1,5}|\*)$", max_length=260)
]


class TargetsPolicy(Model):
    """The hosts Runbook targets may name, per kind, as host:port. Empty: none allowed."""

    postgres: list[HostPort] = Field(
        default_factory=list, max_length=64, description="PostgreSQL servers."
    )
    redis: list[HostPort] = Field(default_factory=list, max_length=64, description="Redis servers.")
    http: list[HostPort] = Field(
        default_factory=list, max_length=64, description="Health-check hosts."
    )
    prometheus: list[HostPort] = Field(
        default_factory=list, max_length=64, description="Prometheus hosts."
    )

    @field_validator("postgres", "redis", "http", "prometheus")
    @classmethod
    def _only_namespace_placeholder(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if set(_PLACEHOLDER.findall(entry)) - {"namespace"}:
                raise ValueError(f"{entry}: the only placeholder is {{namespace}}")
        return entries

    def allows(self, kind: str, host: str, port: int, namespace: str) -> bool:
        for entry in getattr(self, kind):
            allowed_host, _, allowed_port = entry.rpartition(":")
            if allowed_host.replace("{namespace}", namespace).lower() != host.lower():
                continue
            if allowed_port in ("*", str(port)):
                return True
        return False


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def target_problems(spec: RunbookSpec, allowed: TargetsPolicy, namespace: str) -> list[str]:
    """Each target whose host:port the admin did not allow."""
    targets = spec.targets
    endpoints: list[tuple[str, str, int]] = []
    if targets.postgres is not None:
        endpoints.append(("postgres", targets.postgres.host, targets.postgres.port))
    if targets.redis is not None:
        endpoints.append(("redis", targets.redis.host, targets.redis.port))
    if targets.http is not None:
        endpoints.append(("http", *_endpoint(targets.http.base_url)))
    if targets.prometheus is not None:
        endpoints.append(("prometheus", *_endpoint(targets.prometheus.url)))
    return [
        f"spec.targets.{kind} {host}:{port} is not in the policy's targets.{kind} allowlist"
        for kind, host, port in endpoints
        if not allowed.allows(kind, host, port, namespace)
    ]


def exec_problem(step: Step, allowed: ExecPolicy) -> str | None:
    """Why the step's execInPod command is refused, or None."""
    if not isinstance(step.action, ExecInPod) or allowed.allowed(step.action.command):
        return None
    return f"step {step.name}: command {step.action.command!r} matches no exec.commands template"
