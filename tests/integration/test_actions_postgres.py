"""PostgreSQL executors against a real PostgreSQL 15 (hack/services-up.sh), no mocks.

Every test that creates sessions, locks, tables or indexes does it in a database of its own
(``pg_database``), so tests never see or terminate each other's sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import traceback
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from incident_operator.actions import postgres as pg_actions
from incident_operator.actions.base import ActionError, StepResult, run_action
from incident_operator.models.actions import (
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
from incident_operator.models.runbook import Targets
from tests.fixtures.services import (
    PG_SECRET,
    DictSecretReader,
    PgFixture,
    closed_port,
    make_ctx,
    poll_until,
    unique_name,
)

pytestmark = pytest.mark.services

SLEEP = "SELECT pg_sleep(600) /* incident-operator test: long query */"


async def _start(conn: psycopg.AsyncConnection[Any], statement: str) -> asyncio.Task[Any]:
    """Run ``statement`` on ``conn`` in the background (it blocks until cancelled)."""
    return asyncio.create_task(conn.execute(statement.encode()))


async def _cleanup(task: asyncio.Task[Any], *conns: psycopg.AsyncConnection[Any]) -> None:
    for conn in conns:
        if not conn.closed:
            await conn.cancel_safe()
    with contextlib.suppress(psycopg.Error, asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(task, 10)
    for conn in conns:
        await conn.close()


# --- connection ----------------------------------------------------------------------------


async def test_ping_answers_with_latency_and_version(pg_target: PgFixture) -> None:
    result = await run_action(PostgresPing(type="postgresPing"), pg_target.ctx())

    assert result.ok
    assert result.findings["serverVersion"].startswith("15.")  # type: ignore[union-attr]
    assert 0 < result.findings["latencyMs"] < 5000  # type: ignore[operator]
    assert f"{pg_target.target.host}:{pg_target.target.port}/retail" in result.message
    assert pg_target.secrets.reads == [("incidents", "retail-db", "password")]


async def test_missing_target_is_a_clear_action_error(pg_target: PgFixture) -> None:
    ctx = make_ctx(Targets(), pg_target.secrets)
    with pytest.raises(ActionError, match=r"^runbook has no postgres target$"):
        await run_action(PostgresPing(type="postgresPing"), ctx)


async def test_missing_secret_is_a_clear_action_error(pg_target: PgFixture) -> None:
    ctx = make_ctx(Targets(postgres=pg_target.target), DictSecretReader())
    with pytest.raises(ActionError, match=r"^secret incidents/retail-db has no key password$"):
        await run_action(PostgresPing(type="postgresPing"), ctx)


async def test_wrong_password_never_leaks(
    pg_target: PgFixture, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = f"wrong-{secrets.token_hex(12)}"
    secrets_ = DictSecretReader().put(pg_target.target.password_secret_ref, wrong)  # type: ignore[arg-type]
    ctx = make_ctx(Targets(postgres=pg_target.target), secrets_)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ActionError) as caught:
        await run_action(PostgresPing(type="postgresPing"), ctx)

    exc = caught.value
    text = "".join(traceback.format_exception(exc))
    assert "authentication failed" in str(exc)
    assert f"{pg_target.target.host}:{pg_target.target.port}" in str(exc)
    assert "OperationalError" in str(exc)
    assert wrong not in text and wrong not in repr(exc)
    assert exc.__cause__ is None and exc.__suppress_context__
    assert wrong not in caplog.text
    # The real password is not in the message either.
    assert pg_target.password not in text


async def test_unreachable_server_is_a_short_safe_error(pg_target: PgFixture) -> None:
    port = closed_port()
    target = pg_target.target.model_copy(update={"port": port})
    ctx = make_ctx(Targets(postgres=target), pg_target.secrets, timeout=3)

    with pytest.raises(ActionError) as caught:
        await run_action(PostgresLongQueries(type="postgresLongQueries"), ctx)

    message = str(caught.value)
    assert f"127.0.0.1:{port}/retail" in message
    assert "connection refused" in message
    assert pg_target.password not in message
    assert len(message) < 200


async def test_statement_timeout_becomes_an_action_error(pg_database: PgFixture) -> None:
    pg_database.query("CREATE TABLE orders (id int)")
    holder = await pg_database.connect(autocommit=False)
    await holder.execute(b"LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    try:
        action = PostgresMaintenance(
            type="postgresMaintenance", operation=MaintenanceOperation.ANALYZE, table="orders"
        )
        with pytest.raises(ActionError, match="statement timeout"):
            await run_action(action, pg_database.ctx(timeout=1))
    finally:
        await holder.rollback()
        await holder.close()


# --- long queries and termination ------------------------------------------------------------


async def test_long_query_is_found_then_terminated(
    pg_database_factory: Callable[..., PgFixture],
) -> None:
    db = pg_database_factory()
    other_db = pg_database_factory()
    victim = await db.connect()
    victim_pid = victim.info.backend_pid  # reads 0 once the connection is gone
    bystander = await other_db.connect()
    victim_task = await _start(victim, SLEEP)
    bystander_task = await _start(bystander, SLEEP)
    try:
        find = PostgresLongQueries(type="postgresLongQueries", older_than="1s", threshold=0)

        async def found() -> StepResult | None:
            result = await run_action(find, db.ctx())
            return result if result.findings["longQueries"] else None

        result = await poll_until(found, 20, interval=0.2, what="the long query to show")
        assert not result.ok  # one long query, threshold 0
        assert result.findings["longQueries"] == 1  # the other database's session is not counted
        assert result.findings["longestSeconds"] >= 1  # type: ignore[operator]
        assert result.output is not None
        assert str(victim_pid) in result.output
        assert "pg_sleep(600)" in result.output
        assert "above the threshold of 0" in result.message
        relaxed = await run_action(find.model_copy(update={"threshold": 5}), db.ctx())
        assert relaxed.ok and relaxed.findings["longQueries"] == 1

        terminate = PostgresTerminateBackends(type="postgresTerminateBackends", older_than="1s")
        result = await run_action(terminate, db.ctx())

        assert result.ok, result.message
        assert result.findings["terminated"] == 1
        assert f"(pid {victim_pid})" in result.message
        with pytest.raises(psycopg.OperationalError) as killed:
            await asyncio.wait_for(victim_task, 10)
        assert isinstance(killed.value, psycopg.errors.AdminShutdown) or "terminat" in str(
            killed.value
        )
        # The session in the other database is untouched and still running.
        assert not bystander_task.done()

        again = await run_action(terminate, db.ctx())
        assert again.ok and again.findings["terminated"] == 0
        assert "nothing to terminate" in again.message
        after = await run_action(find, db.ctx())
        assert after.ok and after.findings["longQueries"] == 0
    finally:
        await _cleanup(victim_task, victim)
        await _cleanup(bystander_task, bystander)


async def test_terminate_spares_idle_sessions_and_its_own_backend(pg_database: PgFixture) -> None:
    idle = await pg_database.connect()
    idle_in_tx = await pg_database.connect(autocommit=False)
    idle_in_tx_pid = idle_in_tx.info.backend_pid
    await idle.execute(b"SELECT 1")
    await idle_in_tx.execute(b"SELECT 1")  # opens a transaction, then sits idle in it
    try:
        # "0s": every non-idle session qualifies, including the executor's own backend.
        terminate = PostgresTerminateBackends(type="postgresTerminateBackends", older_than="0s")

        await poll_until(
            lambda: pg_database.query(
                "SELECT 1 FROM pg_stat_activity"
                f" WHERE pid = {idle_in_tx_pid} AND state = 'idle in transaction'"
            ),
            what="the idle-in-transaction session",
        )
        result = await run_action(terminate, pg_database.ctx())

        assert result.ok, result.message
        # Only the idle-in-transaction session goes; the executor did not kill itself.
        assert result.findings["terminated"] == 1
        assert f"(pid {idle_in_tx_pid})" in result.message
        assert (await (await idle.execute(b"SELECT 42")).fetchone()) == (42,)
        with pytest.raises(psycopg.OperationalError):
            await idle_in_tx.execute(b"SELECT 1")
    finally:
        await idle.close()
        await idle_in_tx.close()


async def test_sessions_of_other_roles_are_reported_hidden_not_touched(
    pg_database: PgFixture,
) -> None:
    admin = await psycopg.AsyncConnection.connect(
        **pg_database.conninfo(superuser=True), autocommit=True
    )
    task = await _start(admin, SLEEP)
    try:
        find = PostgresLongQueries(type="postgresLongQueries", older_than="1s", threshold=0)

        async def hidden() -> StepResult | None:
            result = await run_action(find, pg_database.ctx())
            return result if result.findings["hiddenSessions"] else None

        result = await poll_until(hidden, what="the superuser session")
        assert result.ok and result.findings["longQueries"] == 0
        assert result.findings["hiddenSessions"] == 1
        assert "1 session of other roles is not visible" in result.message
        assert "grant pg_read_all_stats to inventory" in result.message

        terminate = PostgresTerminateBackends(type="postgresTerminateBackends", older_than="1s")
        done = await run_action(terminate, pg_database.ctx())
        assert done.ok and done.findings["terminated"] == 0
        assert not task.done()
    finally:
        await _cleanup(task, admin)


async def test_terminate_reports_sessions_it_may_not_terminate(pg_database: PgFixture) -> None:
    """A monitoring role sees every session but may not signal a superuser's backend."""
    role, password = unique_name("monitor"), secrets.token_hex(12)
    pg_database.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE pg_read_all_stats")
    admin = await psycopg.AsyncConnection.connect(
        **pg_database.conninfo(superuser=True), autocommit=True
    )
    admin_pid = admin.info.backend_pid
    task = await _start(admin, SLEEP)
    try:
        target = pg_database.target.model_copy(update={"user": role})
        secrets_ = DictSecretReader().put(PG_SECRET, password)
        ctx = make_ctx(Targets(postgres=target), secrets_)
        find = PostgresLongQueries(type="postgresLongQueries", older_than="1s")

        async def visible() -> StepResult | None:
            result = await run_action(find, ctx)
            return result if result.findings["longQueries"] else None

        seen = await poll_until(visible, what="the superuser's long query")
        assert seen.output is not None and f"{admin_pid}  postgres" in seen.output

        result = await run_action(
            PostgresTerminateBackends(type="postgresTerminateBackends", older_than="1s"), ctx
        )

        assert not result.ok
        assert result.findings == {"terminated": 0, "candidates": 1, "failed": 1}
        assert "1 could not be terminated" in result.message
        assert "must be a superuser to terminate superuser process" in result.message
        assert password not in result.message
        assert not task.done()  # still running
    finally:
        await _cleanup(task, admin)
        pg_database.admin(f"DROP ROLE IF EXISTS {role}")


