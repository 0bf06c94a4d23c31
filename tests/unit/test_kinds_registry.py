"""The kinds registry: names match models, and only the kinds in use are imported."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

import pytest
from pydantic import ValidationError

from opsgate.config.schema import Environment
from opsgate.kinds import KINDS, model_for


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_registered_name_is_its_models_kind(kind: str) -> None:
    model = model_for(kind)
    assert model.model_fields["kind"].annotation.__args__ == (kind,)


def test_a_check_is_validated_by_the_model_of_its_kind() -> None:
    env = Environment.model_validate({"name": "x", "checks": [
        {"id": "A", "title": "t", "kind": "sql", "scalar": "select 1", "expect": "== 1"}]})
    assert type(env.checks[0]) is model_for("sql")


@pytest.mark.parametrize(("entry", "error_type"), [
    ({"id": "A", "title": "t"}, "union_tag_not_found"),
    ({"id": "A", "title": "t", "kind": "ftp"}, "union_tag_invalid"),
    ({"id": "A", "title": "t", "kind": ["http"]}, "union_tag_invalid"),
    ("http", "model_type"),
])
def test_a_check_without_a_known_kind_is_refused(entry: object, error_type: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Environment.model_validate({"name": "x", "checks": [entry]})
    assert [e["type"] for e in caught.value.errors()] == [error_type]
    assert caught.value.errors()[0]["loc"] == ("checks", 0)


def test_errors_inside_a_check_keep_their_path() -> None:
    with pytest.raises(ValidationError) as caught:
        Environment.model_validate({"name": "x", "checks": [
            {"id": "A", "title": "t", "kind": "http", "request": {"path": "/"},
             "expect": {"status": "== 200"}, "colour": "red"}]})
    assert [e["loc"] for e in caught.value.errors()] == [("checks", 0, "colour")]


def test_loading_an_environment_imports_only_the_kinds_it_uses(tmp_path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(textwrap.dedent("""\
        name: only-http
        targets: {http: {api: {base_url: "http://127.0.0.1:9"}}}
        checks:
          - {id: A, title: t, kind: http, request: {path: /}, expect: {status: "== 200"}}
        """), encoding="utf-8")
    code = (f"import sys, pathlib; from opsgate.config.loader import load_environment; "
            f"load_environment(pathlib.Path({str(path)!r})); "
            f"print(sorted(m for m in sys.modules if m.startswith('opsgate.kinds.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = ast.literal_eval(out)
    assert "opsgate.kinds.http" in loaded
    assert not {"opsgate.kinds.invariant", "opsgate.kinds.postgres", "opsgate.kinds.flow",
                "opsgate.kinds.window"} & set(loaded)
