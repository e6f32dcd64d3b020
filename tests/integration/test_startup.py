"""An unusable policy stops the operator at start-up with a message naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster


def test_invalid_policy_stops_the_operator(kubeconfig: str, namespace: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("levels:\n- level: 2\n  responseTime: soon\n")
    done = subprocess.run(
        [sys.executable, "-m", "incident_operator", "run", "--standalone", "-n", namespace],
        env={**os.environ, "INCIDENT_OPERATOR_POLICY": str(policy)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "invalid policy: levels.1.responseTime" in done.stderr
