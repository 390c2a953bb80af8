"""Explaining a params.yaml that breaks the schema (pipeline/params.py): one line naming the
key, what is wrong and the fix, with the closest valid key for a misspelt one.

Separate from the schema so that it reads as the schema alone; this module knows nothing of
the schema's sections: the caller passes the keys it knows.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

#: Tagged-union branch names pydantic puts in an error's location (not keys of the file).
_UNION_TAGS = ("vgg", "seed")


def kind_of(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def explain(error: ValidationError, raw: Any, keys: Sequence[str], top_level: Sequence[str]) -> str:
    """The first problem in one line, with the closest valid key for an unknown one.

    `keys`: every dotted key the schema knows; `top_level`: keys that belong at the top of
    the file although the training code reads them in `train`.
    """
    # An unknown key first: a misspelt key is also reported missing under its right name,
    # and the unknown one is what carries the suggestion.
    problems = sorted(error.errors(), key=lambda p: p["type"] != "extra_forbidden")
    first = problems[0]
    loc = tuple(first["loc"])
    key = _dotted(loc)
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{key}'{_suggest(key, keys, top_level)}{more}"
    if kind == "missing":
        return f"missing key '{key}': add it (see `ferflow params` for its meaning){more}"
    if kind == "union_tag_invalid":
        tag = _lookup(raw, (*loc, "name")) if loc else None
        return f"model.name={tag!r} is unknown; choose one of: seed, vgg{more}"
    return explain_value(key, _lookup(raw, loc), first["msg"]) + more


def explain_value(key: str, value: Any, message: str) -> str:
    """`key=value: what is wrong`, the value cut short, with a hint where one helps."""
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{key}={shown}: {message.lower()}{_hint(key)}"


def _dotted(loc: tuple[Any, ...]) -> str:
    parts = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        elif item in _UNION_TAGS and parts and parts[-1] == "model":
            continue  # pydantic's tagged-union branch, not a key of the file
        else:
            parts.append(str(item))
    return ".".join(parts)


def _lookup(raw: Any, loc: tuple[Any, ...]) -> Any:
    """The value at pydantic's error location in the raw file (None if absent)."""
    node = raw
    for item in loc:
        if item in _UNION_TAGS:
            continue
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _hint(key: str) -> str:
    if key == "batch_size" or key.endswith(".batch_size"):
        return " (a whole number of faces, e.g. 64)"
    return ""


def _suggest(key: str, keys: Sequence[str], top_level: Sequence[str]) -> str:
    leaf = key.rsplit(".", 1)[-1]
    if leaf in top_level and "." in key:
        return (
            f": `{leaf}` is a top-level key (write `{leaf}:` at the top of params.yaml, "
            f"or `dvc exp run -S {leaf}=...`)"
        )
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    siblings = (
        [k for k in keys if k.rsplit(".", 1)[0] == parent and "." in k]
        if parent
        else [k for k in keys if "." not in k]
    )
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6) or difflib.get_close_matches(
        key, list(keys), n=1, cutoff=0.75
    )
    return f"; did you mean '{close[0]}'?" if close else ""
