"""Firehose's record processors over tidelake's transform hook: jq metadata extraction and Lambda.

A `MetadataExtraction` processor's `MetadataExtractionQuery` is a jq program (JQ-1.6 in AWS; the
`jq` package here) whose result object gives the values of `!{partitionKeyFromQuery:key}`:

    {customer_id: .customer_id, region: .address.region}

Only queries of Firehose's documented shape are accepted (`ACCEPTED_SHAPE`): an object whose values
are paths, each optionally piped through a few functions (`SAFE_FUNCTIONS`), so jq never runs a
program that could loop, import a file or read `$ENV`/`env`/`input`.

Running jq costs about 33 µs a record (50,000 JSON records of 260 bytes, `jq.compile(q).input_text(r)`,
one core of the development machine), against about 4 µs a record for the sink's whole JSON ->
Arrow conversion, and a hook also turns off the conversion that runs ahead of a flush. So a query
whose every value is one top-level field (`{cid: .customer_id}`) is not run at all: the prefix reads
that column of the converted records (`!{partitionKeyFromQuery:customer_id}`, the sink's own field
lookup). Any other query (nested paths, functions) runs in jq for each record, inside the transform
hook (`sinks.transform`), which hands its keys to the prefix as `!{partitionKeyFromLambda:query:key}`.

What differs between the two: a float partition value (`1.0`) is written as Arrow prints it on the
fast path (`1.0`) and as jq prints it (`1`) otherwise; a field that is missing or null is
`__HIVE_DEFAULT_PARTITION__` either way (Firehose files such a record as an error).

A `Lambda` processor's hook runs first; jq then reads the records the hook returned (`Ok` ones).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jq

from sinks.transform import Handler, load_handler

#: The key names under which jq's partition keys reach the prefix (`partitionKeyFromLambda:query:k`).
QUERY_KEY_PREFIX = "query:"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
#: A jq string literal without escapes (so no `\\(...)` interpolation).
_STRING = r'"[^"\\\x00-\x1f]*"'
_QUERY_EXPRESSION = re.compile(r"!\{partitionKeyFromQuery:([^}]*)\}")
#: Column types whose values print as jq prints them (so the fast path gives the same folders).
_SAME_AS_JQ = {"string", "int32", "int64", "bool"}

# -- the accepted MetadataExtractionQuery: `{key: PATH | f | ..., ...}` --------------------------
#: Functions a value may be piped through: none loops, reads input, the environment or a file.
SAFE_FUNCTIONS = (
    "tostring", "tonumber", "ascii_downcase", "ascii_upcase", "floor", "todate", "fromdate",
    "mktime", "gmtime", 'strftime("...")', 'strptime("...")',
)  # fmt: skip
_FUNCTION = re.compile(
    rf"(?:tostring|tonumber|ascii_downcase|ascii_upcase|floor|todate|fromdate|mktime|gmtime"
    rf"|(?:strftime|strptime)\(\s*{_STRING}\s*\))(?![A-Za-z0-9_])"
)
#: `.a`, `.a.b`, `.["x y"]`, `.a[0]`, `.a[0].b`.
_PATH = re.compile(rf"(?:\.(?:{_IDENT}|\[{_STRING}\])(?:\[[0-9]{{1,9}}\])*)+")
_KEY = re.compile(rf'({_IDENT})|"([^"\\\x00-\x1f]+)"')
_SPACE = re.compile(r"\s*")
_TOP_FIELD = re.compile(rf"\.({_IDENT})")
ACCEPTED_SHAPE = (
    'an object {key: PATH, ...} whose values are paths (.a, .a.b, .["x y"], .a[0]), each optionally '
    f"piped through {', '.join(SAFE_FUNCTIONS)} (literal formats), as in "
    '{customer_id: .customer_id, year: .event_timestamp | strftime("%Y")}'
)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def literal(self, token: str) -> bool:
        self.skip()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def pattern(self, regex: re.Pattern[str]) -> re.Match[str] | None:
        self.skip()
        found = regex.match(self.text, self.pos)
        if found is not None:
            self.pos = found.end()
        return found


def _expression(scan: _Scanner, *, nested: bool = False) -> str | None:
    """One value: PATH (| FUNCTION)*, optionally in (one pair of) parentheses; its text, or None."""
    if not nested and scan.literal("("):
        inner = _expression(scan, nested=True)
        return inner if inner is not None and scan.literal(")") else None
    path = scan.pattern(_PATH)
    if path is None:
        return None
    parts = [path.group(0)]
    while scan.literal("|"):
        function = scan.pattern(_FUNCTION)
        if function is None:
            return None
        parts.append(function.group(0))
    return " | ".join(parts)


def accepted_keys(text: str) -> dict[str, str] | None:
    """key -> value expression when `text` has the accepted shape (`ACCEPTED_SHAPE`), else None."""
    scan = _Scanner(text)
    if not scan.literal("{"):
        return None
    keys: dict[str, str] = {}
    while True:
        key = scan.pattern(_KEY)
        if key is None or not scan.literal(":"):
            return None
        value = _expression(scan)
        if value is None:
            return None
        keys[key.group(1) or key.group(2)] = value
        if scan.literal("}"):
            break
        if not scan.literal(","):
            return None
    scan.skip()
    return keys if scan.pos == len(text) else None


@dataclass(frozen=True)
class MetadataQuery:
    """A parsed MetadataExtractionQuery of the accepted shape: `keys` maps each key to its value
    expression (`.a.b`, `.ts | strftime("%Y")`)."""

    text: str
    keys: dict[str, str]

    def fast_fields(self, declared: Mapping[str, str]) -> dict[str, str] | None:
        """key -> top-level field when every value is one field the sink can read itself; else None.
        `declared` is the declared schema (name -> type name), empty when columns are inferred."""
        fields = {}
        for key, expression in self.keys.items():
            top = _TOP_FIELD.fullmatch(expression)
            if top is None or (declared and declared.get(top.group(1)) not in _SAME_AS_JQ):
                return None
            fields[key] = top.group(1)
        return fields

    def needs_jq(self, declared: Mapping[str, str]) -> bool:
        return self.fast_fields(declared) is None

    def rewrite_prefix(self, layout: str, declared: Mapping[str, str]) -> str:
        """The layout with each `!{partitionKeyFromQuery:key}` pointing at where its value comes from."""
        fields = self.fast_fields(declared)
        if fields is not None:
            return _QUERY_EXPRESSION.sub(
                lambda m: f"!{{partitionKeyFromQuery:{fields[m.group(1).strip()]}}}", layout
            )
        return _QUERY_EXPRESSION.sub(
            lambda m: f"!{{partitionKeyFromLambda:{QUERY_KEY_PREFIX}{m.group(1).strip()}}}", layout
        )


def parse_metadata_query(text: str) -> MetadataQuery:
    """The query when it has the accepted shape (`ACCEPTED_SHAPE`: paths and a few functions that
    cannot loop or read the environment, files or other input), checked by jq's compiler too;
    ValueError saying what is accepted otherwise."""
    keys = accepted_keys(text)
    if not keys:
        raise ValueError(f"tidelake accepts {ACCEPTED_SHAPE}")
    jq.compile(text)  # raises ValueError
    return MetadataQuery(text, keys)


def check_hook_module(reference: str, allowed: Sequence[str]) -> None:
    """ValueError unless the module of `reference` (`package.module:function`) is one of `allowed`
    or inside one of them (`a.b.c` is allowed by `a.b.c`, `a.b` or `a`). Checked before any import."""
    module = reference.partition(":")[0]
    if not any(module == name or module.startswith(name + ".") for name in allowed if name):
        if not allowed:
            msg = (
                "the serve operator allows no transform hook module (setting query.firehose_hook_modules, "
                "env TIDELAKE_QUERY__FIREHOSE_HOOK_MODULES, is empty)"
            )
        else:
            msg = f"module {module!r} is not in the setting query.firehose_hook_modules {list(allowed)}"
        raise ValueError(msg)


def processing_handler(
    query: MetadataQuery | None,
    declared: Mapping[str, str],
    lambda_hook: str | None,
    hook_modules: Sequence[str] | None = None,
) -> Handler | None:
    """The transform hook a Firehose stream needs: its Lambda hook, then jq (when the query is not
    read by the sink itself); None when it needs neither. `hook_modules` (when given) is checked
    before the hook is imported."""
    if lambda_hook and hook_modules is not None:
        check_hook_module(lambda_hook, hook_modules)
    user = load_handler(lambda_hook) if lambda_hook else None
    program = jq.compile(query.text) if query is not None and query.needs_jq(declared) else None
    if program is None:
        return user
    return _JqHandler(program, user)


class _JqHandler:
    """A transform hook that adds jq's partition keys to what the Lambda hook (or none) returned."""

    def __init__(self, program: Any, user: Handler | None) -> None:
        self.program = program
        self.user = user

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        if self.user is not None:
            answer = self.user(event, context)
        else:
            answer = {
                "records": [
                    {"recordId": r["recordId"], "result": "Ok", "data": r["data"]} for r in event["records"]
                ]
            }
        records = answer.get("records") if isinstance(answer, dict) else None
        if not isinstance(records, list):
            return answer  # the sink turns a malformed answer into processing-failed records
        for item in records:
            if isinstance(item, dict) and item.get("result") == "Ok":
                keys = self.keys(item.get("data") or "")
                if keys:
                    metadata = item.setdefault("metadata", {})
                    if isinstance(metadata, dict):
                        found = metadata.setdefault("partitionKeys", {})
                        if isinstance(found, dict):
                            found.update(keys)
        return answer

    def keys(self, data: str) -> dict[str, str]:
        """jq's keys for one record (base64 data), named for the prefix; {} when the record is not
        JSON or the query fails on it (the conversion then files a record that is not JSON)."""
        try:
            result = self.program.input_text(base64.b64decode(data).decode("utf-8")).first()
        except (ValueError, UnicodeDecodeError, StopIteration):
            return {}
        if not isinstance(result, dict):
            return {}
        return {f"{QUERY_KEY_PREFIX}{k}": _text(v) for k, v in result.items() if v is not None}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else str(value)