async def test_no_long_queries_is_ok_without_output(pg_database: PgFixture) -> None:
    result = await run_action(
        PostgresLongQueries(type="postgresLongQueries", older_than="10m", threshold=0),
        pg_database.ctx(),
    )
    assert result.ok
    assert result.findings["longQueries"] == 0
    assert result.output is None
    assert result.message.startswith("No query in")


# --- locks -----------------------------------------------------------------------------------


async def test_blocked_lock_is_found(pg_database: PgFixture) -> None:
    pg_database.query("CREATE TABLE inventory (sku text PRIMARY KEY, qty int)")
    holder = await pg_database.connect(autocommit=False)
    waiter = await pg_database.connect()
    holder_pid, waiter_pid = holder.info.backend_pid, waiter.info.backend_pid
    await holder.execute(b"LOCK TABLE inventory IN ACCESS EXCLUSIVE MODE")
    waiting = await _start(waiter, "SELECT count(*) FROM inventory")
    try:
        action = PostgresBlockedLocks(type="postgresBlockedLocks", threshold=0)

        async def blocked() -> StepResult | None:
            result = await run_action(action, pg_database.ctx())
            return result if result.findings["blockedLocks"] else None

        result = await poll_until(blocked, 15, what="the blocked lock")

        assert not result.ok
        assert result.findings["blockedLocks"] == 1
        assert f"blocked by pid {holder_pid}" in result.message
        assert result.output is not None
        assert "AccessShareLock" in result.output
        assert "inventory" in result.output
        assert str(waiter_pid) in result.output
        assert not waiting.done()

        await holder.rollback()
        await asyncio.wait_for(waiting, 10)
        cleared = await run_action(action, pg_database.ctx())
        assert cleared.ok and cleared.findings["blockedLocks"] == 0
        assert cleared.message == f"No session in {pg_database.database} is waiting for a lock."
    finally:
        await _cleanup(waiting, holder, waiter)


