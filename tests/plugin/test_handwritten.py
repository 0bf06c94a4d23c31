"""Hand-written checks in checks/ use the run's probes through the ``opsgate`` fixture."""

from __future__ import annotations

import json
import shutil
import sqlite3

from tests.plugin.test_plugin import REPO

HANDWRITTEN = '''
def test_status_and_count(opsgate):
    observation = opsgate.http("/echo", params={"count": "2"})
    assert observation.fields["status"] == 200
    assert opsgate.sql("select count(*) from items") == 3


def test_too_many_items(opsgate):
    assert opsgate.sql("select count(*) from items") < 3, "too many items"


def test_writes_are_refused(opsgate):
    opsgate.sql("delete from items")
'''


def test_handwritten_checks_run_per_environment_and_block_on_failure(pytester, echo_server,
                                                                     tmp_path):
    shutil.copytree(REPO / "checks", pytester.path / "checks")
    (pytester.path / "checks" / "test_handwritten.py").write_text(HANDWRITTEN)
    database = tmp_path / "app.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute("create table items (id integer primary key)")
        conn.executemany("insert into items values (?)", [(1,), (2,), (3,)])
    conn.close()
    env = pytester.path / "staging.yaml"
    env.write_text(f"targets:\n  http: {{api: {{base_url: '{echo_server}'}}}}\n"
                   f"  databases: {{main: {{url: 'sqlite:///{database}'}}}}\nchecks: []\n")
    result = pytester.runpytest_subprocess("checks", "--env", str(env), "--report-dir",
                                           str(pytester.path / "out"), "-v",
                                           "-p", "no:hypothesispytest")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*test_status_and_count[[]staging[]] PASSED*",
                                 "*test_too_many_items[[]staging[]] FAILED*",
                                 "*test_writes_are_refused[[]staging[]] FAILED*"])
    (evidence,) = (pytester.path / "out").glob("*/evidence.json")
    document = json.loads(evidence.read_text())
    outcomes = {c["id"].split("::")[-1]: c["outcome"] for c in document["checks"]}
    assert outcomes == {"test_status_and_count[staging]": "passed",
                        "test_too_many_items[staging]": "failed",
                        "test_writes_are_refused[staging]": "failed"}
    refused = next(c for c in document["checks"] if "refused" in c["id"])
    assert "DELETE" in refused["message"] or "delete" in refused["message"]
    with sqlite3.connect(database) as conn:
        assert conn.execute("select count(*) from items").fetchone() == (3,)
    conn.close()
    assert document["verdict"] == "BLOCKED"

