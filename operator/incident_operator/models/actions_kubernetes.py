"""Runbook actions on Kubernetes workloads, their pods, and one-off Jobs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from .action_base import (
    WAIT,
    ActionModel,
    Command,
    Regex,
    ResourceList,
    Target,
    WorkloadRef,
)
from .base import Duration, LabelName, Model, ResourceName, SecretKeyRef, StrEnum

# --- Kubernetes -------------------------------------------------------------------------------


class RestartWorkload(ActionModel):
    """``kubectl rollout restart`` of the workload, then wait for the rollout (playbook:
    restart service)."""

    destructive = True
    idempotent = False
    target = Target.WORKLOAD

    type: Literal["restartWorkload"]
    workload: WorkloadRef
    wait: bool = Field(default=True, description=WAIT)


class ScaleWorkload(ActionModel):
    """``kubectl scale`` of the workload to a number of replicas (playbook: --scale
    dashboard=2)."""

    destructive = True
    target = Target.WORKLOAD

    type: Literal["scaleWorkload"]
    workload: WorkloadRef
    replicas: int = Field(
        ge=0, le=1000, description="The number of replicas to run (0-1000). Required."
    )
    wait: bool = Field(default=True, description=WAIT)


class RollbackDeployment(ActionModel):
    """``kubectl rollout undo`` of a Deployment: back to the previous (or a given) ReplicaSet
    revision. Deployments only."""

    destructive = True
    idempotent = False
    target = Target.WORKLOAD

    type: Literal["rollbackDeployment"]
    workload: WorkloadRef
    to_revision: int | None = Field(
        default=None,
        ge=1,
        description="The revision to roll back to (the ReplicaSet's deployment.kubernetes.io/"
        "revision). Default: the newest older revision that runs other images than the "
        "current one, else the previous revision.",
    )
    wait: bool = Field(default=True, description=WAIT)


class SetResources(ActionModel):
    """Change the resource requests and limits of one container of the workload's pod
    template, which rolls the workload out (playbook: docker update --memory 4g). Set
    requests, limits or both."""

    destructive = True
    target = Target.WORKLOAD

    type: Literal["setResources"]
    workload: WorkloadRef
    container: LabelName | None = Field(
        default=None,
        description="Container to change. Default: the first container of the pod template.",
    )
    requests: ResourceList | None = Field(
        default=None, description="Requests to set; other requests are kept."
    )
    limits: ResourceList | None = Field(
        default=None, description="Limits to set; other limits are kept."
    )
    wait: bool = Field(default=True, description=WAIT)


class PodLogs(ActionModel):
    """Read the last log lines of the workload's newest Ready pod and count the lines that
    match a pattern (playbook: logs | grep ERROR). Findings: pod, lines, matches."""

    target = Target.WORKLOAD

    type: Literal["podLogs"]
    workload: WorkloadRef
    container: LabelName | None = Field(
        default=None,
        description="Container to read. Default: the pod's default container.",
    )
    tail_lines: int = Field(
        default=100, ge=1, le=5000, description="How many lines to read from the end. Default: 100."
    )
    pattern: Regex | None = Field(
        default=None,
        description="RE2 regular expression searched in each line, e.g. ERROR|FATAL (no "
        "lookaround or backreferences). Omit to only show the lines.",
    )
    threshold: float | None = Field(
        default=None,
        description="Fail when more lines than this match the pattern. Omit to never fail.",
    )


class WorkloadStatus(ActionModel):
    """Replicas, readiness, revision, image and conditions of the workload (playbook:
    docker-compose ps). Fails when it is not fully ready and available or a condition reports
    a failure."""

    target = Target.WORKLOAD

    type: Literal["workloadStatus"]
    workload: WorkloadRef


class RecentRollouts(ActionModel):
    """Rollouts (revisions) of the workload created within a window, with their images
    (playbook: recent deployments, last 24h). Informational: never fails. Findings: rollouts,
    revisions, latestRevision, image, previousImage, latestAgeSeconds."""

    target = Target.WORKLOAD

    type: Literal["recentRollouts"]
    workload: WorkloadRef
    window: Duration = Field(
        default="24h", description="How far back to look, e.g. 30m, 24h. Default: 24h."
    )


class WarningEvents(ActionModel):
    """Warning events of the workload, its ReplicaSets and its pods within a window.
    Informational: never fails; test the ``warnings`` finding in a later step's ``when``.
    Findings: warnings, occurrences, latestReason."""

    target = Target.WORKLOAD

    type: Literal["warningEvents"]
    workload: WorkloadRef
    window: Duration = Field(
        default="1h", description="How far back to look, e.g. 30m, 24h. Default: 1h."
    )


class ExecInPod(ActionModel):
    """Run an allowlisted command in the workload's newest Ready pod (playbook: docker exec
    ...). Fails on a non-zero exit code. Only commands starting with an allowed argv prefix
    run (default: redis-cli, psql, pg_isready, df -h, du -sh, cat, free -m, uptime, ps aux;
    the operator's INCIDENT_OPERATOR_EXEC_ALLOWLIST replaces it). Findings: pod, exitCode,
    matched."""

    destructive = True
    idempotent = False
    target = Target.WORKLOAD

    type: Literal["execInPod"]
    workload: WorkloadRef
    container: LabelName | None = Field(
        default=None,
        description="Container to run in. Default: the pod's default container.",
    )
    command: Command = Field(
        description='The command as an argv list, e.g. ["redis-cli", "ping"]. Required.'
    )
    pattern: Regex | None = Field(
        default=None,
        description="RE2 regular expression (no lookaround or backreferences); the step "
        "fails unless stdout or stderr matches it, e.g. PONG.",
    )


class EnvVar(Model):
    """An environment variable of the Job's container: a literal value or a Secret key,
    not both."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)] = (
        Field(description="Variable name, e.g. PGHOST.")
    )
    value: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="Literal value. Never put a secret here: use secretRef."
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Take the value from a key of a Secret in the Incident's namespace; the "
        "kubelet injects it, the operator never reads it.",
    )


