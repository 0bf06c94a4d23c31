"""The gate passes only when every selected check ran and passed."""

from opsgate.gate import decide


def _records(*outcomes):
    return [{"id": f"C{i}", "environment": "e", "outcome": o} for i, o in enumerate(outcomes)]


def test_all_passed_is_pass():
    assert decide(_records("passed", "passed"), selected=2, finished=True).verdict == "PASS"


def test_failed_error_and_not_run_block_and_are_listed():
    decision = decide(_records("passed", "failed", "error", "not_run"), selected=4,
                      finished=True)
    assert decision.verdict == "BLOCKED"
    assert decision.blocking == ["e:C1", "e:C2", "e:C3"]
    assert decision.counts == {"passed": 1, "failed": 1, "error": 1, "not_run": 1}


def test_no_check_selected_is_blocked_never_pass():
    assert decide([], selected=0, finished=True).verdict == "BLOCKED"


def test_fewer_ran_than_selected_is_blocked():
    decision = decide(_records("passed"), selected=3, finished=True)
    assert decision.verdict == "BLOCKED" and decision.counts["not_run"] == 2


def test_unfinished_run_is_incomplete():
    assert decide(_records("passed"), selected=1, finished=False).verdict == "INCOMPLETE"
