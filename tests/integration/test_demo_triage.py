"""Triage (T1-T3) on the demo: a faulted demo gets the severity its playbook rule gives, the
rule that fired, and a status update in the team's template, in triage.json and the report."""

from __future__ import annotations

import json
from pathlib import Path

from opsgate.demo.gate import run_gate
from opsgate.evidence import verify
from tests.support.demo import LEAN_PYTEST, REPO, SECRET

CASES = {
    "healthy": ((), "SEV-3", None),
    "db_error": (("db_error",), "SEV-1", "database down (decision tree D)"),
    "stale_heartbeat": (("stale_heartbeat",), "SEV-2",
                        "worker down or queue growing (decision tree B)"),
}


def triage_run(tmp_path: Path, faults: tuple[str, ...]) -> tuple[int, Path]:
    reports = tmp_path / "reports"
    tmp_path.mkdir(parents=True)
    with open(tmp_path / "output.txt", "w") as output:
        result = run_gate(faults=faults, root=REPO, prometheus=False, runs_dir=tmp_path / "runs",
                          port=0, secret=SECRET, stdout=output, say=lambda line: None,
                          pytest_args=("--report-dir", str(reports), "--checklist", "triage",
                                       "--incident", "INC-77", *LEAN_PYTEST))
    (folder,) = reports.iterdir()
    return result.exit_code, folder


def test_triage_suggests_the_severity_of_the_rule_that_fires(tmp_path):
    for name, (faults, severity, rule) in CASES.items():
        code, folder = triage_run(tmp_path / name, faults)
        document = json.loads((folder / "triage.json").read_text())
        assert verify(document), name
        (triage,) = document["triage"]
        assert (triage["severity"], triage["rule"]) == (severity, rule), (name, triage)
        assert triage["status_update"].startswith(f"[{severity}] ")
        assert "Incident INC-77. Impact: under assessment. Current status: investigating." \
            in triage["status_update"]
        html = (folder / "report.html").read_text()
        assert f"suggested severity {severity}" in html and "opsgate-status-update" in html
        assert code == (0 if name == "healthy" else 1), name