#: One path segment that is not ``.`` or ``..`` (the API server's regex engine, RE2, has no
#: lookahead, so the two are excluded by their shapes).
_SEGMENT = r"([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)"
#: An absolute, normalized path: no ``.`` or ``..`` segment, no ``//``, no trailing slash.
ABSOLUTE_PATH = rf"^(/{_SEGMENT})+$"
AbsolutePath = Annotated[str, StringConstraints(pattern=ABSOLUTE_PATH, max_length=1024)]
RelativePath = Annotated[
    str, StringConstraints(pattern=rf"^{_SEGMENT}(/{_SEGMENT})*$", max_length=1024)
]


class HostPathType(StrEnum):
    """What the path must be on the node before the kubelet mounts it. Directory (the
    default): an existing directory. DirectoryOrCreate: a directory, created (mode 0755,
    owned by the kubelet's user) when missing. File: an existing file. FileOrCreate: a file,
    created empty when missing."""

    DIRECTORY = "Directory"
    DIRECTORY_OR_CREATE = "DirectoryOrCreate"
    FILE = "File"
    FILE_OR_CREATE = "FileOrCreate"


class HostPathSource(Model):
    """A file or directory of the node the Job's pod runs on. Allowed only inside a path the
    operator's policy lists in jobs.hostPathAllowlist (empty by default: no hostPath at
    all); a step asking for another path fails without creating the Job."""

    path: AbsolutePath = Field(
        description="Absolute path on the node, without . or .. segments, e.g. /var/backups."
    )
    type: HostPathType = HostPathType.DIRECTORY


class ClaimSource(Model):
    """A PersistentVolumeClaim in the Incident's namespace."""

    claim_name: ResourceName = Field(description="Name of the claim, e.g. backups.")
    read_only: bool = Field(
        default=False, description="Attach the claim's volume read-only. Default: false."
    )


class JobVolume(Model):
    """A volume mounted into the Job's container: a PersistentVolumeClaim or a hostPath
    (exactly one of them) at mountPath."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.persistentVolumeClaim) != has(self.hostPath)",
                    "message": "a volume is either a persistentVolumeClaim or a hostPath",
                }
            ]
        }
    )

    persistent_volume_claim: ClaimSource | None = Field(
        default=None,
        description="Mount this PersistentVolumeClaim of the Incident's namespace.",
    )
    host_path: HostPathSource | None = Field(
        default=None,
        description="Mount this path of the node; only inside the policy's jobs.hostPathAllowlist.",
    )
    mount_path: AbsolutePath = Field(
        description="Where the volume appears in the container, e.g. /backup. Required."
    )
    sub_path: RelativePath | None = Field(
        default=None,
        description="Mount only this relative path inside the volume, e.g. daily. Default: "
        "the whole volume.",
    )
    read_only: bool = Field(
        default=False, description="Mount read-only in the container. Default: false."
    )

    @model_validator(mode="after")
    def _one_source(self) -> JobVolume:
        if (self.persistent_volume_claim is None) == (self.host_path is None):
            raise ValueError("a volume is either a persistentVolumeClaim or a hostPath")
        return self


class PullPolicy(StrEnum):
    """When the kubelet pulls the Job's image. IfNotPresent (the default): only when the
    node does not have it. Never: never; the image must already be on the node (images
    built or loaded there without a registry)."""

    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class JobSecurityContext(Model):
    """The user and group the Job's container runs as, e.g. one that may read the mounted
    backups. Omitted fields keep the image's defaults."""

    run_as_user: int | None = Field(
        default=None, ge=0, le=2147483647, description="User ID to run as, e.g. 999."
    )
    run_as_group: int | None = Field(
        default=None, ge=0, le=2147483647, description="Primary group ID to run as, e.g. 999."
    )


class RunJob(ActionModel):
    """Run a one-off Job in the Incident's namespace, wait for it within the step's timeout,
    report its log tail and delete it (playbook: restore from backup, integrity check).
    Fails when the Job fails or does not finish in time. Findings: job, succeeded, timedOut,
    durationSeconds, exitCode."""

    destructive = True
    idempotent = False
    target = Target.JOB

    type: Literal["runJob"]
    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] = Field(
        description="Container image of the Job, e.g. postgres:15. Required."
    )
    command: Command = Field(
        description='The container\'s command as an argv list, e.g. ["pg_restore", "-d", '
        '"app", "/backup/latest.dump"]. Required.'
    )
    env: list[EnvVar] = Field(
        default_factory=list, max_length=32, description="Environment of the container (max 32)."
    )
    backoff_limit: int = Field(
        default=0,
        ge=0,
        le=6,
        description="Retries of a failed pod by the Job controller (0-6). Default: 0.",
    )
    volumes: list[JobVolume] = Field(
        default_factory=list,
        max_length=8,
        description="Volumes mounted into the container (max 8): PersistentVolumeClaims, or "
        "hostPaths inside the policy's jobs.hostPathAllowlist.",
    )
    host_network: bool = Field(
        default=False,
        description="Run the pod in the node's network namespace, e.g. to reach a server "
        "listening on 127.0.0.1 of the node. Default: false.",
    )
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    security_context: JobSecurityContext | None = Field(
        default=None,
        description="User and group of the container. Default: the image's.",
    )

    def host_paths(self) -> list[str]:
        """The node paths the Job would mount, for the policy's allowlist."""
        return [v.host_path.path for v in self.volumes if v.host_path is not None]
