"""Who may approve: the operator asks the API server (LocalSubjectAccessReview).

Defence in depth behind the admission policy (manifests/base/admission.yaml), which makes
the API server itself refuse an approval whose ``by`` is not the requester or whose requester
lacks the verb. Should that policy be missing, the operator still honours an approval only
when ``by`` holds the verb ``approve`` on ``incidents.incidents.dev`` in the Incident's
namespace. The review names the user only: a grant through a group is not seen here.
"""

from __future__ import annotations

import time

from .. import API_GROUP
from .client import KubeClient, KubeError

APPROVE_VERB = "approve"
#: How long one answer is reused (seconds): an approval is checked on every decision.
CACHE_SECONDS = 30.0


class Approvers:
    def __init__(self, client: KubeClient, cache_seconds: float = CACHE_SECONDS) -> None:
        self.client = client
        self.cache_seconds = cache_seconds
        self._answers: dict[tuple[str, str], tuple[float, str | None]] = {}

    async def refusal(self, namespace: str, user: str) -> str | None:
        """None when ``user`` may approve Incidents in ``namespace``, else why not."""
        key = (namespace, user)
        cached = self._answers.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": namespace},
            "spec": {
                "user": user,
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": APPROVE_VERB,
                    "group": API_GROUP,
                    "resource": "incidents",
                },
            },
        }
        authz = self.client.authorization
        try:
            answer = await self.client.json(
                authz.create_namespaced_local_subject_access_review,
                namespace,
                review,
                what=f"access review for {user}",
            )
        except KubeError as exc:
            return f"cannot check whether {user} may approve: {exc}"  # not cached: retry
        allowed = bool((answer.get("status") or {}).get("allowed"))
        refusal = (
            None
            if allowed
            else (f"{user} may not {APPROVE_VERB} incidents.{API_GROUP} in namespace {namespace}")
        )
        self._answers[key] = (time.monotonic(), refusal)
        return refusal
