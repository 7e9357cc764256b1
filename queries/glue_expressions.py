"""Glue's two `Expression` filters: table-name patterns (GetTables) and partition predicates (GetPartitions).

**GetTables** (`table_pattern`): "a regular expression pattern; only those tables whose names match
the pattern are returned" (botocore's Glue model). Glue reads it as the Hive metastore does: the
whole name must match, case-insensitively, and a `*` that does not follow a `.` is a wildcard
(`*events*`, `click*`: what awswrangler's `name_contains` / `name_prefix` send), so `.*events.*`
and `*events*` mean the same. A pattern that is not a regular expression is InvalidInputException.

**GetPartitions** (`partition_predicate`): "SQL syntax similar to the SQL WHERE filter clause" over
the table's partition keys (botocore's Glue model, GetPartitionsRequest.Expression): `=`, `<>`
(`!=`), `>`, `<`, `>=`, `<=`, AND, OR, NOT, IN, BETWEEN, LIKE (`%`, `_`), IS [NOT] NULL and
parentheses, with string and number literals. Glue compares each partition value as its key's type:
`int`/`bigint`/`smallint`/`tinyint`/`long` as integers, `date` as `YYYY-MM-DD`, `timestamp` as
`YYYY-MM-DD hh:mm:ss[.f]`, `decimal` as a decimal, `string`/`varchar`/`char` as text; a literal that
does not fit its key's type, an unknown key, LIKE on a key that is not a string, a function, an
arithmetic expression or a comparison of two keys is InvalidInputException. The NULL partition
(`__HIVE_DEFAULT_PARTITION__`) is NULL: only IS NULL selects it (SQL's three-valued logic).

The text is parsed by DuckDB's own SQL parser (`json_serialize_sql` of `SELECT 1 WHERE <text>`),
and only the whitelisted nodes above are evaluated, here in Python: nothing is ever executed.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from core.aws_json import AwsError
from core.lake import NULL_PARTITION

#: A partition's values, one per key, in key order; None is the NULL partition.
Values = Sequence[str | None]
#: Three-valued logic: True, False or None (unknown).
_Truth = bool | None

_INTEGER_TYPES = ("int", "integer", "bigint", "smallint", "tinyint", "long")
_STRING_TYPES = ("string", "varchar", "char")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?$")
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "COMPARE_EQUAL": lambda a, b: a == b,
    "COMPARE_NOTEQUAL": lambda a, b: a != b,
    "COMPARE_GREATERTHAN": lambda a, b: a > b,
    "COMPARE_LESSTHAN": lambda a, b: a < b,
    "COMPARE_GREATERTHANOREQUALTO": lambda a, b: a >= b,
    "COMPARE_LESSTHANOREQUALTO": lambda a, b: a <= b,
}
#: The mirror of a comparison written literal-first (`3 < hour` is `hour > 3`).
_MIRRORED = {
    "COMPARE_EQUAL": "COMPARE_EQUAL",
    "COMPARE_NOTEQUAL": "COMPARE_NOTEQUAL",
    "COMPARE_GREATERTHAN": "COMPARE_LESSTHAN",
    "COMPARE_LESSTHAN": "COMPARE_GREATERTHAN",
    "COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
    "COMPARE_LESSTHANOREQUALTO": "COMPARE_GREATERTHANOREQUALTO",
}


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidInputException", message)


# -- GetTables ---------------------------------------------------------------------------------
def table_pattern(expression: str | None) -> Callable[[str], bool]:
    """A test of table names for GetTables' `Expression`; None or "" matches every name.

    `table_pattern("*events*")("clickstream_events") is True`; InvalidInputException for a
    pattern that is not a regular expression."""
    if not expression:
        return lambda name: True
    translated = re.sub(r"(?<!\.)\*", ".*", expression)
    try:
        compiled = re.compile(translated, re.IGNORECASE)
    except re.error as exc:
        raise _invalid(f"Expression {expression!r} is not a valid regular expression: {exc}") from exc
    return lambda name: compiled.fullmatch(name) is not None


# -- GetPartitions -----------------------------------------------------------------------------
_parser = duckdb.connect()
_parser_lock = threading.Lock()


def partition_predicate(expression: str | None, keys: Sequence[tuple[str, str]]) -> Callable[[Values], bool]:
    """A test of a partition's values for GetPartitions' `Expression` over `keys` ((name, Glue
    type) pairs, the table's PartitionKeys in order); None or blank selects every partition.

    `partition_predicate("dt = '2019-01-22' AND hour > 3", [("dt", "date"), ("hour", "int")])`
    is True for `["2019-01-22", "04"]`. Every check that does not need a partition's values
    (syntax, keys, literals, types) is made here, so a bad expression fails even on a table with no
    partitions: InvalidInputException."""
    if expression is None or not expression.strip():
        return lambda values: True
    tree = _parse(expression)
    types = {name.lower(): (index, kind.lower().strip()) for index, (name, kind) in enumerate(keys)}
    test = _compile(tree, types, expression)
    return lambda values: test(values) is True


def _parse(expression: str) -> dict[str, Any]:
    with _parser_lock:
        row = _parser.execute(
            "SELECT json_serialize_sql($sql::VARCHAR)", {"sql": f"SELECT 1 WHERE {expression}"}
        ).fetchone()
    tree: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    statements: list[dict[str, Any]] = tree.get("statements") or []
    if tree.get("error") or len(statements) != 1:
        reason = tree.get("error_message") or "not one expression"
        raise _invalid(f"Unsupported expression '{expression}': {reason}")
    node = statements[0].get("node") or {}
    plain = (
        node.get("type") == "SELECT_NODE"
        and (node.get("from_table") or {}).get("type") == "EMPTY"
        and not node.get("modifiers")
        and not node.get("group_expressions")
        and node.get("having") is None
        and node.get("qualify") is None
        and len(node.get("select_list") or []) == 1
        and node.get("where_clause") is not None
    )
    if not plain:
        raise _invalid(f"Unsupported expression '{expression}': give one filter over the partition keys")
    return node["where_clause"]


_Test = Callable[[Values], _Truth]


def _compile(node: dict[str, Any], types: dict[str, tuple[int, str]], text: str) -> _Test:
    """The node as a function of a partition's values (True, False or None); refuses what Glue does not read."""
    kind = node.get("type", "")
    if kind in ("CONJUNCTION_AND", "CONJUNCTION_OR"):
        parts = [_compile(child, types, text) for child in node["children"]]
        return _and(parts) if kind == "CONJUNCTION_AND" else _or(parts)
    if kind == "OPERATOR_NOT":
        inner = _compile(node["children"][0], types, text)
        return lambda values: None if (v := inner(values)) is None else not v
    if kind in _COMPARISONS:
        left, right = node["left"], node["right"]
        if _is_literal(left) and _is_column(right):
            left, right, kind = right, left, _MIRRORED[kind]
        key = _key(left, types, text)
        literal = _literal_of(right, key, text)
        compare = _COMPARISONS[kind]
        return lambda values: None if (v := _value(values, key)) is None else compare(v, literal)
    if kind in ("OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL"):
        key = _key(node["children"][0], types, text)
        wanted = kind == "OPERATOR_IS_NULL"
        return lambda values: (values[key[0]] is None or values[key[0]] == NULL_PARTITION) == wanted
    if kind == "COMPARE_IN":
        key = _key(node["children"][0], types, text)
        options = [_literal_of(child, key, text) for child in node["children"][1:]]
        return lambda values: None if (v := _value(values, key)) is None else v in options
    if kind == "COMPARE_BETWEEN":
        key = _key(node["input"], types, text)
        low, high = _literal_of(node["lower"], key, text), _literal_of(node["upper"], key, text)
        return lambda values: None if (v := _value(values, key)) is None else low <= v <= high
    if kind == "FUNCTION" and node.get("is_operator") and node.get("function_name") in ("~~", "!~~"):
        arguments = [a["expression"] for a in node.get("arguments", [])]
        key = _key(arguments[0], types, text)
        if key[1] not in _STRING_TYPES:
            raise _invalid(f"{key[1]} partition key '{key[2]}' doesn't support operation 'LIKE'")
        pattern = _like_regex(_literal_of(arguments[1], key, text))
        negate = node["function_name"] == "!~~"
        return lambda values: (
            None if (v := _value(values, key)) is None else (pattern.fullmatch(v) is not None) != negate
        )
    raise _invalid(f"Unsupported expression '{text}': {_describe(node)} is not a Glue partition filter")


def _and(parts: list[_Test]) -> _Test:
    def test(values: Values) -> _Truth:
        results = [part(values) for part in parts]
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True

    return test


def _or(parts: list[_Test]) -> _Test:
    def test(values: Values) -> _Truth:
        results = [part(values) for part in parts]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False

    return test


#: (index in the values, Glue type, name as written).
_Key = tuple[int, str, str]


def _is_column(node: dict[str, Any]) -> bool:
    return node.get("type") == "COLUMN_REF"


def _is_literal(node: dict[str, Any]) -> bool:
    return node.get("type") == "VALUE_CONSTANT"


def _key(node: dict[str, Any], types: dict[str, tuple[int, str]], text: str) -> _Key:
    if not _is_column(node) or len(node.get("column_names", [])) != 1:
        raise _invalid(f"Unsupported expression '{text}': {_describe(node)} where a partition key goes")
    name = node["column_names"][0]
    found = types.get(name.lower())
    if found is None:
        known = ", ".join(types) or "none: the table has no partition keys"
        raise _invalid(f"Unknown column '{name}' (partition keys: {known})")
    return found[0], found[1], name


def _literal_of(node: dict[str, Any], key: _Key, text: str) -> Any:
    """A literal cast to its key's type, as Glue casts it."""
    if not _is_literal(node) or node["literal"].get("kind") in ("NULL", "NULL_LITERAL", "BOOLEAN"):
        raise _invalid(f"Unsupported expression '{text}': {_describe(node)} where a literal goes")
    literal = node["literal"]["text"]
    try:
        return _cast(literal, key[1])
    except ValueError as exc:
        raise _invalid(f"'{literal}' is not a valid {key[1]} for partition key '{key[2]}': {exc}") from exc


def _value(values: Values, key: _Key) -> Any:
    """A partition's value of `key` in its type; None for the NULL partition or a value that does
    not fit the type (it matches no comparison, as a NULL)."""
    raw = values[key[0]]
    if raw is None or raw == NULL_PARTITION:
        return None
    try:
        return _cast(raw, key[1])
    except ValueError:
        return None


def _cast(text: str, kind: str) -> Any:
    """`text` as a value of the Glue type `kind`; ValueError when it does not fit."""
    if kind in _INTEGER_TYPES:
        return int(text.strip())
    if kind in _STRING_TYPES or kind.startswith(("varchar(", "char(")):
        return text
    if kind == "date":
        return dt.date.fromisoformat(text.strip())
    if kind == "timestamp":
        if not _TIMESTAMP.match(text.strip()):
            msg = "timestamps are yyyy-mm-dd hh:mm:ss[.fffffffff]"
            raise ValueError(msg)
        return dt.datetime.fromisoformat(text.strip()[:26])
    if kind == "decimal" or kind.startswith("decimal("):
        try:
            return decimal.Decimal(text.strip())
        except decimal.InvalidOperation as exc:
            msg = "not a decimal"
            raise ValueError(msg) from exc
    msg = f"partition keys of type {kind} cannot be filtered (Glue: string, date, timestamp, int, bigint, long, tinyint, smallint, decimal)"
    raise AwsError("InvalidInputException", msg)


def _like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE as a regular expression: `%` any run, `_` any one character, the rest literal."""
    parts = ("." if ch == "_" else ".*" if ch == "%" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


def _describe(node: dict[str, Any]) -> str:
    if node.get("type") == "FUNCTION":
        return f"the function {node.get('function_name')}()"
    if _is_column(node):
        return f"the column {'.'.join(node.get('column_names', []))}"
    if _is_literal(node):
        return f"the literal {node['literal'].get('text')!r}"
    return str(node.get("type", "this part")).lower().replace("_", " ")
