"""Environment files: every problem is one message naming the file, the line and the key."""

import re
import textwrap

import pytest

from opsgate.config import load_environment
from opsgate.config.loader import resolve_environment_path
from opsgate.errors import ConfigError

HEAD = """\
targets:
  http:
    api: {base_url: "http://127.0.0.1:1"}
  databases:
    main: {url: "sqlite:///x.sqlite"}
checklists: {demo: {}}
checks:
"""

BAD_FILES = [
    ("unknown top-level key",
     "targetz: {}\n", r":1: targetz: unknown key"),
    ("not YAML",
     "checks: [\n  - id: a\n", r"not valid YAML"),
    ("duplicate key",
     HEAD + "  - {id: A, title: t, kind: http}\nchecks: []\n",
     r":9: checks: the key appears twice"),
    ("wrong type",
     HEAD + "  - {id: A, title: t, kind: http, severity: 3}\n",
     r":8: checks\[0\] \(A\)\.severity: Input should be"),
    ("unknown kind",
     HEAD + "  - {id: A, title: t, kind: ftp}\n", r":8: checks\[0\] \(A\)\.kind: unknown kind"),
    ("bad condition",
     HEAD + "  - id: A\n    title: t\n    kind: http\n    expect: {status: '=< 200'}\n",
     r":11: checks\[0\] \(A\)\.expect\.status: '=< 200' is not a condition"),
    ("bad jmespath",
     HEAD + "  - id: A\n    title: t\n    kind: http\n    expect: {json: {'a[': '== 1'}}\n",
     r":11: checks\[0\] \(A\)\.expect\.json: .*not a JMESPath expression"),
    ("unknown key in a check",
     HEAD + "  - id: A\n    title: t\n    kind: sql\n    scalar: select 1\n"
            "    expect: '== 1'\n    treshold: 3\n",
     r":13: checks\[0\] \(A\)\.treshold: unknown key"),
    ("sql without a query",
     HEAD + "  - {id: A, title: t, kind: sql}\n", r"give exactly one of 'scalar'"),
    ("duplicate ids",
     HEAD + "  - {id: A, title: t, kind: http}\n  - {id: A, title: u, kind: http}\n",
     r":9: checks\[1\] \(A\)\.id: duplicate check id 'A'"),
    ("unknown target",
     HEAD + "  - {id: A, title: t, kind: http, target: web}\n",
     r":8: checks\[0\] \(A\)\.target: unknown target 'web'; declared under 'targets.http': api"),
    ("unknown checklist",
     HEAD + "  - {id: A, title: t, kind: http, checklists: [demo, closure]}\n",
     r"checks\[0\] \(A\)\.checklists\[1\]: unknown checklist 'closure'"),
    ("promql without prometheus",
     HEAD + "  - {id: A, title: t, kind: promql, query: up, expect: '== 1'}\n",
     r"needs 'targets.prometheus.url'"),
    ("missing variable",
     "targets:\n  http:\n    api:\n      base_url: http://x\n"
     "      headers: {X-K: '${OPSGATE_NOPE}'}\n",
     r":5: targets\.http\.api\.headers\.X-K: environment variable OPSGATE_NOPE is not set"),
    ("bad database url",
     "targets:\n  databases:\n    main: {url: 'mysql://x/y'}\n",
     r":3: targets\.databases\.main\.url: only postgresql and sqlite"),
]


@pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in BAD_FILES],
                         ids=[name for name, _, _ in BAD_FILES])
def test_bad_file_gives_one_clear_message(tmp_path, text, message):
    path = tmp_path / "env.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_environment(path, environ={})
    assert any(str(path) in p for p in caught.value.problems)
    assert any(re.search(message, p) for p in caught.value.problems), \
        caught.value.problems


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text(HEAD + "  - {id: A, title: t, kind: http, bogus: 1}\n"
                           "  - {id: B, kind: sql, scalar: x, expect: '== 1'}\n")
    with pytest.raises(ConfigError) as caught:
        load_environment(path, environ={})
    problems = caught.value.problems
    assert len(problems) == 3  # unknown key, missing title, SQL that does not parse
    assert any("scalar" in p and "syntax" in p for p in problems)


def test_secrets_are_expanded_and_remembered(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("targets:\n  http:\n    api:\n      base_url: http://x\n"
                    "      headers: {X-K: 'Bearer ${TOKEN}', X-L: '$${LITERAL}'}\n")
    loaded = load_environment(path, environ={"TOKEN": "abcd1234"})
    headers = loaded.environment.targets.http["api"].headers
    assert headers == {"X-K": "Bearer abcd1234", "X-L": "${LITERAL}"}
    assert loaded.secrets == {"abcd1234"}
    assert loaded.name == "env"


def test_missing_variable_message_never_contains_values(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("targets:\n  http:\n    api:\n      base_url: http://x\n"
                    "      headers: {A: '${SET_ONE}', B: '${UNSET_ONE}'}\n")
    with pytest.raises(ConfigError) as caught:
        load_environment(path, environ={"SET_ONE": "value-that-is-secret"})
    assert "value-that-is-secret" not in str(caught.value)
    assert "UNSET_ONE" in str(caught.value)


def test_environment_names_resolve_under_fixtures(tmp_path):
    (tmp_path / "fixtures" / "environments").mkdir(parents=True)
    (tmp_path / "fixtures" / "environments" / "staging.yaml").write_text("checks: []\n")
    assert resolve_environment_path("staging", tmp_path).name == "staging.yaml"
    with pytest.raises(ConfigError, match=r"unknown environment .*known environments: staging"):
        resolve_environment_path("prod", tmp_path)
