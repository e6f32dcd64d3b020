"""PostgreSQL runbook actions (playbook: Database Service Outage, High Error Rate, High Latency).

The step logic only: thresholds, findings and messages. Every database call goes through
:mod:`incident_operator.adapters.postgres`, whose errors become :class:`ActionError` here.
Query texts shown in ``output`` have their string literals (plain, ``E''`` escape strings and
dollar-quoted ones) replaced by ``'?'``.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator

from ..adapters.postgres import (
    PostgresClient,
    PostgresConnInfo,
    PostgresError,
    StatementStatsUnavailable,
)
from ..durations import format_duration, inner_timeout
from ..models.actions import (
    MaintenanceOperation,
    PostgresBlockedLocks,
    PostgresCreateIndex,
    PostgresDatabaseSize,
    PostgresLongQueries,
    PostgresMaintenance,
    PostgresPing,
    PostgresTerminateBackends,
    PostgresTopStatements,
)
from .base import (
    ActionContext,
    ActionError,
    StepResult,
    duration_param,
    executor,
    read_secret,
    table,
)

QUERY_WIDTH = 60
HIDDEN_QUERY = "<insufficient privilege>"
MIB = 1024 * 1024
_SPACE = re.compile(r"\s+")
#: Where a literal or a quoted identifier may start (the scanner decides which it is).
_QUOTE = re.compile(r"[\"'$]")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
#: Query text looked at: a literal that starts before the cut is redacted to the end.
MAX_QUERY_CHARS = 16 * 1024


@contextlib.asynccontextmanager
async def _session(ctx: ActionContext) -> AsyncIterator[PostgresClient]:
    """A connection to the runbook's postgres target; adapter errors become ActionError."""
    target = ctx.targets.postgres
    if target is None:
        raise ActionError("runbook has no postgres target")
    password = None
    if target.password_secret_ref is not None:
        password = await read_secret(ctx, target.password_secret_ref)
    info = PostgresConnInfo(
        host=target.host,
        port=target.port,
        dbname=target.database,
        user=target.user,
        password=password,
        sslmode=target.effective_sslmode(),
        ca_pem=await read_secret(ctx, target.ca_secret_ref) if target.ca_secret_ref else None,
    )
    try:
        async with PostgresClient.connect(info, timeout=inner_timeout(ctx.timeout)) as client:
            yield client
    except PostgresError as exc:
        raise ActionError(str(exc)) from None


def _in_word(text: str, at: int) -> bool:
    """Whether ``text[at]`` continues an identifier (so it cannot start a literal)."""
    return at > 0 and (text[at - 1].isalnum() or text[at - 1] in "_$")


def _literal_end(text: str, start: int, backslashes: bool) -> int:
    """The index after the quote that ends the literal whose body starts at ``start``."""
    at = start
    quote = text.find("'", at)
    while True:
        slash = text.find("\\", at, quote if quote >= 0 else len(text)) if backslashes else -1
        if slash >= 0:
            at = slash + 2  # E'' strings: a backslash escapes the next character
            if 0 <= quote < at:
                quote = text.find("'", at)
        elif quote < 0:
            return len(text)
        elif text.startswith("''", quote):
            at = quote + 2
            quote = text.find("'", at)
        else:
            return quote + 1


def redact_literals(text: str) -> str:
    """``text`` with each string literal replaced by ``'?'`` (``E'?'`` for escape strings):
    ``'...'`` (with ``''``), ``E'...'`` (with backslash escapes) and ``$$...$$`` or
    ``$tag$...$tag$``. Quoted identifiers stay. One pass, linear in the text."""
    parts: list[str] = []
    at = 0
    while (found := _QUOTE.search(text, at)) is not None:
        start = found.start()
        char = text[start]
        if char == '"':  # a quoted identifier ("" inside): kept as it is
            end = start + 1
            while (end := text.find('"', end)) >= 0 and text.startswith('""', end):
                end += 2
            end = len(text) if end < 0 else end + 1
            parts.append(text[at:end])
        elif char == "'":
            escape = start > 0 and text[start - 1] in "eE" and not _in_word(text, start - 1)
            end = _literal_end(text, start + 1, backslashes=escape)
            parts.append(text[at : start - 1] + "E'?'" if escape else text[at:start] + "'?'")
        else:
            tag = _DOLLAR_TAG.match(text, start)
            if tag is None or _in_word(text, start):
                end = start + 1
                parts.append(text[at:end])
            else:
                close = text.find(tag.group(), tag.end())
                end = len(text) if close < 0 else close + len(tag.group())
                parts.append(text[at:start] + "'?'")
        at = end
    parts.append(text[at:])
    return "".join(parts)


