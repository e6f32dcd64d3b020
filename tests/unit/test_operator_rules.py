"""The operator's own alert rules pass promtool, and they and the Grafana dashboard query
only metrics the operator exposes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from incident_operator.adapters import metrics

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
PROMTOOL = "/usr/bin/promtool"
NAMES = re.compile(r"\bincident_operator_[a-z_]+\b")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=MANIFESTS / "alerts", capture_output=True, text=True, timeout=120
    )


def test_rules_pass_promtool_check() -> None:
    done = _promtool("check", "rules", "operator-rules.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_rules_pass_their_unit_tests() -> None:
    done = _promtool("test", "rules", "operator-rules.test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_and_dashboard_name_existing_metrics() -> None:
    rules = yaml.safe_load((MANIFESTS / "alerts" / "operator-rules.yaml").read_text())
    exprs = [r["expr"] for group in rules["groups"] for r in group["rules"]]
    dashboard = json.loads((MANIFESTS / "grafana" / "incident-operator.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in NAMES.findall(expr)}
    assert used, "the rules and the dashboard query the operator's metrics"
    assert used <= metrics.names(), f"unknown metrics: {sorted(used - metrics.names())}"
    # and every exposed family is on the dashboard
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in metrics.names()} - {
        "incident_operator_up"
    }
    shown = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    assert families <= shown, f"not on the dashboard: {sorted(families - shown)}"
