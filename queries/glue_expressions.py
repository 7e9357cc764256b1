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
#: Longest GetTables pattern read (AWS's FilterString allows 2,048 characters; table names are at most 255).
MAX_TABLE_PATTERN = 256
#: One character class of a pattern: a test of one (lower-cased) character.
_Class = Callable[[str], bool]
_ESCAPES: dict[str, _Class] = {
    "d": str.isdigit,
    "D": lambda c: not c.isdigit(),
    "w": lambda c: c.isalnum() or c == "_",
    "W": lambda c: not (c.isalnum() or c == "_"),
    "s": str.isspace,
    "S": lambda c: not c.isspace(),
}
_META = set("()[]{}+?*|\\^$.")


def _any(_: str) -> bool:
    return True


def table_pattern(expression: str | None) -> Callable[[str], bool]:
    """A test of table names for GetTables' `Expression`; None or "" matches every name.

    `table_pattern("*events*")("clickstream_events") is True`. The pattern is read as a regular
    expression without groups: alternatives `a|b`, literal text, `.`, `\\d`-style escapes,
    `[a-z_]` classes, each optionally followed by `+` or `?`, `.*`, and Hive's `*` wildcard (a `*`
    not after `.`: any run of characters, so `page*` is `page.*`). It is matched by a state-set simulation
    (Thompson's construction), never by backtracking, so any pattern costs at most
    (pattern length x name length) steps. Anything else (groups, `{m,n}`, nested quantifiers, a
    pattern over `MAX_TABLE_PATTERN` characters, a broken class) is InvalidInputException."""
    if not expression:
        return lambda name: True
    if len(expression) > MAX_TABLE_PATTERN:
        msg = f"Expression is {len(expression)} characters; tidelake reads table patterns of at most {MAX_TABLE_PATTERN}"
        raise _invalid(msg)
    alternatives = [_pattern_atoms(part, expression) for part in expression.split("|")]
    return lambda name: any(_nfa_match(atoms, name.lower()) for atoms in alternatives)


#: (character class, repeats): repeats False is exactly one, True is zero or more; an optional
#: atom (`x?`) is (class, None).
_Atom = tuple[_Class, bool | None]


def _pattern_atoms(text: str, whole: str) -> list[_Atom]:
    """One alternative of a table pattern as atoms (see `table_pattern`)."""
    text = text.removeprefix("^")
    if text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1]
    atoms: list[_Atom] = []
    i, quantifiable = 0, False
    while i < len(text):
        ch = text[i]
        if (ch in "+?" or (ch == "*" and text[i - 1] == ".")) and quantifiable:
            cls = atoms[-1][0]
            if ch == "*":
                atoms[-1] = (cls, True)
            elif ch == "+":
                atoms.append((cls, True))
            else:
                atoms[-1] = (cls, None)
            i, quantifiable = i + 1, False
            continue
        if ch == "*":  # Hive's wildcard: any run
            if not (atoms and atoms[-1] == (_any, True)):
                atoms.append((_any, True))
            i, quantifiable = i + 1, False
            continue
        if ch == ".":
            cls, i = _any, i + 1
        elif ch == "\\":
            if i + 1 >= len(text):
                raise _invalid(f"Expression {whole!r} ends with a lone '\\'")
            escaped = text[i + 1]
            cls = _ESCAPES.get(escaped) or _literal(escaped.lower())
            i += 2
        elif ch == "[":
            cls, i = _bracket(text, i, whole)
        elif ch in _META:
            msg = (
                f"Expression {whole!r} is not a table pattern tidelake reads: {ch!r} at {i} "
                "(text, '.', '*', '+', '?', '|', '\\d'-style escapes and [classes]; no groups or {m,n})"
            )
            raise _invalid(msg)
        else:
            cls, i = _literal(ch.lower()), i + 1
        atoms.append((cls, False))
        quantifiable = True
    return atoms


def _literal(ch: str) -> _Class:
    return lambda c: c == ch


def _bracket(text: str, start: int, whole: str) -> tuple[_Class, int]:
    """The class `[...]` starting at `start` (ranges, `^` negation, escapes) and where it ends."""
    i = start + 1
    negate = i < len(text) and text[i] == "^"
    i += negate
    singles: set[str] = set()
    ranges: list[tuple[str, str]] = []
    escapes: list[_Class] = []
    first = True
    while True:
        if i >= len(text):
            raise _invalid(f"Expression {whole!r} has an unterminated character class at {start}")
        ch = text[i]
        if ch == "]" and not first:
            i += 1
            break
        first = False
        if ch == "\\" and i + 1 < len(text):
            escaped = text[i + 1]
            if escaped in _ESCAPES:
                escapes.append(_ESCAPES[escaped])
            else:
                singles.add(escaped.lower())
            i += 2
            continue
        if i + 2 < len(text) and text[i + 1] == "-" and text[i + 2] != "]":
            low, high = ch.lower(), text[i + 2].lower()
            if low > high:
                raise _invalid(f"Expression {whole!r} has a bad range {ch}-{text[i + 2]}")
            ranges.append((low, high))
            i += 3
            continue
        singles.add(ch.lower())
        i += 1

    def test(c: str) -> bool:
        inside = c in singles or any(low <= c <= high for low, high in ranges) or any(e(c) for e in escapes)
        return inside != negate

    return test, i


def _nfa_match(atoms: list[_Atom], name: str) -> bool:
    """Whether `atoms` match all of `name`: the set of atoms reached is carried along the name
    (state k: the first k atoms are matched), so no choice is ever retried."""
    end = len(atoms)

    def closure(states: set[int]) -> set[int]:
        reached, todo = set(states), list(states)
        while todo:
            k = todo.pop()
            if k < end and atoms[k][1] is not False and k + 1 not in reached:
                reached.add(k + 1)
                todo.append(k + 1)
        return reached

    states = closure({0})
    for c in name:
        following = set()
        for k in states:
            if k < end and atoms[k][0](c):
                following.add(k if atoms[k][1] is True else k + 1)
        if not following:
            return False
        states = closure(following)
    return end in states


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
    types = {name.lower(): (index, kind.lower().strip()) for index, (name, kind) in enumerate(keys)}
    try:
        tree = _parse(expression)
        if _depth(tree) > MAX_PREDICATE_DEPTH:
            msg = f"Unsupported expression: nested deeper than {MAX_PREDICATE_DEPTH} levels"
            raise _invalid(msg)
        test = _compile(tree, types, expression)
    except RecursionError as exc:
        msg = f"Unsupported expression: nested deeper than {MAX_PREDICATE_DEPTH} levels"
        raise _invalid(msg) from exc
    return lambda values: test(values) is True


#: How deeply a GetPartitions filter's parsed tree may nest (about two levels per NOT, AND/OR or
#: parenthesis): far beyond any real
#: filter, and well inside Python's recursion limit for `_compile` and the test it makes.
MAX_PREDICATE_DEPTH = 200


def _depth(tree: Any) -> int:
    """How deeply the parsed tree nests (its JSON objects and lists), counted without recursion."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, level = todo.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        todo.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


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
