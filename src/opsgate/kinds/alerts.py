"""``kind: alerts``: no alert of a kind is firing (or pending), or none is new (M4).

    - id: M4
      title: No critical alert firing, none new in the last 30 minutes
      kind: alerts
      match: {severity: critical}        # label matchers, exact strings
      state: firing                      # default; or pending
      ignore: [Watchdog]                 # alert names that never count
      new_since: 30m                     # optional: only alerts active for less than this

Read through the Prometheus HTTP API: ``/api/v1/rules`` first, then ``/api/v1/alerts``. An
empty list passes only when Prometheus answered and at least one loaded alerting rule could
raise a matching alert (not ignored, no label contradicting ``match``, healthy): otherwise
nothing tells that alerts would fire, and the check is an error. The evidence lists every
matching alert with its labels and ``activeAt``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from opsgate.config.base import CheckBase, Pair, Reference
from opsgate.deadline import Deadline
from opsgate.durations import Duration, format_duration
from opsgate.errors import NoData, ProbeConnectionError, ProbeQueryError, ProbeTimeout
from opsgate.evidence import iso
from opsgate.kinds.freshness import parse_timestamp
from opsgate.observation import Observation, Subject, utcnow
from opsgate.series import ReducedCondition, at

if TYPE_CHECKING:
    import httpx

    from opsgate.config.targets import Targets
    from opsgate.runner import Context

EVIDENCE_ALERTS = 50
NONE = "== 0"


class AlertsCheck(CheckBase):
    kind: Literal["alerts"]
    match: dict[str, str] = {}
    state: Literal["firing", "pending"] = "firing"
    ignore: list[str] = []
    new_since: Duration | None = None
    label: str | None = None

    def references(self) -> list[Reference]:
        return [Reference(("kind",), "prometheus", None)]

    def budget(self, targets: Targets) -> float:
        if self.timeout is not None:
            return self.timeout
        return targets.prometheus.timeout if targets.prometheus else 10.0

    def measure(self, ctx: Context) -> Observation:
        started = utcnow()
        api = PrometheusApi(ctx, self.budget(ctx.targets))
        rules = api.get("/api/v1/rules")
        candidates = self._candidate_rules(rules, api.asked)
        alerts = api.get("/api/v1/alerts").get("alerts") or []
        now = time.time()
        matching = [a for a in alerts if isinstance(a, dict) and self._counts(a, now)]
        seen = {"rules": {"candidates": candidates}, "active_alerts": len(alerts),
                "matching": [_summary(a) for a in matching[:EVIDENCE_ALERTS]],
                "now": iso(utcnow())}
        asked = {**api.asked, "match": self.match, "state": self.state, "ignore": self.ignore,
                 **({"new_since": format_duration(self.new_since)} if self.new_since else {})}
        return Observation("alerts", asked, seen, {"alerts": len(matching)},
                           [Subject(self._label(), len(matching))], started_at=started,
                           finished_at=utcnow())

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        matching = observation.seen.get("matching") or []
        for subject in observation.subjects:
            shown = str(subject.value)
            if matching:
                shown += ": " + ", ".join(f"{a['labels'].get('alertname', '?')} since "
                                          f"{_clock(a.get('activeAt'))}" for a in matching[:5])
            yield Pair(subject.label, subject.value,
                       ReducedCondition(NONE, "==", 0, shown=shown))

    # ------------------------------------------------------------ rules and alerts
    def _candidate_rules(self, data: dict[str, Any], asked: dict[str, Any]) -> list[str]:
        """Loaded alerting rules that could raise a counted alert; errors when there are none."""
        alerting = [rule for group in data.get("groups") or []
                    for rule in group.get("rules") or [] if rule.get("type") == "alerting"]
        if not alerting:
            raise NoData("no alerting rules loaded: cannot tell whether alerts fire",
                         asked=asked, seen={"alerting_rules": 0})
        candidates = [rule for rule in alerting if rule.get("name") not in self.ignore
                      and self._consistent(rule)]
        names = sorted({str(rule.get("name")) for rule in candidates})
        if not candidates:
            raise NoData(f"none of the {len(alerting)} alerting rules loaded could raise an "
                         f"alert matching {self._selector()} (ignoring "
                         f"{', '.join(self.ignore) or 'none'}): cannot tell whether such "
                         "alerts fire", asked=asked, seen={"alerting_rules": len(alerting)})
        broken = [rule for rule in candidates if rule.get("health") == "err"]
        if broken:
            rule = broken[0]
            raise NoData(f"alerting rule {rule.get('name')!r} fails to evaluate "
                         f"({rule.get('lastError') or 'health: err'}): cannot tell whether it "
                         "fires", asked=asked, seen={"broken_rules": [r.get("name")
                                                                      for r in broken]})
        return names

    def _consistent(self, rule: dict[str, Any]) -> bool:
        """A rule's name and own labels do not contradict ``match`` (series labels may)."""
        labels = {**(rule.get("labels") or {}), "alertname": rule.get("name")}
        return all(labels.get(key, value) == value for key, value in self.match.items())

    def _counts(self, alert: dict[str, Any], now: float) -> bool:
        labels = alert.get("labels") or {}
        if alert.get("state") != self.state or labels.get("alertname") in self.ignore:
            return False
        if any(labels.get(key) != value for key, value in self.match.items()):
            return False
        if self.new_since is None:
            return True
        try:
            active = parse_timestamp(alert.get("activeAt")).timestamp()
        except ValueError:
            return True  # an alert without a readable start counts: never hide an alert
        return now - active <= self.new_since

    def _selector(self) -> str:
        return "{" + ",".join(f'{key}="{value}"' for key, value in self.match.items()) + "}"

    def _label(self) -> str:
        if self.label:
            return self.label
        new = f" new in {format_duration(self.new_since)}" if self.new_since else ""
        matched = self._selector() if self.match else ""
        return f"{self.state} alerts{matched}{new}"


