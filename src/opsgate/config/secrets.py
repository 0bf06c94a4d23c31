"""Expand ``${VAR}`` references from the process environment and remember every value as secret.

A value that came from the environment is treated as a secret wherever it lands: the redactor
is handed every expanded value. ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsgate.config.yamlmap import Path

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingVariable(Exception):
    """A referenced environment variable is not set."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = path, name
        super().__init__(name)


def expand(data: Any, environ: Mapping[str, str], secrets: set[str],
           missing: list[MissingVariable], path: Path = ()) -> Any:
    """A copy of ``data`` with references expanded; collects secrets and missing names."""
    if isinstance(data, dict):
        return {key: expand(value, environ, secrets, missing, (*path, key))
                for key, value in data.items()}
    if isinstance(data, list):
        return [expand(item, environ, secrets, missing, (*path, index))
                for index, item in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if name not in environ:
            missing.append(MissingVariable(path, name))
            return ""
        value = environ[name]
        if value:
            secrets.add(value)
        return value

    return _REFERENCE.sub(substitute, data)
