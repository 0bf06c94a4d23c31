"""Load an environment file: parse with lines, expand secrets, validate, cross-check references.

Every problem becomes one sentence ``FILE:LINE: KEY: what is wrong (and what to do)``; all of
them are raised together as one ConfigError before any check runs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import ValidationError

from opsgate.config.base import CheckBase, Reference
from opsgate.config.schema import Environment
from opsgate.config.secrets import MissingVariable, expand
from opsgate.config.yamlmap import DuplicateKey, Path, Unreadable, line_of, load_with_lines
from opsgate.errors import ConfigError
from opsgate.kinds import kind_names

ENVIRONMENTS_DIR = FsPath("fixtures") / "environments"


@dataclass(frozen=True)
class LoadedEnvironment:
    """A validated environment with what the run needs besides the model."""

    environment: Environment
    path: FsPath
    secrets: frozenset[str] = field(default_factory=frozenset)
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return self.environment.name


def resolve_environment_path(name_or_path: str, root: FsPath) -> FsPath:
    """A path as given, or ``fixtures/environments/NAME.yaml`` under ``root``."""
    given = FsPath(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.is_file():
        if given.is_file():
            return given
        raise ConfigError([f"--env {name_or_path}: no such file"])
    directory = root / ENVIRONMENTS_DIR
    for suffix in (".yaml", ".yml"):
        candidate = directory / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in directory.glob("*.y*ml")) if directory.is_dir() else []
    hint = f"known environments: {', '.join(known)}" if known else f"no files in {directory}"
    raise ConfigError([f"--env {name_or_path}: unknown environment ({hint}); "
                       "give a name from that list or a path to a YAML file"])


def load_environment(path: FsPath, environ: Mapping[str, str] | None = None) -> LoadedEnvironment:
    """Load and validate ``path``; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the environment file ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: the file is not UTF-8 text (byte {exc.start}); save it as "
                           "UTF-8"]) from None
    try:
        raw, lines = load_with_lines(text)
    except DuplicateKey as exc:
        raise ConfigError([f"{path}:{exc.line}: {_key(exc.path)}: the key appears twice; "
                           "keep one"]) from exc
    except Unreadable as exc:  # too large, too deep, or a key that is not a plain value
        raise ConfigError([f"{path}:{exc.line}: {exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: the file is not valid YAML ({problem})"]) from exc
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}:1: the file must be a mapping with 'targets', 'checks', ..."])
    raw.setdefault("name", path.stem.removesuffix(".example"))

    secrets: set[str] = set()
    missing: list[MissingVariable] = []
    data = expand(raw, environ, secrets, missing)
    problems = [
        f"{path}:{line_of(lines, m.path)}: {_key(m.path, raw)}: environment variable {m.name} "
        f"is not set (set it, e.g. export {m.name}=..., or write $${{ for a literal ${{)"
        for m in missing
    ]
    if problems:
        raise ConfigError(problems)
    try:
        environment = Environment.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_hide(secrets, _validation_problems(exc, raw, lines, path))) from None
    problems = [f"{path}:{line_of(lines, where)}: {_key(where, raw)}: {what}"
                for where, what in cross_check(environment)]
    if problems:
        raise ConfigError(_hide(secrets, problems))
    fingerprint = hashlib.sha256(text.encode()).hexdigest()
    return LoadedEnvironment(environment, path, frozenset(secrets), fingerprint)


def _hide(secrets: set[str], problems: list[str]) -> list[str]:
    """Messages that echo a value (a bad timeout) must not echo a secret."""
    from opsgate.redaction import Redactor

    redactor = Redactor(secrets)
    return [redactor.text(problem) for problem in problems]


def cross_check(env: Environment) -> list[tuple[Path, str]]:
    """References between sections: ids unique, targets and checklists that exist."""
    problems: list[tuple[Path, str]] = []
    seen: dict[str, int] = {}
    for index, check in enumerate(env.checks):
        here: Path = ("checks", index)
        if check.id in seen:
            problems.append(((*here, "id"), f"duplicate check id {check.id!r} "
                             f"(also checks[{seen[check.id]}]); ids must be unique"))
        seen.setdefault(check.id, index)
        for position, name in enumerate(check.checklists):
            if name not in env.checklists:
                problems.append(((*here, "checklists", position),
                                 f"unknown checklist {name!r}; declare it under 'checklists:' "
                                 f"(declared: {_names(env.checklists)})"))
        problems.extend(((*here, *key), what) for key, what in _target_problems(env, check))
    for name, checklist in env.checklists.items():
        problems.extend(_checklist_problems(name, checklist, set(seen)))
    problems.extend(_identity_problems(env))
    return problems


