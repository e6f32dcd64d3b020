"""The install's permissions are exactly the README's table ("Authority and permissions").

``kubectl auth can-i --list`` of the operator's and the runbook's ServiceAccounts, minus what
every ServiceAccount may do, must equal the table's rows for each scope: a missing rule and a
surplus one both fail. The operator may do nothing in a namespace it does not watch.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from tests.fixtures.cluster import kubectl
from tests.fixtures.identity import OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, watch_namespace

pytestmark = pytest.mark.cluster
README = Path(__file__).resolve().parents[2] / "README.md"
Rules = set[tuple[str, str]]  # (resource as kubectl prints it, verb)


def _table() -> dict[tuple[str, str], Rules]:
    """(identity, scope) -> rules, from the README rows between the permission markers."""
    text = README.read_text()
    block = text[text.index("<!-- permissions:begin -->") : text.index("<!-- permissions:end -->")]
    table: dict[tuple[str, str], Rules] = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or cells[0] in ("identity", "---"):
            continue
        identity, scope, group, resources, verbs, _ = cells
        for resource in resources.split(", "):
            name, _, sub = resource.partition("/")
            printed = name if group == "core" else f"{name}.{group}"
            printed += f"/{sub}" if sub else ""
            for verb in verbs.split(", "):
                table.setdefault((identity, scope), set()).add((printed, verb))
    return table


def _can(user: str, namespace: str) -> Rules:
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}"]
    args = ["auth", "can-i", "--list", "-n", namespace, "--as", user]
    for group in [*groups, "system:authenticated"]:
        args += ["--as-group", group]
    rules: Rules = set()
    for line in kubectl(*args).stdout.splitlines()[1:]:
        found = re.match(r"^(\S+)\s+\[\]\s+\[\]\s+\[(.*)\]$", line.strip())
        if found:
            rules |= {(found.group(1), verb) for verb in found.group(2).split()}
    return rules


def _granted(user: str, namespace: str) -> Rules:
    """What ``user`` may do beyond another ServiceAccount of the same namespace."""
    nobody = f"system:serviceaccount:{user.split(':')[2]}:nobody-{uuid.uuid4().hex[:6]}"
    return _can(user, namespace) - _can(nobody, namespace)


@pytest.fixture
def watched(api_client: kubernetes.client.ApiClient, operator_kubeconfig: str) -> Iterator[str]:
    core = kubernetes.client.CoreV1Api(api_client)
    name = f"t-watched-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    watch_namespace(api_client, name)
    yield name
    core.delete_namespace(name)


OPERATOR = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"


def test_the_operator_in_a_watched_namespace(watched: str) -> None:
    assert _granted(OPERATOR, watched) == _table()[("operator", "watched namespaces")]


def test_the_operator_in_its_own_namespace(operator_kubeconfig: str) -> None:
    assert _granted(OPERATOR, OPERATOR_NAMESPACE) == _table()[("operator", "its namespace")]


def test_the_runbook_account(watched: str) -> None:
    runbook = f"system:serviceaccount:{watched}:incident-runbook"
    assert _granted(runbook, watched) == _table()[("runbook", "its namespace")]


def test_nothing_beyond_the_watched_namespaces(namespace: str, operator_kubeconfig: str) -> None:
    """A namespace the operator does not watch: no Secret, no exec, nothing at all; and
    since cluster-wide rules would show in every namespace, none exist either."""
    assert _granted(OPERATOR, namespace) == set()
    denied = kubectl(
        "auth", "can-i", "get", "secrets", "--all-namespaces", "--as", OPERATOR, check=False
    )
    assert denied.stdout.strip() == "no"