def _summary(alert: dict[str, Any]) -> dict[str, Any]:
    return {"labels": alert.get("labels") or {}, "state": alert.get("state"),
            "activeAt": alert.get("activeAt"), "value": alert.get("value")}


def _clock(text: Any) -> str:
    try:
        return at(parse_timestamp(text).timestamp())
    except ValueError:
        return str(text)


class PrometheusApi:
    """GETs against the run's Prometheus target, sharing one deadline and holding a slot."""

    def __init__(self, ctx: Context, seconds: float):
        config = ctx.targets.prometheus
        if config is None:
            raise ValueError("no Prometheus target")  # validation makes this unreachable
        self.ctx, self.config = ctx, config
        self.client = ctx.runner.http_client(ctx.env, "prometheus")
        self.deadline: Deadline = ctx.deadline(seconds)
        self.asked: dict[str, Any] = {"urls": []}

    def get(self, path: str) -> dict[str, Any]:
        """The ``data`` of a successful API answer; ProbeError otherwise."""
        url = self.config.url.rstrip("/") + path
        self.asked["urls"].append(url)
        left = self.deadline.check(f"asking Prometheus for {path}")
        with self.ctx.runner.slot(self.ctx.env, "prometheus", self.config.concurrency):
            response = self._send(url, left)
        return self._data(response)

    def _send(self, url: str, left: float) -> httpx.Response:
        import httpx

        try:
            return self.client.get(url, headers=self.config.headers, timeout=left)
        except httpx.TimeoutException as exc:
            raise ProbeTimeout(f"Prometheus did not answer within {left:.3g}s",
                               asked=self.asked) from exc
        except httpx.HTTPError as exc:
            raise ProbeConnectionError(f"could not reach Prometheus at {url}: {exc}",
                                       asked=self.asked) from exc

    def _data(self, response: httpx.Response) -> dict[str, Any]:
        excerpt = response.text[:1000] + ("..." if len(response.text) > 1000 else "")
        seen = {"status": response.status_code, "body_excerpt": excerpt}
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or payload.get("status") != "success" \
                or response.status_code != 200:
            reason = payload.get("error") if isinstance(payload, dict) else None
            raise ProbeQueryError(f"Prometheus answered {response.request.url.path} with HTTP "
                                  f"{response.status_code}: {reason or 'not a successful answer'}",
                                  asked=self.asked, seen=seen)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise ProbeQueryError("Prometheus answered without data", asked=self.asked,
                                  seen=seen)
        return data


MODEL = AlertsCheck