def short_query(text: str, width: int = QUERY_WIDTH) -> str:
    """One line of a query for a table: literals redacted, whitespace collapsed, truncated."""
    line = _SPACE.sub(" ", redact_literals(text[:MAX_QUERY_CHARS])).strip()
    return line if len(line) <= width else line[: width - 1] + "…"


def _age(seconds: float) -> str:
    return format_duration(round(seconds)) if seconds >= 1 else format_duration(seconds)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _exceeds(count: float, threshold: float | None) -> bool:
    return threshold is not None and count > threshold


@executor(PostgresPing)
async def postgres_ping(action: PostgresPing, ctx: ActionContext) -> StepResult:
    async with _session(ctx) as pg:
        latency = await pg.ping()
        return StepResult(
            ok=True,
            message=f"PostgreSQL {pg.address} answered SELECT 1 in {latency:.1f} ms.",
            findings={"latencyMs": round(latency, 1), "serverVersion": pg.server_version},
        )


@executor(PostgresLongQueries)
async def postgres_long_queries(action: PostgresLongQueries, ctx: ActionContext) -> StepResult:
    older_than = duration_param(action.older_than)
    async with _session(ctx) as pg:
        report = await pg.long_queries(older_than)
    sessions = report.sessions
    count = len(sessions)
    failed = _exceeds(count, action.threshold)
    longest = max(sessions, key=lambda s: s.seconds, default=None)
    if longest is None:
        message = f"No query in {pg.database} has been running longer than {action.older_than}"
    else:
        message = (
            f"{_plural(count, 'query', 'queries')} in {pg.database} "
            f"{'has' if count == 1 else 'have'} been running longer than {action.older_than}"
            f"{f', above the threshold of {action.threshold:g}' if failed else ''}"
            f" (longest: pid {longest.pid} for {_age(longest.seconds)})"
        )
    if report.hidden:
        message += (
            f"; {_plural(report.hidden, 'session')} of other roles"
            f" {'is' if report.hidden == 1 else 'are'} not visible"
            f" (grant pg_read_all_stats to {pg.user})"
        )
    output = None
    if sessions:
        output = table(
            ["PID", "USER", "STATE", "RUNNING", "QUERY"],
            [[s.pid, s.user, s.state, _age(s.seconds), short_query(s.query)] for s in sessions],
        )
    return StepResult(
        ok=not failed,
        message=message + ".",
        findings={
            "longQueries": count,
            "longestSeconds": round(longest.seconds, 1) if longest else 0.0,
            "hiddenSessions": report.hidden,
        },
        output=output,
    )


@executor(PostgresBlockedLocks)
async def postgres_blocked_locks(action: PostgresBlockedLocks, ctx: ActionContext) -> StepResult:
    async with _session(ctx) as pg:
        waits = await pg.blocked_locks()
    count = len(waits)
    failed = _exceeds(count, action.threshold)
    if not waits:
        message = f"No session in {pg.database} is waiting for a lock."
    else:
        longest = max(waits, key=lambda w: w.seconds)
        blockers = sorted({pid for w in waits for pid in w.blocked_by})
        message = (
            f"{_plural(count, 'lock request')} in {pg.database} {'is' if count == 1 else 'are'}"
            f" waiting{f', above the threshold of {action.threshold:g}' if failed else ''}"
            f" (longest: pid {longest.pid} for {_age(longest.seconds)},"
            f" blocked by pid {', '.join(map(str, blockers)) or 'unknown'})."
        )
    output = None
    if waits:
        output = table(
            ["PID", "WAITING", "MODE", "RELATION", "BLOCKED BY", "QUERY"],
            [
                [
                    w.pid,
                    _age(w.seconds),
                    w.mode,
                    w.relation or w.locktype,
                    ",".join(map(str, w.blocked_by)) or "-",
                    short_query(w.query, 40),
                ]
                for w in waits
            ],
        )
    return StepResult(
        ok=not failed,
        message=message,
        findings={
            "blockedLocks": count,
            "longestWaitSeconds": round(max((w.seconds for w in waits), default=0.0), 1),
        },
        output=output,
    )