def _identity_problems(env: Environment) -> list[tuple[Path, str]]:
    """Identity entries must name declared targets."""
    problems: list[tuple[Path, str]] = []
    for section in ("databases", "http"):
        known = getattr(env.targets, section)
        problems.extend((("identity", section, name),
                         f"unknown target {name!r}; declared under 'targets.{section}': "
                         f"{_names(known)}")
                        for name in getattr(env.identity, section) if name not in known)
    if env.identity.prometheus is not None and env.targets.prometheus is None:
        problems.append((("identity", "prometheus"), "no 'targets.prometheus' to identify"))
    return problems


def _checklist_problems(name: str, checklist: Any, ids: set[str]) -> list[tuple[Path, str]]:
    """Ids named by a checklist's items and advisory list must be checks of the file."""
    here: Path = ("checklists", name)
    problems = []
    for index, item in enumerate(checklist.items):
        problems.extend(((*here, "items", index, "checks", position),
                         f"unknown check id {ident!r}; ids in this file: {_ids(ids)}")
                        for position, ident in enumerate(item.checks) if ident not in ids)
    problems.extend(((*here, "advisory", position),
                     f"unknown check id {ident!r}; ids in this file: {_ids(ids)}")
                    for position, ident in enumerate(checklist.advisory) if ident not in ids)
    return problems


def _ids(ids: set[str]) -> str:
    shown = sorted(ids)
    return ", ".join(shown[:20]) + (", ..." if len(shown) > 20 else "") if shown else "none"


def _target_problems(env: Environment, check: CheckBase) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    for reference in check.references():
        if reference.section == "prometheus":
            if env.targets.prometheus is None:
                problems.append((("kind",), f"a {check.kind} check needs "
                                 "'targets.prometheus.url'"))
            continue
        known = getattr(env.targets, reference.section)
        problems.extend(_named(reference, known))
    if not problems:
        problems.extend(check.target_problems(env.targets))
    return problems


def _named(reference: Reference, known: dict[str, Any]) -> list[tuple[Path, str]]:
    section, key, name = f"targets.{reference.section}", reference.key, reference.name
    if name is None:
        if len(known) == 1:
            return []
        if not known:
            return [(("kind",), f"this check needs a target under '{section}'")]
        return [(("kind",), f"several {section} are declared; name one with "
                 f"'{key[-1]}:' ({_names(known)})")]
    if name not in known:
        return [(key, f"unknown {key[-1]} {name!r}; declared under '{section}': "
                 f"{_names(known)}")]
    return []


def _names(mapping: dict[str, Any]) -> str:
    return ", ".join(sorted(mapping)) or "none"


def _validation_problems(exc: ValidationError, raw: Any,
                         lines: dict[Path, int], path: FsPath) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        where = _data_path(raw, error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "union_tag_invalid":
            where, message = (*where, "kind"), f"unknown kind; use one of {', '.join(kind_names())}"
        elif error["type"] == "union_tag_not_found":
            message = f"the check has no 'kind'; use one of {', '.join(kind_names())}"
        problems.append(f"{path}:{line_of(lines, where)}: {_key(where, raw)}: {message}")
    return problems


def _data_path(raw: Any, loc: tuple[Any, ...]) -> Path:
    """The path into the file for a pydantic ``loc`` (dropping union tags it inserts)."""
    node, result = raw, []
    for index, part in enumerate(loc):
        if (index == 2 and loc[0] == "checks" and isinstance(node, dict)
                and part == node.get("kind")):
            continue  # the union tag pydantic puts after a check's index
        if _has(node, part):
            node = node[part]
        elif isinstance(node, dict) and part in (*kind_names(), "function-after"):
            continue
        else:
            node = None
        result.append(part)
    return tuple(result)


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _key(path: Path, raw: Any = None) -> str:
    """``checks[2] (H4).expect.status`` for a path."""
    text = ""
    for index, part in enumerate(path):
        if isinstance(part, int):
            text += f"[{part}]"
            if index == 1 and path[0] == "checks":
                ident = _check_id(raw, part)
                text += f" ({ident})" if ident else ""
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _check_id(raw: Any, index: int) -> str | None:
    try:
        ident = raw["checks"][index]["id"]
    except (TypeError, KeyError, IndexError):
        return None
    return ident if isinstance(ident, str) else None
