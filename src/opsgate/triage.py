"""Triage (catalog T1-T3): the facts of an incident's first minutes, a suggested severity from
rules in the environment file, and a status update ready to paste.

```yaml
triage:
  facts:                                    # fact -> the check (and judgement) it comes from
    db_ok: {check: H2, value: json db_ok}
    queue_depth: {check: Q3, value: json queue_depth.queued}
    failed_jobs: {check: Q5}                # the check's observed value
    health: {check: H1, value: outcome}     # passed / failed / error / not_run
  severities: [SEV-1, SEV-2, SEV-3]         # worst first
  rules:
    - {rule: database down, severity: SEV-1, when: {db_ok: "== false"}}
    - {rule: queue growing, severity: SEV-2, when_any: {queue_depth: "> 100", failed_jobs: "> 0"}}
  default_severity: SEV-3
  status_template: "[{severity}] {timestamp} - Incident {incident}. Impact: {impact}. ..."
```

Fail closed: a rule whose facts could not be measured is *undetermined*, and the suggested
severity is the worst of the rules that fired or are undetermined, so an unknown
``db_ok`` never lowers the severity.
"""

from __future__ import annotations

import string
from typing import Any

from pydantic import model_validator

from opsgate.conditions import Unmeasurable
from opsgate.config.base import ConditionText, Strict

TEMPLATE_FIELDS = ("severity", "timestamp", "incident", "environment", "impact", "status",
                   "next_update", "rule", "operator")


class Fact(Strict):
    check: str
    value: str | None = None  # a judgement label, "outcome", or None for the observed value


class SeverityRule(Strict):
    rule: str
    severity: str
    when: dict[str, ConditionText] = {}
    when_any: dict[str, ConditionText] = {}

    @model_validator(mode="after")
    def _has_condition(self) -> SeverityRule:
        if not (self.when or self.when_any):
            raise ValueError("a rule needs 'when' (all hold) or 'when_any' (one holds)")
        return self


class Triage(Strict):
    checklist: str = "triage"
    facts: dict[str, Fact]
    severities: list[str]
    rules: list[SeverityRule] = []
    default_severity: str
    status_template: str
    impact: str = "under assessment"
    status: str = "investigating"
    next_update: str = "30"

    @model_validator(mode="after")
    def _consistent(self) -> Triage:
        known = set(self.severities)
        wrong = [s for s in [self.default_severity, *(r.severity for r in self.rules)]
                 if s not in known]
        if wrong:
            raise ValueError(f"severity {wrong[0]!r} is not in 'severities' "
                             f"({', '.join(self.severities)})")
        for rule in self.rules:
            unknown = [f for f in [*rule.when, *rule.when_any] if f not in self.facts]
            if unknown:
                raise ValueError(f"rule {rule.rule!r} uses unknown fact {unknown[0]!r}; "
                                 f"facts: {', '.join(self.facts)}")
        allowed = set(TEMPLATE_FIELDS) | set(self.facts)
        for _, name, _, _ in string.Formatter().parse(self.status_template):
            if name is not None and name not in allowed:
                raise ValueError(f"status_template uses {{{name}}}; use one of "
                                 f"{', '.join(sorted(allowed))}")
        return self


def fact_values(triage: Triage, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each fact's value from the run's records (None when it was not measured)."""
    by_id = {record["id"]: record for record in records}
    values: dict[str, Any] = {}
    for name, fact in triage.facts.items():
        record = by_id.get(fact.check)
        values[name] = _fact(record, fact.value) if record else None
    return values


def _fact(record: dict[str, Any], value: str | None) -> Any:
    if value == "outcome":
        return record["outcome"]
    if record["outcome"] not in ("passed", "failed"):
        return None
    if value is None:
        observed = record.get("observed")
        return None if isinstance(observed, dict) else observed
    for judgement in record.get("judgements", []):
        if judgement["label"] == value:
            return judgement["observed"]
    return None


def suggest(triage: Triage, facts: dict[str, Any]) -> dict[str, Any]:
    """The suggested severity, the rule that set it, and the rules that could not be judged."""
    fired, undetermined = [], []
    for rule in triage.rules:
        verdict = _rule_holds(rule, facts)
        if verdict is None:
            undetermined.append(rule)
        elif verdict:
            fired.append(rule)
    rank = {severity: index for index, severity in enumerate(triage.severities)}
    candidates = fired + undetermined
    if not candidates:
        return {"severity": triage.default_severity, "rule": None, "undetermined": []}
    worst = min(candidates, key=lambda rule: rank[rule.severity])
    why = worst.rule if worst in fired else f"{worst.rule} (undetermined: a fact is unknown)"
    return {"severity": worst.severity, "rule": why,
            "fired": [rule.rule for rule in fired],
            "undetermined": [rule.rule for rule in undetermined]}


def _rule_holds(rule: SeverityRule, facts: dict[str, Any]) -> bool | None:
    """True, False, or None when it depends on a fact that is unknown."""
    every = [_holds(facts.get(name), condition) for name, condition in rule.when.items()]
    some = [_holds(facts.get(name), condition) for name, condition in rule.when_any.items()]
    all_part = False if False in every else (None if None in every else True)
    any_part = True if not some or True in some else (None if None in some else False)
    if False in (all_part, any_part):
        return False
    if None in (all_part, any_part):
        return None
    return True


def _holds(value: Any, condition: Any) -> bool | None:
    if value is None:
        return None
    try:
        return condition.check(value)
    except Unmeasurable:
        return None


def status_update(triage: Triage, suggestion: dict[str, Any], facts: dict[str, Any],
                  context: dict[str, Any]) -> str:
    """The status template filled in; unknown facts read ``unknown``."""
    values = {name: ("unknown" if value is None else value) for name, value in facts.items()}
    values.update({"impact": triage.impact, "status": triage.status,
                   "next_update": triage.next_update, "severity": suggestion["severity"],
                   "rule": suggestion["rule"] or "default"})
    values.update(context)
    return triage.status_template.format(**values)
