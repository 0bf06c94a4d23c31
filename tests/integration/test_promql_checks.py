"""promql checks end to end through the plugin against a real Prometheus over backfilled data.

One Prometheus serves the module: 30 minutes of history up to 30 s before it starts (so queries
at "now" see every series), a recording rule, and a latency spike 8 to 6.5 minutes ago. Each
test writes an environment file, runs ``pytest checks --env FILE`` in a subprocess and reads
the run's evidence.json.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import constant, free_port, history, openmetrics, wait_for

REPO = Path(__file__).resolve().parents[2]
#: Plugins of the suite's own tests that a gate run does not need (hypothesis alone adds ~1 s).
QUIET = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")
RULES = """\
groups:
  - name: itest
    rules:
      - record: queue:depth:max
        expr: max(queue_depth)
"""


@dataclass(frozen=True)
class Data:
    """The module's Prometheus and the latency spike's time window (epoch seconds)."""

    url: str
    spike_start: float
    spike_end: float


@pytest.fixture(scope="module")
def prom(prometheus_module) -> Data:
    """A Prometheus with queue depths, a request counter and a latency gauge with one spike."""
    end = time.time() - 30.0
    spike_start, spike_end = end - 8 * 60, end - 6.5 * 60
    series = {
        'queue_depth{queue="a"}': constant(1),
        'queue_depth{queue="b"}': constant(50),
        'http_requests_total{route="/x"}': history(lambda t: 10 * (t - end + 1800) / 15,
                                                   span=1800, end=end),
        "latency_seconds": history(lambda t: 2.0 if spike_start <= t <= spike_end else 0.1,
                                   span=1800, end=end),
    }
    url = prometheus_module(openmetrics(series), rules=RULES)
    wait_for(url, "queue:depth:max")
    return Data(url, spike_start, spike_end)


@dataclass
class Run:
    """One run of the catalog: pytest's result and the run's evidence.json (if written)."""

    result: pytest.RunResult
    document: dict[str, Any] | None

    def check(self, ident: str) -> dict[str, Any]:
        """The evidence record of check ``ident``."""
        assert self.document is not None, self.result.stdout.str() + self.result.stderr.str()
        found = [c for c in self.document["checks"] if c["id"] == ident]
        assert len(found) == 1, f"{ident} not in {[c['id'] for c in self.document['checks']]}"
        return found[0]


def run_checks(pytester: pytest.Pytester, url: str, checks: list[dict[str, Any]]) -> Run:
    """Run ``checks`` against the Prometheus at ``url``."""
    if not (pytester.path / "checks").exists():
        shutil.copytree(REPO / "checks", pytester.path / "checks")
    environment = {"name": "itest", "targets": {"prometheus": {"url": url, "timeout": "5s"}},
                   "checks": checks}
    path = pytester.path / "itest.yaml"
    path.write_text(yaml.safe_dump(environment, sort_keys=False))
    out = pytester.path / "out"
    shutil.rmtree(out, ignore_errors=True)
    result = pytester.runpytest_subprocess("checks", "--env", str(path), "--report-dir", str(out),
                                           *QUIET)
    runs = list(out.iterdir()) if out.is_dir() else []
    evidence = runs[0] / "evidence.json" if len(runs) == 1 else None
    document = json.loads(evidence.read_text()) if evidence and evidence.is_file() else None
    return Run(result, document)


def promql(ident: str, query: str, expect: str, **options: Any) -> dict[str, Any]:
    """A promql check."""
    return {"id": ident, "title": f"promql {ident}", "kind": "promql", "query": query,
            "expect": expect, **options}


def clock(moment: float) -> int:
    """Seconds since midnight UTC."""
    return int(moment) % 86400


# ---------------------------------------------------------------- instant queries
def test_instant_query_judges_every_series(pytester, prom):
    run = run_checks(pytester, prom.url, [
        promql("P1", 'queue_depth{queue="a"}', "< 10"),
        promql("P2", "queue_depth", "< 10"),
        promql("P3", 'sum(rate(http_requests_total{route="/x"}[5m]))', "between 0.6 and 0.7"),
        promql("P4", "queue:depth:max", "== 50"),
        promql("P5", "queue_depth", "< 10", label="queue depth"),
    ])
    assert run.result.ret == 1, run.result.stdout.str()
    one = run.check("P1")
    assert one["outcome"] == "passed" and one["observed"] == 1, one["message"]
    assert one["evidence"]["asked"]["query"] == 'queue_depth{queue="a"}'
    assert len(one["evidence"]["seen"]["series"]) == 1
    every = run.check("P2")
    assert every["outcome"] == "failed", every["message"]
    assert len(every["evidence"]["seen"]["series"]) == 2
    assert 'queue="b"' in every["message"] and "(50) < 10" in every["message"]
    assert 'queue="a"' not in every["message"], "a series that holds is not a failure"
    assert [j["ok"] for j in every["judgements"]] == [True, False]
    rate = run.check("P3")
    assert rate["outcome"] == "passed", rate["message"]
    assert 0.6 <= rate["observed"] <= 0.7
    assert run.check("P4")["outcome"] == "passed", run.check("P4")["message"]
    labelled = run.check("P5")  # a label names the measure; the message still names the series
    assert labelled["outcome"] == "failed", labelled["message"]
    assert "queue depth" in labelled["message"] and 'queue="b"' in labelled["message"], \
        labelled["message"]
    run.result.assert_outcomes(passed=3, failed=2)


# ---------------------------------------------------------------- range queries
def test_range_query_fails_at_the_point_that_breaches(pytester, prom):
    run = run_checks(pytester, prom.url, [
        promql("R1", "latency_seconds", "< 0.5", label="latency",
               range={"last": "15m", "step": "1m"}),
        promql("R2", 'queue_depth{queue="a"}', "< 10", range={"last": "15m", "step": "1m"}),
    ])
    assert run.result.ret == 1, run.result.stdout.str()
    breach = run.check("R1")
    assert breach["outcome"] == "failed", breach["message"]
    match = re.search(r"latency \(2 at (\d\d):(\d\d):(\d\d)Z; (\d+) of (\d+) points\) < 0\.5",
                      breach["message"])
    assert match, breach["message"]
    hours, minutes, secs, bad, points = map(int, match.groups())
    assert points == 16 and 1 <= bad <= 3
    # a step reads the spike from its first sample until 15 s (one sample) after its last
    since_spike = (hours * 3600 + minutes * 60 + secs - clock(prom.spike_start)) % 86400
    assert since_spike <= prom.spike_end - prom.spike_start + 15, breach["message"]
    asked = breach["evidence"]["asked"]
    assert asked["query"] == "latency_seconds"
    assert asked["range"]["step"] == 60
    assert asked["range"]["end"] - asked["range"]["start"] == pytest.approx(900)
    assert len(breach["evidence"]["seen"]["series"]) == 1
    steady = run.check("R2")
    assert steady["outcome"] == "passed", steady["message"]
    assert "all 16 points" in steady["message"]
    run.result.assert_outcomes(passed=1, failed=1)


# ---------------------------------------------------------------- could not measure
def test_empty_vector_and_nan_are_errors(pytester, prom):
    run = run_checks(pytester, prom.url, [
        promql("E1", "no_such_metric", "< 1"),
        promql("N1", "0/0", "< 1"),
        promql("N2", "vector(0) / 0", "< 1"),
    ])
    assert run.result.ret == 1, run.result.stdout.str()
    empty = run.check("E1")
    assert empty["outcome"] == "error" and empty["reason"] == "no_data", empty["message"]
    assert "no series" in empty["message"]
    for ident in ("N1", "N2"):
        record = run.check(ident)
        assert record["outcome"] == "error", record
        assert "NaN" in record["message"], record["message"]
    run.result.assert_outcomes(errors=3)


def test_promql_syntax_error_is_never_a_pass(pytester, prom):
    run = run_checks(pytester, prom.url, [
        promql("X1", 'sum(rate(http_requests_total{route="/x"}[5m])', "< 1"),
    ])
    assert run.result.ret in (1, pytest.ExitCode.USAGE_ERROR)
    if run.result.ret == pytest.ExitCode.USAGE_ERROR:  # refused when the file loads
        text = run.result.stderr.str()
        assert "X1" in text or "checks[0]" in text, text
    else:  # refused by Prometheus when the check runs
        assert run.document is not None and run.document["verdict"] == "BLOCKED"
        record = run.check("X1")
        assert record["outcome"] == "error"
        text = record["message"]
    assert re.search(r"parse error|syntax|unclosed|parenthes", text, re.IGNORECASE), text


def test_prometheus_down_is_an_error(pytester):
    run = run_checks(pytester, f"http://127.0.0.1:{free_port()}", [
        promql("D1", "up", "== 1"),
    ])
    assert run.result.ret == 1
    record = run.check("D1")
    assert record["outcome"] == "error" and record["reason"] == "connection", record
    assert "could not reach Prometheus" in record["message"]
    run.result.assert_outcomes(errors=1)
