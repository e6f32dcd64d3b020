"""Recovery time of every shipped runbook on provoked failures, against its RTO.

    .venv/bin/python bench/bench_rto.py [pytest arguments, default: the runbook tests of e2e/]

Runs the end-to-end tests (e2e/: the demo stack's real pods on the real node, every failure
provoked for real: a killed server, a bad deploy, a full Redis, a lost database...) and
reads what they record for each recovered Incident (``e2e/conftest.py``,
``record_recovery``): the Incident's own time to recover (status.timeToRecoverSeconds,
detection to mitigation) and its Runbook's mitigation RTO (status.rtoSeconds). The floor of
each figure is the RTO the playbook sets; the ratio is time to recover / RTO (target <= 1).
"""

from __future__ import annotations

import re
import subprocess
import sys

import harness as h

#: A line of the terminal summary of e2e/conftest.py:
#: "<runbook> <ttr> s  within|OVER RTO <m> min  (<incident>, <test>)"
LINE = re.compile(
    r"^(?P<runbook>\S+)\s+(?P<ttr>[\d.]+) s\s+(?:within|OVER) RTO (?P<rto>[\d.]+) min\s+"
    r"\((?P<incident>[^,]+), (?P<test>[^)]+)\)$"
)


#: The e2e tests that provoke a failure and let a shipped runbook recover it (e2e/faults/
#: tests the operator's own faults: no runbook recovery to time there).
RUNBOOK_TESTS = [
    "e2e/test_dashboard_outage.py",
    "e2e/test_data_stores.py",
    "e2e/test_performance_runbooks.py",
    "e2e/test_recovery_procedures.py",
]


def main() -> None:
    args = sys.argv[1:] or RUNBOOK_TESTS
    h.header("bench_rto.py", sys.argv[1:])
    command = [h.PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rN", *args]
    done = subprocess.run(command, cwd=h.ROOT, capture_output=True, text=True, check=False)
    rows = [m.groupdict() for line in done.stdout.splitlines() if (m := LINE.match(line.strip()))]
    outcome = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    print(f"e2e: {outcome} ({h.load()})")
    h.row("runbook (test)", "time to recover s", "RTO s (floor)", "ratio", "target <= 1")
    h.row("---", "---", "---", "---", "---")
    for r in rows:
        ttr, rto = float(r["ttr"]), float(r["rto"]) * 60
        ratio = h.ratio(ttr, rto)
        h.row(f"{r['runbook']} ({r['test']})", f"{ttr:.1f}", f"{rto:.0f}", f"{ratio:.2f}",
              "met" if ratio <= 1 else "missed")  # fmt: skip
    if not rows:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