@executor(PostgresTopStatements)
async def postgres_top_statements(action: PostgresTopStatements, ctx: ActionContext) -> StepResult:
    async with _session(ctx) as pg:
        try:
            statements = await pg.top_statements(action.limit)
        except StatementStatsUnavailable as exc:
            return StepResult(
                ok=True,
                message=(
                    f"No statement statistics: {exc}; run CREATE EXTENSION pg_stat_statements"
                    f" in {pg.database} (it must also be in shared_preload_libraries)."
                ),
                findings={"pgStatStatements": False, "statements": 0},
            )
    findings: dict[str, str | int | float | bool] = {
        "pgStatStatements": True,
        "statements": len(statements),
    }
    if not statements:
        return StepResult(
            ok=True,
            message=f"pg_stat_statements has no statements recorded for {pg.database} yet.",
            findings=findings,
        )
    top = statements[0]
    findings |= {"topTotalMs": round(top.total_ms, 1), "topMeanMs": round(top.mean_ms, 2)}
    hidden = sum(1 for s in statements if s.query == HIDDEN_QUERY)
    note = ""
    if hidden:
        note = (
            f"; {hidden} of these {len(statements)} statements belong to other roles and are"
            f" hidden (grant pg_read_all_stats to {pg.user})"
        )
    times = "once" if top.calls == 1 else f"{top.calls} times"
    return StepResult(
        ok=True,
        message=(
            f"The top statement in {pg.database} by total time ran {times},"
            f" {top.total_ms:.0f} ms in total and {top.mean_ms:.1f} ms on average:"
            f" {short_query(top.query, 80)}{note}."
        ),
        findings=findings,
        output=table(
            ["CALLS", "TOTAL MS", "MEAN MS", "ROWS", "QUERY"],
            [
                [s.calls, f"{s.total_ms:.1f}", f"{s.mean_ms:.2f}", s.rows, short_query(s.query)]
                for s in statements
            ],
        ),
    )


@executor(PostgresDatabaseSize)
async def postgres_database_size(action: PostgresDatabaseSize, ctx: ActionContext) -> StepResult:
    async with _session(ctx) as pg:
        size = await pg.database_size()
    mib = size / MIB
    failed = _exceeds(mib, action.threshold)
    message = f"Database {pg.database} uses {mib:.1f} MiB"
    if action.threshold is not None:
        above = "above" if failed else "within"
        message += f", {above} the threshold of {action.threshold:g} MiB"
    return StepResult(ok=not failed, message=message + ".", findings={"sizeMiB": round(mib, 3)})


