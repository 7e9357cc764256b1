"""The statement policy: what a tidelake query may be, checked before DuckDB runs anything.

Athena is read-only over the lake here: one statement, and only SELECT, WITH, EXPLAIN, DESCRIBE,
SHOW or SUMMARIZE (DuckDB's parser reports the last four as SELECT or EXPLAIN). Everything else
(ATTACH, COPY, EXPORT, INSTALL, LOAD, SET, PRAGMA, CREATE, INSERT, CALL ...) is refused. This is the
first of two walls: the engine also runs DuckDB with external access limited to the lake and its
configuration locked, so a statement that slips past the parser still cannot leave the lake.
"""

from __future__ import annotations

import re

import duckdb

from core.errors import QueryError, QueryRefused

ALLOWED = "SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE"
_EXPLAIN_PREFIX = re.compile(r"^\s*explain\s+(analy[sz]e\s+)?", re.IGNORECASE)
#: A string literal that names a remote file system; DuckDB would also refuse it, less clearly.
_URL_LITERAL = re.compile(r"'\s*([a-z][a-z0-9+.-]*)://", re.IGNORECASE)


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
    return text


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
    return str(statements[0].type.name)


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
