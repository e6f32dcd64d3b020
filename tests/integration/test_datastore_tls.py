"""TLS to the data stores against real servers on loopback.

Redis: a private ``redis-server`` that only speaks TLS, with a certificate for 127.0.0.1 from
a CA made for the test (``openssl``). The step connects when it trusts that CA and fails,
saying why, when it trusts another one or does not use TLS. PostgreSQL: the shared server
offers no TLS, so a target with a CA (verify-full by default) is refused rather than sent in
plain text, and one that says ``sslmode: disable`` connects as before.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from incident_operator.actions import catalog  # noqa: F401  (registers the executors)
from incident_operator.actions.base import ActionError, run_action
from incident_operator.models.actions import PostgresPing, RedisDbSize
from incident_operator.models.base import SecretKeyRef
from incident_operator.models.runbook import RedisTarget, Targets
from tests.fixtures.services import (
    DictSecretReader,
    PgFixture,
    closed_port,
    make_ctx,
    redis_process,
)

pytestmark = pytest.mark.services
pytest_plugins = ["tests.fixtures.services"]

CA = SecretKeyRef(name="cache-ca", key="ca.crt")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=directory,
    )  # fmt: skip


@contextlib.contextmanager
def _tls_redis() -> Iterator[tuple[int, Path]]:
    """A redis-server speaking only TLS on 127.0.0.1 (certificate for IP 127.0.0.1)."""
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("openssl") is None:
        pytest.fail("redis-server and openssl are needed (hack/bootstrap.sh installs them)")
    with tempfile.TemporaryDirectory(prefix="redis-tls-") as workdir:
        work = Path(workdir)
        _ca(work, "ca")
        _ca(work, "other-ca")
        (work / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=work,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.crt", cwd=work,
        )  # fmt: skip
        port = closed_port()
        proc = subprocess.Popen(
            [
                binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
                "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
                "--save", "", "--appendonly", "no", "--dir", workdir,
            ],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(
            host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(work / "ca.crt")
        )
        with redis_process(proc, client, f"the TLS redis-server on 127.0.0.1:{port}"):
            yield port, work


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[tuple[int, Path]]:
    with _tls_redis() as server:
        yield server


async def _dbsize(target: RedisTarget, ca_pem: str | None) -> str:
    secrets = DictSecretReader()
    if ca_pem is not None:
        secrets.put(CA, ca_pem)
    result = await run_action(
        RedisDbSize(type="redisDbSize"), make_ctx(Targets(redis=target), secrets, timeout=10)
    )
    assert result.ok, result.message
    return result.message


async def test_redis_over_tls_verified_against_the_ca(tls_redis: tuple[int, Path]) -> None:
    port, work = tls_redis
    target = RedisTarget.model_validate(
        {"host": "127.0.0.1", "port": port, "caSecretRef": CA.model_dump()}
    )
    assert "keys" in await _dbsize(target, (work / "ca.crt").read_text())


async def test_redis_tls_signed_by_another_ca_is_refused(tls_redis: tuple[int, Path]) -> None:
    port, work = tls_redis
    target = RedisTarget.model_validate(
        {"host": "127.0.0.1", "port": port, "tls": True, "caSecretRef": CA.model_dump()}
    )
    with pytest.raises(ActionError, match="TLS handshake failed"):
        await _dbsize(target, (work / "other-ca.crt").read_text())


async def test_redis_without_tls_cannot_talk_to_a_tls_port(tls_redis: tuple[int, Path]) -> None:
    port, _ = tls_redis
    with pytest.raises(ActionError, match="cannot connect to Redis"):
        await _dbsize(RedisTarget(host="127.0.0.1", port=port), None)


async def test_postgres_with_a_ca_never_falls_back_to_plain_text(
    pg_target: PgFixture, tls_redis: tuple[int, Path]
) -> None:
    """The shared server offers no TLS: verify-full (the default with a CA) refuses it."""
    with_ca = pg_target.target.model_copy(update={"sslmode": None, "ca_secret_ref": CA})
    assert with_ca.effective_sslmode() == "verify-full"
    ca_pem = (tls_redis[1] / "ca.crt").read_text()  # a real CA, as a Secret would hold it
    secrets = DictSecretReader(pg_target.secrets.values).put(CA, ca_pem)
    with pytest.raises(ActionError, match="cannot connect to PostgreSQL") as refused:
        await run_action(
            PostgresPing(type="postgresPing"), make_ctx(Targets(postgres=with_ca), secrets)
        )
    assert "the server does not offer TLS" in str(refused.value), refused.value
    plain = await run_action(PostgresPing(type="postgresPing"), pg_target.ctx())
    assert plain.ok and pg_target.target.sslmode == "disable"
