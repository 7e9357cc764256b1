"""Firehose's record processors over tidelake's transform hook: jq metadata extraction and Lambda.

A `MetadataExtraction` processor's `MetadataExtractionQuery` is a jq program (JQ-1.6 in AWS; the
`jq` package here) whose result object gives the values of `!{partitionKeyFromQuery:key}`:

    {customer_id: .customer_id, region: .address.region}

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jq

from sinks.transform import Handler, load_handler

#: The key names under which jq's partition keys reach the prefix (`partitionKeyFromLambda:query:k`).
QUERY_KEY_PREFIX = "query:"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_PAIR = re.compile(rf'\s*(?:({_IDENT})|"([^"\\]+)")\s*:\s*((?:\.{_IDENT})+)\s*')
_QUERY_EXPRESSION = re.compile(r"!\{partitionKeyFromQuery:([^}]*)\}")
#: Column types whose values print as jq prints them (so the fast path gives the same folders).
_SAME_AS_JQ = {"string", "int32", "int64", "bool"}


@dataclass(frozen=True)
class MetadataQuery:
    """A parsed MetadataExtractionQuery. `keys` maps each key to its path (`.a.b`) when the query is
    a plain object of paths, else None (known only by running it)."""

    text: str
    keys: dict[str, str] | None

    def fast_fields(self, declared: Mapping[str, str]) -> dict[str, str] | None:
        """key -> top-level field when every value is one field the sink can read itself; else None.
        `declared` is the declared schema (name -> type name), empty when columns are inferred."""
        if self.keys is None:
            return None
        fields = {}
        for key, path in self.keys.items():
            field = path[1:]
            if "." in field or (declared and declared.get(field) not in _SAME_AS_JQ):
                return None
            fields[key] = field
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
    """The query, checked by jq's compiler (ValueError with jq's message when it is not jq)."""
    jq.compile(text)  # raises ValueError
    body = text.strip()
    keys: dict[str, str] | None = None
    if body.startswith("{") and body.endswith("}"):
        keys = {}
        for pair in body[1:-1].split(","):
            found = _PAIR.fullmatch(pair)
            if found is None:
                keys = None
                break
            keys[found.group(1) or found.group(2)] = found.group(3)
    return MetadataQuery(text, keys or None)


def processing_handler(
    query: MetadataQuery | None, declared: Mapping[str, str], lambda_hook: str | None
) -> Handler | None:
    """The transform hook a Firehose stream needs: its Lambda hook, then jq (when the query is not
    read by the sink itself); None when it needs neither."""
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
