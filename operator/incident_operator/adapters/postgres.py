"""PostgreSQL at the edge: one short-lived psycopg ``AsyncConnection`` per runbook step.

Every psycopg call of the operator lives here. The connection is in autocommit mode (the
maintenance statements cannot run in a transaction block) with a ``statement_timeout`` and a
``connect_timeout`` derived from the step's timeout. Driver exceptions never leave this module:
they become :class:`PostgresError`, whose message names the server (host:port/database), the
error class and a short reason, and never the password.

The queries read ``pg_stat_activity``, ``pg_locks`` and ``pg_stat_statements`` of the
*connected database only*: a runbook's target is a database, and the actions must neither
report nor terminate sessions of other databases of the same cluster. PostgreSQL 14 or newer
is required (``pg_locks.waitstart``, ``pg_terminate_backend(pid, timeout)``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row

APPLICATION_NAME = "incident-operator"
TerminateOutcome = Literal["terminated", "pending", "gone"]
Query = str | sql.SQL | sql.Composed
MIN_SERVER_VERSION = 140000


class PostgresError(Exception):
    """A PostgreSQL operation failed; the message is safe to show (no secrets)."""


class StatementStatsUnavailable(PostgresError):
    """pg_stat_statements is not installed in the database or not preloaded."""


@dataclasses.dataclass(frozen=True)
class PostgresConnInfo:
    host: str
    port: int
    dbname: str
    user: str
    password: str | None = dataclasses.field(default=None, repr=False)
    sslmode: str = "prefer"
    #: PEM CA certificate(s) the server's certificate must chain to (``sslrootcert``).
    ca_pem: str | None = dataclasses.field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"


@dataclasses.dataclass(frozen=True)
class Session:
    """A non-idle client session of the connected database, from pg_stat_activity."""

    pid: int
    user: str
    state: str
    seconds: float
    query: str


@dataclasses.dataclass(frozen=True)
class LockWait:
    """An ungranted lock, with the sessions it waits for."""

    pid: int
    user: str
    locktype: str
    mode: str
    relation: str
    seconds: float
    blocked_by: tuple[int, ...]
    query: str


@dataclasses.dataclass(frozen=True)
class Statement:
    """One row of pg_stat_statements."""

    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    query: str


@dataclasses.dataclass(frozen=True)
class ActivityReport:
    sessions: list[Session]
    hidden: int
    """Client sessions of this database whose details the role may not see."""


@dataclasses.dataclass(frozen=True)
class IndexInfo:
    """What exists under an index name, in the schema of the table it belongs to."""

    exists: bool
    is_index: bool = False
    on_table: bool = False
    """The index belongs to the table asked about."""
    table: str = ""
    columns: tuple[str, ...] = ()
    valid: bool = False
    definition: str = ""


_NON_IDLE = """
    FROM pg_stat_activity
    WHERE datname = current_database()
      AND backend_type = 'client backend'
      AND pid <> pg_backend_pid()
      AND state IS NOT NULL AND state <> 'idle'
      AND query_start < now() - make_interval(secs => %(older)s)
