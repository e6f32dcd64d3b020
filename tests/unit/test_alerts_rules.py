"""The shipped alert rules are valid (promtool check rules) and fire on the playbook's
thresholds, and not below them (promtool test rules with synthetic series)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

RULES = Path(__file__).resolve().parents[2] / "manifests" / "alerts" / "playbook-rules.yaml"
PROMTOOL = "/usr/bin/promtool"  # Debian's prometheus package (hack/bootstrap.sh installs it)


def _promtool(*args: str) -> str:
    proc = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_promtool_checks_the_rules() -> None:
    assert "SUCCESS: 5 rules found" in _promtool("check", "rules", str(RULES))


def _alert(
    name: str, at: str, labels: dict[str, str] | None = None, description: str = ""
) -> dict[str, Any]:
    summary = next(r for r in _rules() if r["alert"] == name)["annotations"]["summary"]
    notes = {"summary": summary, "description": description}
    expected = [{"exp_labels": labels, "exp_annotations": notes}] if labels is not None else []
    return {"eval_time": at, "alertname": name, "exp_alerts": expected}


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    return rules


def _labels(name: str, **extra: str) -> dict[str, str]:
    rule = next(r for r in _rules() if r["alert"] == name)
    return {**rule["labels"], **extra}


def test_rules_fire_past_the_playbook_thresholds_only(tmp_path: Path) -> None:
    bucket = 'http_request_duration_seconds_bucket{job="dashboard",instance="d:9000",le="%s"}'
    # 1 request/s for 30 min; p99 moves from < 1 s to > 2.5 s at minute 15.
    fast = "0+60x14 900+60x15"
    series = [
        {"series": 'up{job="dashboard",instance="d:9000"}', "values": "1x10 0x20"},
        # 6 % then 4 % errors: 100 req/min, 6 (then 4) of them 5xx.
        {
            "series": 'http_requests_total{job="dashboard",code="200"}',
            "values": "0+94x14 1316+96x15",
        },
        {"series": 'http_requests_total{job="dashboard",code="500"}', "values": "0+6x14 84+4x15"},
        {"series": bucket % "1", "values": fast.replace("+60x15", "+0x15")},
        {"series": bucket % "2.5", "values": fast.replace("+60x15", "+0x15")},
        {"series": bucket % "+Inf", "values": "0+60x29"},
        {"series": 'redis_memory_used_bytes{instance="r"}', "values": "80x10 95x20"},
        {"series": 'redis_memory_max_bytes{instance="r"}', "values": "100x30"},
        {"series": 'redis_memory_used_bytes{instance="nomax"}', "values": "95x30"},
        {"series": 'redis_memory_max_bytes{instance="nomax"}', "values": "0x30"},
        {"series": 'pg_up{instance="p"}', "values": "1x5 0x25"},
    ]
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    _alert("DashboardDown", "10m"),
                    _alert(
                        "DashboardDown",
                        "12m",
                        _labels("DashboardDown", job="dashboard", instance="d:9000"),
                        "Prometheus cannot scrape d:9000: /metrics unavailable",
                    ),
                    _alert(
                        "DashboardHighErrorRate",
                        "10m",
                        _labels("DashboardHighErrorRate"),
                        "6% of dashboard requests answer 5xx",
                    ),
                    _alert("DashboardHighErrorRate", "25m"),
                    _alert("DashboardHighLatency", "10m"),
                    _alert(
                        "DashboardHighLatency",
                        "25m",
                        _labels("DashboardHighLatency"),
                        "p99 latency 2500 ms over 5m",
                    ),
                    _alert("RedisMemoryHigh", "9m"),
                    _alert(
                        "RedisMemoryHigh",
                        "15m",
                        _labels("RedisMemoryHigh", instance="r"),
                        "Redis r uses 95% of maxmemory",
                    ),
                    _alert("PostgresDown", "4m"),
                    _alert(
                        "PostgresDown",
                        "8m",
                        _labels("PostgresDown", instance="p"),
                        "postgres_exporter at p cannot connect to the database",
                    ),
                ],
            }
        ],
    }
    spec = tmp_path / "tests.yaml"
    spec.write_text(yaml.safe_dump(tests))
    assert "SUCCESS" in _promtool("test", "rules", str(spec))
