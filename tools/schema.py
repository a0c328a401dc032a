"""The JSON schema a model sees for a tool's arguments."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# Keywords whose values are data, not sub-schemas: left exactly as pydantic wrote them.
_DATA_KEYWORDS = frozenset({"default", "enum", "const", "examples"})


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Pydantic's schema with `$ref`s inlined and titles dropped.

    Some model APIs reject `$defs`/`$ref`, and the generated titles only repeat the field names.
    (Recursive models cannot be inlined; our argument models are not recursive.)
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline(schema, defs)
    return inlined


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _inline({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    cleaned: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):  # a property named "title" has a dict value: kept
            continue
        cleaned[key] = value if key in _DATA_KEYWORDS else _inline(value, defs)
    return cleaned
