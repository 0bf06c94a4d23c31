"""Triage rules: the suggested severity, the rule that fired, fail-closed on unknown facts."""

import pytest
from pydantic import ValidationError

from opsgate.triage import Triage, fact_values, status_update, suggest

CONFIG = {
    "facts": {"db_ok": {"check": "H2", "value": "json db_ok"},
              "queued": {"check": "Q3", "value": "json queue_depth.queued"},
              "failed_jobs": {"check": "Q5"}},
    "severities": ["SEV-1", "SEV-2", "SEV-3"],
    "rules": [
        {"rule": "database down", "severity": "SEV-1", "when": {"db_ok": "== false"}},
        {"rule": "queue or jobs", "severity": "SEV-2",
         "when_any": {"queued": "> 100", "failed_jobs": "> 0"}},
    ],
    "default_severity": "SEV-3",
    "status_template": "[{severity}] {timestamp} - Incident {incident}. db_ok={db_ok}.",
}


def record(ident, outcome="passed", observed=None, judgements=()):
    return {"id": ident, "outcome": outcome, "observed": observed,
            "judgements": [{"label": label, "observed": value} for label, value in judgements]}


def test_worst_rule_that_fires_sets_the_severity():
    triage = Triage.model_validate(CONFIG)
    facts = fact_values(triage, [
        record("H2", "failed", judgements=[("json db_ok", False)]),
        record("Q3", judgements=[("json queue_depth.queued", 500)]),
        record("Q5", observed=0)])
    assert facts == {"db_ok": False, "queued": 500, "failed_jobs": 0}
    result = suggest(triage, facts)
    assert (result["severity"], result["rule"]) == ("SEV-1", "database down")
    assert result["fired"] == ["database down", "queue or jobs"]


def test_healthy_facts_give_the_default():
    triage = Triage.model_validate(CONFIG)
    facts = {"db_ok": True, "queued": 3, "failed_jobs": 0}
    assert suggest(triage, facts)["severity"] == "SEV-3"


def test_unknown_fact_never_lowers_the_severity():
    triage = Triage.model_validate(CONFIG)
    facts = fact_values(triage, [record("H2", "error"), record("Q5", observed=0),
                                 record("Q3", judgements=[("json queue_depth.queued", 1)])])
    assert facts["db_ok"] is None
    result = suggest(triage, facts)
    assert result["severity"] == "SEV-1"
    assert "undetermined" in result["rule"]


def test_status_update_is_filled_from_the_facts():
    triage = Triage.model_validate(CONFIG)
    facts = {"db_ok": None, "queued": 3, "failed_jobs": 0}
    text = status_update(triage, suggest(triage, facts), facts,
                         {"timestamp": "2026-11-24T10:00:00Z", "incident": "INC-1"})
    assert text == "[SEV-1] 2026-11-24T10:00:00Z - Incident INC-1. db_ok=unknown."


@pytest.mark.parametrize(("change", "message"), [
    ({"default_severity": "P0"}, "not in 'severities'"),
    ({"status_template": "{nope}"}, "status_template uses {nope}"),
    ({"rules": [{"rule": "x", "severity": "SEV-1", "when": {"ghost": "== 1"}}]},
     "unknown fact 'ghost'"),
    ({"rules": [{"rule": "x", "severity": "SEV-1"}]}, "needs 'when'"),
])
def test_bad_triage_configuration_is_refused(change, message):
    with pytest.raises(ValidationError, match=message):
        Triage.model_validate({**CONFIG, **change})
