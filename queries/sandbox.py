"""The statement policy: what a tidelake query may be, checked before DuckDB runs anything.

Athena is read-only over the lake here: one statement, and only SELECT, WITH, EXPLAIN, DESCRIBE,
SHOW or SUMMARIZE (DuckDB's parser reports the last four as SELECT or EXPLAIN). Everything else
(ATTACH, COPY, EXPORT, INSTALL, LOAD, SET, PRAGMA, CREATE, INSERT, CALL ...) is refused.

A query reads the lake's tables by name, never files by path, as on Athena. DuckDB's own parse tree
(`json_serialize_sql`) is walked and every table function outside a short list of ones that open no
file (`range`, `unnest`, `duckdb_settings` ...) is refused: `read_csv`, `read_parquet`, `glob`,
`read_text`, `query_table` and any function DuckDB adds later. So is a table named like a file
(`FROM '/etc/passwd'`, `DESCRIBE 'x.csv'`): a name with `/`, `\\`, `.`, `:` or `~`. This is what
keeps symlinks from leading out of the lake: DuckDB's `allowed_directories` removes `..` from a
path as text before the kernel follows links (`<lake>/link-to-root/../etc/passwd`), so no path a
user spells reaches DuckDB at all; the only files it opens are the catalog's, which are regular
files found without following links.

This is the first of two walls: the engine also runs DuckDB with external access limited to the
lake and its configuration locked, so a statement that slips past the parser still cannot leave
the lake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import duckdb

from core.errors import QueryError, QueryRefused

ALLOWED = "SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE"
_EXPLAIN_PREFIX = re.compile(r"^\s*explain\s+(analy[sz]e\s+)?", re.IGNORECASE)
#: A string literal that names a remote file system; DuckDB would also refuse it, less clearly.
_URL_LITERAL = re.compile(r"'\s*([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
#: Table functions that open no file: generators, unnesting, JSON of a value, DuckDB's own metadata.
#: An allowlist, so that a file-reading function DuckDB adds later is refused until it is looked at.
SAFE_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "repeat_row",
        "json_each",
        "json_tree",
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_databases",
        "duckdb_functions",
        "duckdb_keywords",
        "duckdb_schemas",
        "duckdb_settings",
        "duckdb_tables",
        "duckdb_types",
        "duckdb_views",
        "pragma_table_info",
        "pragma_show",
        "pragma_version",
        "pragma_platform",
        "pg_timezone_names",
        "icu_calendar_names",
    }
)
#: A table name DuckDB could take for a file (its replacement scans): a path, an extension, a home.
_FILE_LIKE_NAME = re.compile(r"[/\\.:~]")


def check_statement(sql: str, parser: duckdb.DuckDBPyConnection | None = None) -> str:
    """The statement, stripped, if the sandbox allows it; else `QueryRefused` saying why.

    A statement DuckDB cannot parse raises `QueryError` with the parser's position.
    """
    text = sql.strip().rstrip(";").strip()
    if not text:
        msg = "empty query; give one SELECT statement, e.g. SELECT count(*) FROM clickstream_events"
        raise QueryError(msg)
    url = _URL_LITERAL.search(text)
    if url:
        msg = (
            f"refused: the query names a {url.group(1)}:// location; tidelake reads only the lake "
            "folder (query its tables by name, see `tidelake catalog`)"
        )
        raise QueryRefused(msg)
    kind = _statement_type(text, parser)
    if kind == "EXPLAIN":
        inner = _EXPLAIN_PREFIX.sub("", text, count=1)
        if inner != text and (inner_kind := _statement_type(inner, parser)) != "SELECT":
            msg = f"refused: EXPLAIN of a {inner_kind} statement; only {ALLOWED} may run"
            raise QueryRefused(msg)
    elif kind != "SELECT":
        msg = (
            f"refused: {kind} statements are not allowed; tidelake queries are read-only over the lake "
            f"(allowed: {ALLOWED}). Nothing was run or written."
        )
        raise QueryRefused(msg)
    check_sources(_EXPLAIN_PREFIX.sub("", text, count=1), parser)
    return text


def check_sources(text: str, parser: duckdb.DuckDBPyConnection | None = None) -> None:
    """Refuse a SELECT that reads anything but tables by name (see the module docstring)."""
    connection = parser if parser is not None else duckdb.connect()
    try:
        rows = connection.execute("SELECT json_serialize_sql($sql::VARCHAR)", {"sql": text}).fetchall()
    finally:
        if parser is None:
            connection.close()
    tree = json.loads(rows[0][0]) if rows else {"error": True}
    if tree.get("error"):
        msg = (
            "refused: the statement could not be checked for file access "
            f"({tree.get('error_message', 'no parse tree')}); write it as one SELECT over the lake's tables"
        )
        raise QueryRefused(msg)
    for node in _nodes(tree):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            name = str((node.get("function") or {}).get("function_name", "")).lower()
            if name not in SAFE_TABLE_FUNCTIONS:
                msg = (
                    f"refused: table function {name}() is not allowed: it reads files by path or runs SQL text; "
                    "tidelake queries read the lake's tables by name (see `tidelake catalog`). Nothing was run or written."
                )
                raise QueryRefused(msg)
        elif kind in ("BASE_TABLE", "SHOW_REF"):
            name = str(node.get("table_name") or "")
            if _FILE_LIKE_NAME.search(name):
                msg = (
                    f"refused: {name} is a file path; tidelake reads only the lake's tables "
                    "(see `tidelake catalog`), not files by path. Nothing was run or written."
                )
                raise QueryRefused(msg)


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in a parse tree, without recursion (trees can be deep)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _statement_type(text: str, parser: duckdb.DuckDBPyConnection | None) -> str:
    try:
        statements = (
            parser.extract_statements(text) if parser is not None else duckdb.extract_statements(text)
        )
    except duckdb.Error as exc:
        raise QueryError(describe_parser_error(exc)) from exc
    if len(statements) != 1:
        msg = f"refused: {len(statements)} statements given; run one statement per query"
        raise QueryRefused(msg)
    try:
        return str(statements[0].type.name)
    except ValueError:  # a kind newer than the Python client's enum (UPDATE EXTENSIONS): name it by its words
        return " ".join(text.split()[:2]).upper()


def describe_parser_error(exc: BaseException) -> str:
    """DuckDB's error on one line, with the position of a syntax error as line and column."""
    lines = str(exc).splitlines()
    head = lines[0] if lines else type(exc).__name__
    for index, line in enumerate(lines):
        found = re.match(r"LINE (\d+): ", line)
        if found and index + 1 < len(lines) and "^" in lines[index + 1]:
            column = lines[index + 1].index("^") - len(found.group(0)) + 1
            return f"{head} (line {found.group(1)}, column {column})"
    return head
