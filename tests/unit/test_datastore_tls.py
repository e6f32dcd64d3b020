"""TLS to the data stores: verify-full where a CA is configured, and TLS for Redis at all.

PostgreSQL's ``sslmode`` defaulted to ``prefer`` (TLS if offered, unverified, else plain text)
and Redis had no TLS option. Now a PostgreSQL target with ``caSecretRef`` defaults to
``verify-full`` against that CA, and a Redis target has ``tls`` (verified against
``caSecretRef``, else the system's CAs). Targets without a CA behave as before, and local
tests say ``sslmode: disable`` where they need plain text.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest

from incident_operator.actions import catalog  # noqa: F401  (registers the executors)
from incident_operator.actions.base import ActionContext, ActionError, run_action
from incident_operator.adapters import redis as redis_adapter
from incident_operator.models.actions import PostgresPing, RedisDbSize
from incident_operator.models.base import SecretKeyRef
from incident_operator.models.runbook import PostgresTarget, RedisTarget, Targets
from tests.fixtures.services import DictSecretReader

CA = SecretKeyRef(name="db-ca", key="ca.crt")
PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def _pg(**fields: Any) -> PostgresTarget:
    return PostgresTarget.model_validate(
        {"host": "db.example", "database": "app", "user": "ops", **fields}
    )


def test_postgres_with_a_ca_defaults_to_verify_full() -> None:
    assert _pg(caSecretRef=CA.model_dump()).effective_sslmode() == "verify-full"
    assert _pg().effective_sslmode() == "prefer"  # no CA: as before
    assert _pg(caSecretRef=CA.model_dump(), sslmode="verify-ca").effective_sslmode() == "verify-ca"
    assert _pg(sslmode="disable").effective_sslmode() == "disable"


def test_redis_has_a_tls_option() -> None:
    assert not RedisTarget(host="cache").uses_tls()
    assert RedisTarget.model_validate({"host": "cache", "tls": True}).uses_tls()
    assert RedisTarget.model_validate({"host": "cache", "caSecretRef": CA.model_dump()}).uses_tls()


def _ctx(targets: Targets) -> ActionContext:
    return ActionContext(
        namespace="n",
        incident="i",
        targets=targets,
        secrets=DictSecretReader().put(CA, PEM),
        clients={},
        timeout=5.0,
    )


async def test_the_postgres_connection_verifies_against_the_ca_from_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    async def connect(**kwargs: Any) -> Any:
        seen.update(kwargs)
        with open(kwargs["sslrootcert"]) as ca:
            seen["pem"] = ca.read()
        raise psycopg.OperationalError("certificate verify failed")

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", connect)
    target = _pg(caSecretRef=CA.model_dump())
    with pytest.raises(ActionError, match="TLS"):
        await run_action(PostgresPing(type="postgresPing"), _ctx(Targets(postgres=target)))
    assert seen["sslmode"] == "verify-full" and seen["pem"] == PEM
    assert not os.path.exists(seen["sslrootcert"])  # the file lived only for the connect


async def test_postgres_verify_full_without_a_ca_uses_the_system_roots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    async def connect(**kwargs: Any) -> Any:
        seen.update(kwargs)
        raise psycopg.OperationalError("no")

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", connect)
    target = _pg(sslmode="verify-full")
    with pytest.raises(ActionError):
        await run_action(PostgresPing(type="postgresPing"), _ctx(Targets(postgres=target)))
    assert seen["sslmode"] == "verify-full" and seen["sslrootcert"] == "system"


async def test_the_redis_connection_uses_tls_with_the_ca_from_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    class FakeRedis:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

        async def ping(self) -> bool:
            raise redis_adapter.redis_errors.ConnectionError("certificate verify failed")

        async def aclose(self) -> None:
            return None

    monkeypatch.setattr(redis_adapter.aioredis, "Redis", FakeRedis)
    target = RedisTarget.model_validate(
        {"host": "cache", "tls": True, "caSecretRef": CA.model_dump()}
    )
    with pytest.raises(ActionError):
        await run_action(RedisDbSize(type="redisDbSize"), _ctx(Targets(redis=target)))
    assert seen["ssl"] is True and seen["ssl_ca_data"] == PEM
    assert seen["ssl_cert_reqs"] == "required" and seen["ssl_check_hostname"] is True