"""


def _connect_reason(exc: psycopg.Error) -> str:
    """A short, secret-free reason for a failed connection attempt.

    libpq's messages do not contain the password, but they are not shown verbatim either:
    they are reduced to a known phrase.
    """
    text = str(exc).lower()
    for needle, reason in (
        ("password authentication failed", "authentication failed"),
        ("authentication failed", "authentication failed"),
        ("no password supplied", "the server requires a password"),
        ("does not exist", "the database or role does not exist"),
        ("no pg_hba.conf entry", "rejected by pg_hba.conf"),
        ("connection refused", "connection refused"),
        ("timeout", "connection timed out"),
        ("timed out", "connection timed out"),
        ("failed to resolve host", "host not found"),
        ("could not translate host name", "host not found"),
        ("too many connections", "too many connections"),
        ("the database system is", "the server is starting up or shutting down"),
        ("certificate", "the server's TLS certificate could not be verified"),
        ("does not support ssl", "the server does not offer TLS"),
        ("ssl", "TLS negotiation failed"),
    ):
        if needle in text:
            return reason
    return "connection failed"


@contextlib.contextmanager
def _root_certificate(info: PostgresConnInfo) -> Iterator[str | None]:
    """libpq's ``sslrootcert`` for the connection: the CA from the target's Secret in a file
    that exists only while connecting; ``system`` (the OS's CAs) for verify-full without
    one; else None (libpq's default)."""
    if info.ca_pem is None:
        yield "system" if info.sslmode == "verify-full" else None
        return
    handle, path = tempfile.mkstemp(prefix="incident-operator-ca-", suffix=".pem")
    try:
        with os.fdopen(handle, "w") as ca:
            ca.write(info.ca_pem)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


class PostgresClient:
    """The queries and statements the runbook actions need, on one connection."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], info: PostgresConnInfo) -> None:
        self._conn = conn
        self._info = info

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, info: PostgresConnInfo, timeout: float) -> AsyncIterator[PostgresClient]:
        """Connect with ``connect_timeout`` and ``statement_timeout`` of ``timeout`` seconds."""
        statement_ms = max(1, int(timeout * 1000))
        try:
            with _root_certificate(info) as rootcert:
                conn = await psycopg.AsyncConnection.connect(
                    host=info.host,
                    port=info.port,
                    dbname=info.dbname,
                    user=info.user,
                    password=info.password or None,
                    sslmode=info.sslmode,
                    connect_timeout=max(2, math.ceil(timeout)),
                    application_name=APPLICATION_NAME,
                    options=f"-c statement_timeout={statement_ms}",
                    autocommit=True,
                    sslrootcert=rootcert,  # None: not passed on (psycopg drops None values)
                )
        except psycopg.Error as exc:
            raise PostgresError(
                f"cannot connect to PostgreSQL {info.address} as {info.user}: "
                f"{_connect_reason(exc)} ({type(exc).__name__})"
            ) from None
        client = cls(conn, info)
        try:
            version = conn.info.server_version
            if version < MIN_SERVER_VERSION:
                raise PostgresError(
                    f"PostgreSQL {info.address} runs version {version // 10000}; "
                    "14 or newer is required"
                )
            yield client
        finally:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    @property
    def address(self) -> str:
        return self._info.address

    @property
    def user(self) -> str:
        return self._info.user

    @property
    def database(self) -> str:
        return self._info.dbname

    @property
    def server_version(self) -> str:
        num = self._conn.info.server_version
        return f"{num // 10000}.{num % 10000}"

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn driver exceptions into PostgresError with a safe message."""
        try:
            yield
        except pg_errors.QueryCanceled:
            raise PostgresError(
                f"{what} on {self.address} was cancelled: statement timeout (QueryCanceled)"
            ) from None
        except psycopg.OperationalError as exc:
            raise PostgresError(
                f"{what} on {self.address} failed: the connection was lost ({type(exc).__name__})"
            ) from None
        except psycopg.Error as exc:
            primary = exc.diag.message_primary or "error"
            raise PostgresError(
                f"{what} on {self.address} failed: {primary} ({type(exc).__name__})"
            ) from None

    async def _fetch(
        self, what: str, query: Query, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        with self._errors(what):
            async with self._conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query, params)
                if cur.description is None:
                    return []
                return await cur.fetchall()

    async def _run(self, what: str, query: Query) -> None:
        with self._errors(what):
            await self._conn.execute(query)

    # --- reads --------------------------------------------------------------------------------

    async def ping(self) -> float:
        """``SELECT 1``; the round trip in milliseconds."""
        start = time.perf_counter()
        await self._fetch("SELECT 1", "SELECT 1")
        return (time.perf_counter() - start) * 1000

    async def long_queries(self, older_than: float) -> ActivityReport:
        """Non-idle client sessions whose current query started more than ``older_than`` s ago.

        Idle sessions are never included; idle-in-transaction ones are (they hold locks).
        """
        rows = await self._fetch(
            "reading pg_stat_activity",
            "SELECT pid, usename AS user, state,"
            " extract(epoch FROM now() - query_start)::float8 AS seconds, query"
            + _NON_IDLE
            + " ORDER BY query_start",
            {"older": older_than},
        )
        hidden = await self._fetch(
            "reading pg_stat_activity",
            "SELECT count(*) AS n FROM pg_stat_activity"
            " WHERE datname = current_database() AND backend_type IS NULL",
        )
        return ActivityReport(
            sessions=[
                Session(
                    pid=row["pid"],
                    user=row["user"] or "",
                    state=row["state"],
                    seconds=float(row["seconds"]),
                    query=row["query"] or "",
                )
                for row in rows
            ],
            hidden=int(hidden[0]["n"]),
        )

    async def blocked_locks(self) -> list[LockWait]:
        """Ungranted locks requested by sessions of this database, longest wait first."""
        rows = await self._fetch(
            "reading pg_locks",
            """
            SELECT l.pid, coalesce(a.usename, '') AS user, l.locktype, l.mode,
                   coalesce(l.relation::regclass::text, '') AS relation,
                   coalesce(extract(epoch FROM clock_timestamp() - l.waitstart), 0)::float8
                       AS seconds,
                   pg_blocking_pids(l.pid) AS blocked_by,
                   coalesce(a.query, '') AS query
            FROM pg_locks l
            JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE NOT l.granted
              AND a.datname = current_database()
              AND l.pid <> pg_backend_pid()
            ORDER BY l.waitstart NULLS LAST, l.pid
            """,
        )
        return [
            LockWait(
                pid=row["pid"],
                user=row["user"],
                locktype=row["locktype"],
                mode=row["mode"],
                relation=row["relation"],
                seconds=float(row["seconds"]),
                blocked_by=tuple(row["blocked_by"] or ()),
                query=row["query"],
            )
            for row in rows
        ]

    async def top_statements(self, limit: int) -> list[Statement]:
        """Statements of this database by total execution time, from pg_stat_statements.

        Raises :class:`StatementStatsUnavailable` when the extension is not installed in
        this database or the library is not preloaded.
        """
        found = await self._fetch(
            "looking up pg_stat_statements",
            "SELECT n.nspname FROM pg_extension e"
            " JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'pg_stat_statements'",
        )
        if not found:
            raise StatementStatsUnavailable(
                f"the pg_stat_statements extension is not installed in database {self.database}"
            )
        view = sql.Identifier(found[0]["nspname"], "pg_stat_statements")
        query = sql.SQL(
            "SELECT calls, total_exec_time AS total_ms, mean_exec_time AS mean_ms, rows, query"
            " FROM {view}"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY total_exec_time DESC LIMIT %(limit)s"
        ).format(view=view)
        try:
            rows = await self._fetch("reading pg_stat_statements", query, {"limit": limit})
        except PostgresError as exc:
            if "shared_preload_libraries" in str(exc):
                raise StatementStatsUnavailable(
                    "pg_stat_statements is installed but not in shared_preload_libraries"
                ) from None
            raise
        return [
            Statement(
                calls=int(row["calls"]),
                total_ms=float(row["total_ms"]),
                mean_ms=float(row["mean_ms"]),
                rows=int(row["rows"]),
                query=row["query"] or "",
            )
            for row in rows
        ]

    async def database_size(self) -> int:
        """Size of the connected database in bytes."""
        rows = await self._fetch(
            "reading the database size", "SELECT pg_database_size(current_database()) AS size"
        )
        return int(rows[0]["size"])

    async def index_info(self, table: str, index: str) -> IndexInfo:
        """What ``index`` names in the schema of ``table``; PostgresError if no such table."""
        tables = await self._fetch(
            "looking up the table",
            "SELECT c.oid, c.relnamespace FROM pg_class c"
            " WHERE c.oid = to_regclass(quote_ident(%(table)s)) AND c.relkind IN ('r', 'p', 'm')",
            {"table": table},
        )
        if not tables:
            raise PostgresError(f"table {table} does not exist in database {self.database}")
        rows = await self._fetch(
            "looking up the index",
            """
            SELECT c.relkind = 'i' OR c.relkind = 'I' AS is_index,
                   coalesce(i.indrelid = %(table_oid)s, false) AS on_table,
                   coalesce(i.indrelid::regclass::text, '') AS table,
                   coalesce(i.indisvalid, false) AS valid,
                   coalesce(pg_get_indexdef(i.indexrelid), '') AS definition,
                   coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                             JOIN pg_attribute a
                               ON a.attrelid = i.indrelid AND a.attnum = k.attnum),
                            '{}') AS columns
            FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
            WHERE c.relname = %(index)s AND c.relnamespace = %(namespace)s
            """,
            {
                "index": index,
                "namespace": tables[0]["relnamespace"],
                "table_oid": tables[0]["oid"],
            },
        )
        if not rows:
            return IndexInfo(exists=False)
        row = rows[0]
        return IndexInfo(
            exists=True,
            is_index=bool(row["is_index"]),
            on_table=bool(row["on_table"]),
            table=row["table"],
            columns=tuple(row["columns"]),
            valid=bool(row["valid"]),
            definition=row["definition"],
        )

    # --- changes ------------------------------------------------------------------------------

    async def terminate_if_still_long(
        self, pid: int, older_than: float, wait: float
    ) -> TerminateOutcome:
        """``pg_terminate_backend`` of ``pid`` if it is still a long query of this database.

        The condition is checked again in the same statement, so a session whose query ended
        in the meantime (or a reused pid) is left alone (``"gone"``). ``"terminated"`` means
        the backend exited within ``wait`` seconds, ``"pending"`` that it was signalled but
        had not exited yet.
        """
        rows = await self._fetch(
            f"terminating backend {pid}",
            "SELECT pg_terminate_backend(pid, %(wait_ms)s) AS done"
            + _NON_IDLE
            + " AND pid = %(pid)s",
            {"older": older_than, "pid": pid, "wait_ms": max(1, int(wait * 1000))},
        )
        if not rows:
            return "gone"
        return "terminated" if rows[0]["done"] else "pending"

    async def reindex(self, table: str | None) -> None:
        if table is None:
            stmt = sql.SQL("REINDEX DATABASE {}").format(sql.Identifier(self.database))
        else:
            stmt = sql.SQL("REINDEX TABLE {}").format(sql.Identifier(table))
        await self._run("REINDEX", stmt)

    async def analyze(self, table: str | None) -> None:
        if table is None:
            await self._run("ANALYZE", sql.SQL("ANALYZE"))
        else:
            await self._run("ANALYZE", sql.SQL("ANALYZE {}").format(sql.Identifier(table)))

    async def drop_index_concurrently(self, table: str, index: str) -> None:
        """Drop ``index`` from the schema of ``table`` (used for a leftover invalid index)."""
        rows = await self._fetch(
            "looking up the schema",
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass(quote_ident(%(table)s))",
            {"table": table},
        )
        if not rows:
            raise PostgresError(f"table {table} does not exist in database {self.database}")
        name = sql.Identifier(rows[0]["nspname"], index)
        await self._run(
            "DROP INDEX CONCURRENTLY", sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(name)
        )

    async def create_index_concurrently(
        self, table: str, columns: Sequence[str], index: str
    ) -> None:
        create = "CREATE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {table} ({cols})"
        stmt = sql.SQL(create).format(
            index=sql.Identifier(index),
            table=sql.Identifier(table),
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        )
        await self._run("CREATE INDEX CONCURRENTLY", stmt)
