"""Parsing untrusted JSON and YAML text with bounds, before any value is built from it.

Every text a caller sends (REST bodies, the CLI's files, a proxy's node metadata, a KDS spec) is read
here. Two bounds hold whatever the text is:

- nesting: a collection nested deeper than ``MAX_DEPTH`` is refused while scanning (JSON) or composing
  (YAML), so no parser recurses far enough to raise ``RecursionError``;
- YAML aliases: each alias counts the nodes it stands for (the expanded size of its anchored node,
  computed once per node); past ``MAX_ALIAS_NODES`` in one document the text is refused while
  composing, before anything is constructed or quoted in a message (the "billion laughs" bomb is a
  few hundred bytes). An alias to a collection still being composed (a recursive structure) is
  refused too.

Both raise ``TextLimit`` (a ``ValueError``) with a message that names the bound and where it was
passed; ``codec.load_documents`` and ``load_json``'s callers turn it into ``InvalidInput``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_DEPTH = 64
"""Collections nested deeper than this are refused (JSON and YAML)."""

MAX_ALIAS_NODES = 10_000
"""At most this many nodes may be brought in by the aliases of one YAML document."""


class TextLimit(ValueError):
    """A JSON or YAML text passes a bound (nesting depth, alias expansion)."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, composing with a nesting bound and an alias expansion bound."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}
        self._open: list[str] = []  # anchors of the collections being composed

    def compose_document(self) -> Node | None:
        self._alias_nodes = 0
        self._sizes.clear()
        node: Node | None = super().compose_document()
        return node

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            anchored = self.anchors.get(event.anchor) if event.anchor is not None else None
            if anchored is not None:
                if event.anchor in self._open:
                    raise TextLimit(f"{_where(event)}: a recursive alias (*{event.anchor}) is not allowed")
                self._alias_nodes += self._size(anchored)
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise TextLimit(
                        f"{_where(event)}: aliases expand to more than {MAX_ALIAS_NODES} nodes (*{event.anchor})"
                    )
            node: Node | None = super().compose_node(parent, index)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise TextLimit(f"{_where(event)}: nested deeper than {MAX_DEPTH} levels")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open.append(anchor)
        try:
            composed: Node | None = super().compose_node(parent, index)
            return composed
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.pop()

    def _size(self, node: Node) -> int:
        """How many nodes ``node`` stands for, aliases expanded (memoized per node)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(self._size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(self._size(k) + self._size(v) for k, v in node.value)
        self._sizes[id(node)] = total
        return total


def _where(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "here"


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML (or JSON) text, within the bounds; ``yaml.YAMLError`` or
    ``TextLimit`` if it is not."""
    loader = BoundedLoader(text)
    try:
        out = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            out.append(loader.get_data())
        return out
    finally:
        loader.dispose()


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def check_json_depth(text: str) -> None:
    """``TextLimit`` if the JSON text nests collections deeper than ``MAX_DEPTH`` (strings skipped)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for m in _JSON_TOKENS.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise TextLimit(f"character {m.start() + 1}: nested deeper than {MAX_DEPTH} levels")
        elif token in "]}":
            depth -= 1


def load_json(text: str) -> Any:
    """``json.loads`` within the nesting bound: ``TextLimit`` or ``json.JSONDecodeError`` if wrong."""
    check_json_depth(text)
    return json.loads(text)