# --- statements and size ----------------------------------------------------------------------


async def test_top_statements_with_pg_stat_statements(
    pg_database_factory: Callable[..., PgFixture],
) -> None:
    db = pg_database_factory(extensions=("pg_stat_statements",))
    db.query("CREATE TABLE sales (id int, amount numeric)")
    db.query("INSERT INTO sales SELECT g, g * 1.5 FROM generate_series(1, 20000) g")
    for _ in range(3):
        db.query("SELECT sum(amount) FROM sales WHERE amount > 'NaN'::numeric OR id > 0")

    result = await run_action(
        PostgresTopStatements(type="postgresTopStatements", limit=5), db.ctx()
    )

    assert result.ok
    assert result.findings["pgStatStatements"] is True
    assert 1 <= result.findings["statements"] <= 5  # type: ignore[operator]
    assert result.findings["topTotalMs"] > 0  # type: ignore[operator]
    assert result.output is not None
    assert "sum(amount) FROM sales" in result.output
    assert "CALLS" in result.output.splitlines()[0]


async def test_top_statements_without_the_extension_is_a_clear_finding(
    pg_database: PgFixture,
) -> None:
    extension = "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
    assert pg_database.query(extension) == []

    result = await run_action(
        PostgresTopStatements(type="postgresTopStatements"), pg_database.ctx()
    )

    assert result.ok
    assert result.findings == {"pgStatStatements": False, "statements": 0}
    assert "not installed" in result.message
    assert "CREATE EXTENSION pg_stat_statements" in result.message


