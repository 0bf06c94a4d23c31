"""Read YAML keeping the line of every key, so errors can name file, line and key."""

from __future__ import annotations

from typing import Any

import yaml

Path = tuple[str | int, ...]


class DuplicateKey(ValueError):
    """A mapping repeats a key (YAML would silently keep the last one)."""

    def __init__(self, path: Path, line: int):
        self.path, self.line = path, line
        super().__init__(f"duplicate key {path[-1]!r}")


def load_with_lines(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse ``text`` (one YAML document); return the data and a map path -> 1-based line."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[Path, int] = {}
    if node is None:
        return None, lines
    return _build(node, (), lines), lines


def _build(node: yaml.Node, path: Path, lines: dict[Path, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(" ").construct_object(key_node)
            if key in result:
                raise DuplicateKey((*path, key), key_node.start_mark.line + 1)
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, (*path, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, index), lines) for index, item in enumerate(node.value)]
    return yaml.SafeLoader(" ").construct_object(node)


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path`` or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None
