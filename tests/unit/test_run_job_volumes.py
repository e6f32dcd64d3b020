"""runJob's volumes, network, pull policy and user: the model, the policy's hostPath
allowlist, and the Job manifest the adapter builds from them (no cluster needed)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from incident_operator.actions import jobs as job_actions
from incident_operator.actions.base import ActionContext, ActionError, run_action
from incident_operator.adapters.jobs import JobPod, JobVolume, job_body
from incident_operator.domain.policy import JobsPolicy, PolicyError, load_policy
from incident_operator.models.actions import RunJob
from incident_operator.models.runbook import Targets


def run_job(**params: Any) -> RunJob:
    return RunJob.model_validate({"type": "runJob", "image": "img", "command": ["true"], **params})


def host_volume(path: str, mount: str = "/out", **extra: Any) -> dict[str, Any]:
    return {"hostPath": {"path": path}, "mountPath": mount, **extra}


def test_defaults_add_nothing_but_the_pull_policy() -> None:
    action = run_job()
    assert action.volumes == [] and action.host_network is False
    assert action.image_pull_policy.value == "IfNotPresent" and action.security_context is None
    spec = job_body("j", "inc", "img", ["true"], [], 0, 10)["spec"]["template"]["spec"]
    assert spec == {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [
            {"name": "job", "image": "img", "command": ["true"], "imagePullPolicy": "IfNotPresent"}
        ],
    }


def test_volumes_network_and_user_in_the_pod_spec() -> None:
    pod = JobPod(
        volumes=[
            JobVolume(mount_path="/backup", claim_name="backups", claim_read_only=True),
            JobVolume(
                mount_path="/out",
                host_path="/var/backups",
                host_path_type="DirectoryOrCreate",
                sub_path="daily/x",
                read_only=True,
            ),
        ],
        host_network=True,
        image_pull_policy="Never",
        run_as_user=999,
    )
    spec = job_body("j", "inc", "img", ["true"], [], 0, 10, pod)["spec"]["template"]["spec"]
    assert spec["volumes"] == [
        {"name": "volume-0", "persistentVolumeClaim": {"claimName": "backups", "readOnly": True}},
        {"name": "volume-1", "hostPath": {"path": "/var/backups", "type": "DirectoryOrCreate"}},
    ]
    (container,) = spec["containers"]
    assert container["volumeMounts"] == [
        {"name": "volume-0", "mountPath": "/backup"},
        {"name": "volume-1", "mountPath": "/out", "subPath": "daily/x", "readOnly": True},
    ]
    assert container["imagePullPolicy"] == "Never"
    assert spec["hostNetwork"] is True
    assert spec["securityContext"] == {"runAsUser": 999}


def test_a_volume_has_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="either a persistentVolumeClaim or a hostPath"):
        run_job(volumes=[{"mountPath": "/out"}])
    with pytest.raises(ValidationError, match="either a persistentVolumeClaim or a hostPath"):
        run_job(
            volumes=[{**host_volume("/var/backups"), "persistentVolumeClaim": {"claimName": "b"}}]
        )
    claim = run_job(volumes=[{"persistentVolumeClaim": {"claimName": "b"}, "mountPath": "/b"}])
    assert claim.host_paths() == []


@pytest.mark.parametrize(
    "path", ["/", "relative", "/var/../etc", "/var/./backups", "/var//backups", "/var/backups/"]
)
def test_host_paths_and_mount_paths_are_absolute_and_normalized(path: str) -> None:
    with pytest.raises(ValidationError):
        run_job(volumes=[host_volume(path)])
    with pytest.raises(ValidationError):
        run_job(volumes=[host_volume("/var/backups", mount=path)])


@pytest.mark.parametrize("sub_path", ["/abs", "../up", "a/../../b", "a/./b", "a//b", "."])
def test_sub_path_stays_inside_the_volume(sub_path: str) -> None:
    with pytest.raises(ValidationError):
        run_job(volumes=[host_volume("/var/backups", subPath=sub_path)])
    assert run_job(volumes=[host_volume("/var/backups", subPath="...dots/a.b")]).volumes


def test_allowlist_covers_the_path_and_what_lies_below_it() -> None:
    limits = JobsPolicy(host_path_allowlist=["/var/backups", "/srv/dumps"])
    assert limits.allows_host_path("/var/backups")
    assert limits.allows_host_path("/var/backups/daily/2026")
    assert limits.allows_host_path("/srv/dumps/x")
    assert not limits.allows_host_path("/var/backups-old")
    assert not limits.allows_host_path("/var")
    assert not limits.allows_host_path("/etc")
    assert not JobsPolicy().allows_host_path("/var/backups")


def test_policy_file_sets_the_allowlist() -> None:
    assert load_policy().jobs.host_path_allowlist == []
    policy = load_policy(overrides={"jobs": {"hostPathAllowlist": ["/var/backups"]}})
    assert policy.jobs.host_path_allowlist == ["/var/backups"]
    with pytest.raises(PolicyError, match=r"jobs\.hostPathAllowlist\.0"):
        load_policy(overrides={"jobs": {"hostPathAllowlist": ["/var/../etc"]}})


def context(clients: dict[str, Any]) -> ActionContext:
    class NoSecrets:
        async def read(self, namespace: str, name: str, key: str) -> str:
            raise AssertionError("no secret is read")

    return ActionContext("ns", "inc", Targets(), NoSecrets(), clients, timeout=30)


async def test_a_host_path_outside_the_allowlist_refuses_the_step_before_any_call() -> None:
    """No Kubernetes client at all: the step is refused before the operator would need one."""
    action = run_job(volumes=[host_volume("/etc"), host_volume("/var/backups/x", "/b")])
    with pytest.raises(ActionError) as refused:
        await run_action(action, context({}))
    assert str(refused.value) == (
        "runJob may not mount hostPath /etc, /var/backups/x: the operator's policy allows only "
        "paths inside jobs.hostPathAllowlist (none: the list is empty); no Job was created"
    )
    policy = load_policy(overrides={"jobs": {"hostPathAllowlist": ["/var/backups"]}})
    with pytest.raises(ActionError, match=r"hostPath /etc: .*\(/var/backups\); no Job"):
        await run_action(action, context({"policy": policy}))
    assert job_actions.jobs_policy(context({"policy": policy})).allows_host_path("/var/backups/x")