async def test_database_size_against_threshold(pg_database: PgFixture) -> None:
    pg_database.query(
        "CREATE TABLE blobs AS SELECT repeat('x', 1000) AS b FROM generate_series(1, 3000)"
    )

    small = await run_action(
        PostgresDatabaseSize(type="postgresDatabaseSize", threshold=1), pg_database.ctx()
    )
    large = await run_action(
        PostgresDatabaseSize(type="postgresDatabaseSize", threshold=100_000), pg_database.ctx()
    )
    bare = await run_action(PostgresDatabaseSize(type="postgresDatabaseSize"), pg_database.ctx())

    size = pg_database.query("SELECT pg_database_size(current_database())")[0][0] / 2**20
    assert not small.ok and "above the threshold of 1 MiB" in small.message
    assert large.ok and "within the threshold" in large.message
    assert bare.ok
    assert small.findings["sizeMiB"] == pytest.approx(size, rel=0.05)


# --- maintenance ------------------------------------------------------------------------------


async def test_reindex_database_and_table(pg_database: PgFixture) -> None:
    pg_database.query("CREATE TABLE stock (sku text PRIMARY KEY, qty int)")
    pg_database.query("INSERT INTO stock SELECT 'sku-' || g, g FROM generate_series(1, 500) g")
    before = pg_database.query("SELECT pg_relation_filenode('stock_pkey')")[0][0]

    table = await run_action(
        PostgresMaintenance(
            type="postgresMaintenance", operation=MaintenanceOperation.REINDEX, table="stock"
        ),
        pg_database.ctx(),
    )
    assert table.ok, table.message
    assert table.message.startswith("REINDEX TABLE stock completed in")
    rebuilt = pg_database.query("SELECT pg_relation_filenode('stock_pkey')")[0][0]
    assert rebuilt != before  # a new index file: it really was rebuilt

    database = await run_action(
        PostgresMaintenance(type="postgresMaintenance", operation=MaintenanceOperation.REINDEX),
        pg_database.ctx(),
    )
    assert database.ok, database.message
    assert database.message.startswith(f"REINDEX DATABASE {pg_database.database} completed")
    assert pg_database.query("SELECT pg_relation_filenode('stock_pkey')")[0][0] != rebuilt


async def test_analyze_table_and_database(pg_database: PgFixture) -> None:
    pg_database.query("CREATE TABLE items (id int, name text)")
    pg_database.query("INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 1000) g")
    assert pg_database.query("SELECT count(*) FROM pg_stats WHERE tablename = 'items'") == [(0,)]

    result = await run_action(
        PostgresMaintenance(
            type="postgresMaintenance", operation=MaintenanceOperation.ANALYZE, table="items"
        ),
        pg_database.ctx(),
    )
    assert result.ok
    assert result.message.startswith("ANALYZE items completed in")
    assert pg_database.query("SELECT count(*) FROM pg_stats WHERE tablename = 'items'") == [(2,)]
    assert pg_database.query("SELECT reltuples FROM pg_class WHERE relname = 'items'") == [(1000,)]

    everything = await run_action(
        PostgresMaintenance(type="postgresMaintenance", operation=MaintenanceOperation.ANALYZE),
        pg_database.ctx(),
    )
    assert everything.ok
    assert f"of database {pg_database.database}" in everything.message


