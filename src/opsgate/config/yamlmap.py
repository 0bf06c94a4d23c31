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


MAX_NODES = 200_000
MAX_DEPTH = 200


class Unreadable(ValueError):
    """The document is YAML but not one an environment file can be; ``line`` is where."""

    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(message)


def load_with_lines(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse ``text`` (one YAML document); return the data and a map path -> 1-based line."""
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except RecursionError:
        raise Unreadable(1, f"nesting deeper than {MAX_DEPTH} levels; an environment file "
                         "is a few levels deep") from None
    lines: dict[Path, int] = {}
    if node is None:
        return None, lines
    return _build(node, (), lines, [0], yaml.SafeLoader("")), lines


def _build(node: yaml.Node, path: Path, lines: dict[Path, int], count: list[int],
           loader: yaml.SafeLoader) -> Any:
    count[0] += 1
    if count[0] > MAX_NODES or len(path) > MAX_DEPTH:
        raise Unreadable(node.start_mark.line + 1,
                         f"the document expands to more than {MAX_NODES} values or "
                         f"{MAX_DEPTH} levels (an alias that contains itself, or an alias "
                         "bomb); write the values out")
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise Unreadable(key_node.start_mark.line + 1,
                                 "a mapping key must be a plain value, not a list or a mapping")
            if key in result:
                raise DuplicateKey((*path, key), key_node.start_mark.line + 1)
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, (*path, key), lines, count, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, index), lines, count, loader)
                for index, item in enumerate(node.value)]
    return loader.construct_object(node)


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path`` or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None
