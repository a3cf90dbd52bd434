"""Dot-separated property paths (appendices, "Dot-separated property paths").

A path joins property names with ``.``; a literal ``.`` or ``\\`` inside a name is
escaped with a backslash (``content.m\\.relates_to``). Any other escape sequence is
left as it is: ``\\x`` is a backslash followed by ``x``.

The flattened event maps each path, in its canonical spelling (only ``.`` and ``\\``
escaped), to the value found there; objects are walked into and never stored
themselves, since no condition matches an object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def split_path(path: str) -> list[str]:
    """The property names of ``path``, unescaped."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    length = len(path)
    while index < length:
        char = path[index]
        if char == "\\" and index + 1 < length and path[index + 1] in ".\\":
            current.append(path[index + 1])
            index += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def escape_name(name: str) -> str:
    """One property name as it appears in a path."""
    if "\\" in name:
        name = name.replace("\\", "\\\\")
    if "." in name:
        name = name.replace(".", "\\.")
    return name


def canonical_path(path: str) -> str:
    """``path`` spelt as the flattened event spells it (``content.m\\x`` becomes
    ``content.m\\\\x``: the same property, its backslash escaped)."""
    return ".".join(escape_name(name) for name in split_path(path))


def flatten(event: Mapping[str, Any]) -> dict[str, Any]:
    """Every non-object value of ``event`` under its canonical path."""
    return dict(_walk(event, ""))


def _walk(value: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for name, child in value.items():
        if not isinstance(name, str):
            continue
        path = prefix + escape_name(name)
        if isinstance(child, Mapping):
            yield from _walk(child, path + ".")
        else:
            yield path, child