async def test_maintenance_of_a_missing_table_is_an_action_error(pg_database: PgFixture) -> None:
    action = PostgresMaintenance(
        type="postgresMaintenance", operation=MaintenanceOperation.REINDEX, table="nope"
    )
    with pytest.raises(ActionError, match='relation "nope" does not exist'):
        await run_action(action, pg_database.ctx())


async def test_create_index_concurrently_is_idempotent(pg_database: PgFixture) -> None:
    pg_database.query("CREATE TABLE inventory (id serial PRIMARY KEY, sku text, store int)")
    pg_database.query(
        "INSERT INTO inventory (sku, store)"
        " SELECT 'sku-' || g, g % 7 FROM generate_series(1, 2000) g"
    )
    action = PostgresCreateIndex(
        type="postgresCreateIndex",
        table="inventory",
        columns=["sku", "store"],
        index_name="idx_inventory_sku",
    )

    first = await run_action(action, pg_database.ctx())

    assert first.ok, first.message
    assert first.findings["created"] is True
    assert first.message == (
        "Created index idx_inventory_sku on inventory (sku, store) concurrently"
        " and analyzed inventory."
    )
    rows = pg_database.query(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'inventory'"
        " AND indexname = 'idx_inventory_sku'"
    )
    assert rows == [
        ("CREATE INDEX idx_inventory_sku ON public.inventory USING btree (sku, store)",)
    ]
    assert pg_database.query(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_inventory_sku'::regclass"
    ) == [(True,)]
    assert pg_database.query("SELECT reltuples FROM pg_class WHERE relname = 'inventory'") == [
        (2000,)
    ]

    second = await run_action(action, pg_database.ctx())

    assert second.ok
    assert second.findings["created"] is False
    assert "already exists and is valid" in second.message
    assert pg_database.query("SELECT count(*) FROM pg_indexes WHERE tablename = 'inventory'") == [
        (2,)
    ]


async def test_create_index_rebuilds_an_invalid_leftover(pg_database: PgFixture) -> None:
    pg_database.query("CREATE TABLE orders (id int, customer int)")
    pg_database.query("CREATE INDEX idx_orders_customer ON orders (customer)")
    # What an interrupted CREATE INDEX CONCURRENTLY leaves behind: an invalid index.
    pg_database.admin(
        "UPDATE pg_index SET indisvalid = false"
        " WHERE indexrelid = 'public.idx_orders_customer'::regclass",
        dbname=pg_database.database,
    )
    action = PostgresCreateIndex(
        type="postgresCreateIndex",
        table="orders",
        columns=["customer"],
        index_name="idx_orders_customer",
    )

    result = await run_action(action, pg_database.ctx())

    assert result.ok
    assert result.findings["rebuiltInvalid"] is True and result.findings["created"] is True
    assert pg_database.query(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_orders_customer'::regclass"
    ) == [(True,)]


async def test_create_index_refuses_a_conflicting_definition(pg_database: PgFixture) -> None:
    pg_database.query("CREATE TABLE products (id int, sku text, name text)")
    pg_database.query("CREATE INDEX idx_products ON products (name)")
    action = PostgresCreateIndex(
        type="postgresCreateIndex", table="products", columns=["sku"], index_name="idx_products"
    )
    with pytest.raises(ActionError, match="already exists with another definition"):
        await run_action(action, pg_database.ctx())

    missing = action.model_copy(update={"table": "nope", "index_name": "idx_nope"})
    with pytest.raises(ActionError, match="table nope does not exist"):
        await run_action(missing, pg_database.ctx())


def test_short_query_redacts_literals() -> None:
    text = "UPDATE users\n   SET password = 'hunter''2', token = 'abc'  WHERE id = 7"
    assert pg_actions.short_query(text, 200) == (
        "UPDATE users SET password = '?', token = '?' WHERE id = 7"
    )
    assert pg_actions.short_query("SELECT 'unterminated", 200) == "SELECT '?'"
    assert pg_actions.short_query("SELECT " + "x" * 100, 20) == "SELECT " + "x" * 12 + "…"