@executor(PostgresTerminateBackends)
async def postgres_terminate_backends(
    action: PostgresTerminateBackends, ctx: ActionContext
) -> StepResult:
    """Terminate client sessions whose query runs longer than ``olderThan``.

    Never the operator's own backend, never background workers or idle sessions, never
    sessions of another database. Running it again finds nothing left to terminate.
    """
    older_than = duration_param(action.older_than)
    wait = min(5.0, ctx.timeout / 4)
    terminated: list[int] = []
    pending: list[int] = []
    failures: list[str] = []
    async with _session(ctx) as pg:
        report = await pg.long_queries(older_than)
        for session in report.sessions:
            try:
                outcome = await pg.terminate_if_still_long(session.pid, older_than, wait)
            except PostgresError as exc:
                failures.append(str(exc))
                continue
            if outcome == "terminated":
                terminated.append(session.pid)
            elif outcome == "pending":
                pending.append(session.pid)
    done = len(terminated) + len(pending)
    if not report.sessions:
        message = (
            f"No backend in {pg.database} has been running a query longer than"
            f" {action.older_than}; nothing to terminate"
        )
    else:
        pids = ", ".join(map(str, terminated + pending)) or "none"
        message = (
            f"Terminated {_plural(done, 'backend')} in {pg.database} running longer than"
            f" {action.older_than} (pid {pids})"
        )
        if pending:
            message += f"; {len(pending)} had not exited after {format_duration(wait)}"
        if failures:
            message += f"; {len(failures)} could not be terminated: {failures[0]}"
    output = None
    if report.sessions:
        state = {pid: "terminated" for pid in terminated} | {pid: "signalled" for pid in pending}
        output = table(
            ["PID", "USER", "RUNNING", "RESULT", "QUERY"],
            [
                [s.pid, s.user, _age(s.seconds), state.get(s.pid, "skipped"), short_query(s.query)]
                for s in report.sessions
            ],
        )
    return StepResult(
        ok=not failures,
        message=message + ".",
        findings={"terminated": done, "candidates": len(report.sessions), "failed": len(failures)},
        output=output,
    )


@executor(PostgresMaintenance)
async def postgres_maintenance(action: PostgresMaintenance, ctx: ActionContext) -> StepResult:
    async with _session(ctx) as pg:
        start = time.perf_counter()
        if action.operation == MaintenanceOperation.REINDEX:
            verb = "REINDEX"
            await pg.reindex(action.table)
        else:
            verb = "ANALYZE"
            await pg.analyze(action.table)
        elapsed = time.perf_counter() - start
    what = f"TABLE {action.table}" if action.table else f"DATABASE {pg.database}"
    if verb == "ANALYZE":
        what = action.table or f"of database {pg.database}"
    return StepResult(
        ok=True,
        message=f"{verb} {what} completed in {format_duration(elapsed)}.",
        findings={"durationMs": round(elapsed * 1000, 1)},
    )


@executor(PostgresCreateIndex)
async def postgres_create_index(action: PostgresCreateIndex, ctx: ActionContext) -> StepResult:
    """``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` then ``ANALYZE`` of the table.

    Idempotent: an existing valid index of the same columns is kept; an invalid one left by an
    interrupted earlier run is dropped and built again; a different relation of that name is
    an error rather than a silent skip.
    """
    name, tbl, columns = action.index_name, action.table, tuple(action.columns)
    spec = f"{name} on {tbl} ({', '.join(columns)})"
    async with _session(ctx) as pg:
        start = time.perf_counter()
        existing = await pg.index_info(tbl, name)
        if existing.exists and not existing.is_index:
            raise ActionError(f"cannot create index {name}: a relation of that name exists")
        if existing.exists and not existing.on_table:
            raise ActionError(
                f"cannot create index {name}: it already exists on table {existing.table}"
            )
        if existing.exists and existing.columns != columns:
            raise ActionError(
                f"cannot create index {spec}: it already exists with another definition:"
                f" {existing.definition}"
            )
        rebuilt = existing.exists and not existing.valid
        if rebuilt:
            await pg.drop_index_concurrently(tbl, name)
        created = rebuilt or not existing.exists
        if created:
            await pg.create_index_concurrently(tbl, columns, name)
        await pg.analyze(tbl)
        after = await pg.index_info(tbl, name)
        elapsed = time.perf_counter() - start
    if not (after.exists and after.valid):
        raise ActionError(f"index {spec} is not valid after CREATE INDEX CONCURRENTLY")
    if not created:
        message = f"Index {spec} already exists and is valid; analyzed {tbl}."
    elif rebuilt:
        message = f"Rebuilt invalid index {spec} concurrently and analyzed {tbl}."
    else:
        message = f"Created index {spec} concurrently and analyzed {tbl}."
    return StepResult(
        ok=True,
        message=message,
        findings={
            "created": created,
            "rebuiltInvalid": rebuilt,
            "durationMs": round(elapsed * 1000, 1),
        },
        output=after.definition,
    )
