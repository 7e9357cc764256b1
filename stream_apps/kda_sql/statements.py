"""The statements of a KDA SQL program: `CREATE [OR REPLACE] STREAM` and `CREATE [OR REPLACE] PUMP`.

sqlglot reads both as opaque commands, so this module splits the program into statements (on `;`
outside quotes and comments) and reads their heads itself; the SELECT of a pump goes to dialect.py
with its offset, so positions in refusals are the program's own.

Names follow KDA SQL (AWS, "Amazon Kinesis Data Analytics SQL Reference", Identifiers): a quoted
name keeps its case (`"page"`), an unquoted one folds to upper case (`page` is `PAGE`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stream_apps.kda_sql.columns import SqlType, parse_type
from stream_apps.kda_sql.refusals import SourceText

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(STREAM|PUMP)\b", re.IGNORECASE)
_NAME = re.compile(r"\s*(" + _IDENT + r")")
_PUMP_BODY = re.compile(r"\s+AS\s+INSERT\s+INTO\s+(" + _IDENT + r")\s*", re.IGNORECASE)
_SELECT_STREAM = re.compile(r"SELECT\s+(STREAM)\b", re.IGNORECASE)
_NESTING_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[A-Za-z_][A-Za-z0-9_$]*|[()]")
#: How deeply parentheses, CASE ... END and NOT may nest: sqlglot's parser recurses per level and
#: ran out of Python's stack at 50 parentheses, 60 CASEs or 150 NOTs; 32 is more than programs use.
MAX_NESTING = 32
NESTED_TOO_DEEPLY = f"nested too deeply; at most {MAX_NESTING} levels of parentheses, CASE and NOT"
SPLIT_IT = "compute a part in a pump of its own into an in-application stream and read that stream"


def identifier(token: str) -> str:
    """`"page"` -> `page`, `page` -> `PAGE` (KDA SQL folds unquoted names to upper case)."""
    if token.startswith('"'):
        return token[1:-1].replace('""', '"')
    return token.upper()


@dataclass(frozen=True)
class Column:
    name: str
    type: SqlType


@dataclass(frozen=True)
class StreamStatement:
    """`CREATE STREAM name (col TYPE, ...)`: an in-application stream and its columns."""

    name: str
    columns: tuple[Column, ...]
    offset: int


@dataclass(frozen=True)
class PumpStatement:
    """`CREATE PUMP name AS INSERT INTO target [(cols)] SELECT STREAM ...`.

    `select` is the program text from SELECT to the end of the statement with the word STREAM
    blanked out (same length, so offsets hold); `select_offset` is where it starts in the program."""

    name: str
    target: str
    target_columns: tuple[str, ...] | None
    select: str
    select_offset: int
    offset: int


def split_statements(source: SourceText) -> list[tuple[int, str]]:
    """(offset, text) of every statement, without its `;`; comments are blanked (same length)."""
    text = source.text
    out: list[tuple[int, str]] = []
    chars = list(text)
    i, start, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            end = text.find(c, i + 1)
            while end != -1 and end + 1 < n and text[end + 1] == c:
                end = text.find(c, end + 2)
            if end == -1:
                raise source.refuse(i, f"the quote {c} opened here is never closed", f"close it with {c}")
            i = end + 1
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            chars[i:end] = " " * (end - i)
            i = end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                raise source.refuse(i, "the comment opened here is never closed", "close it with */")
            chars[i : end + 2] = [ch if ch == "\n" else " " for ch in text[i : end + 2]]
            i = end + 2
            continue
        if c == ";":
            out.append((start, "".join(chars[start:i])))
            start = i + 1
        i += 1
    out.append((start, "".join(chars[start:])))
    return [(offset + len(s) - len(s.lstrip()), s.strip()) for offset, s in out if s.strip()]


def _column_list(source: SourceText, body: str, offset: int) -> list[tuple[int, str]]:
    """Split `a TYPE, b DECIMAL(10, 2)` on commas at depth 0: (offset, item)."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(body + ","):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            item = body[start:i]
            if not item.strip():
                raise source.refuse(offset + i, "an empty column", "write NAME TYPE between commas")
            items.append((offset + start + len(item) - len(item.lstrip()), item.strip()))
            start = i + 1
    return items


def _parenthesised(source: SourceText, text: str, at: int, base: int) -> tuple[str, int]:
    """The text inside the parentheses opening at `text[at]` and the index after the closing one."""
    depth = 0
    for i in range(at, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[at + 1 : i], i + 1
    raise source.refuse(base + at, "this parenthesis is never closed", "close it with )")


def _stream(source: SourceText, text: str, offset: int, head_end: int) -> StreamStatement:
    name_match = _NAME.match(text, head_end)
    if not name_match:
        raise source.refuse(
            offset + head_end, "CREATE STREAM needs a name", 'write CREATE STREAM "NAME" (...)'
        )
    rest = name_match.end()
    while rest < len(text) and text[rest].isspace():
        rest += 1
    if rest >= len(text) or text[rest] != "(":
        raise source.refuse(offset + rest, "CREATE STREAM needs its columns", 'write ("col" TYPE, ...)')
    body, after = _parenthesised(source, text, rest, offset)
    if text[after:].strip():
        where = offset + after + len(text[after:]) - len(text[after:].lstrip())
        raise source.refuse(where, "unexpected text after the columns", "end the statement with ;")
    columns = []
    for item_offset, item in _column_list(source, body, offset + rest + 1):
        match = re.match(r"(" + _IDENT + r")\s+(.+)$", item, re.DOTALL)
        if not match:
            raise source.refuse(item_offset, f"column {item!r} needs a type", 'write "name" VARCHAR(64)')
        type_offset = item_offset + match.start(2)
        columns.append(Column(identifier(match.group(1)), parse_type(source, match.group(2), type_offset)))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise source.refuse(offset, f"stream columns repeat: {names}", "give each column its own name")
    return StreamStatement(identifier(name_match.group(1)), tuple(columns), offset)


def _pump(source: SourceText, text: str, offset: int, head_end: int) -> PumpStatement:
    name_match = _NAME.match(text, head_end)
    body = _PUMP_BODY.match(text, name_match.end()) if name_match else None
    if not name_match or not body:
        raise source.refuse(
            offset + head_end, "a pump is CREATE PUMP name AS INSERT INTO stream SELECT STREAM ...",
            'write CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM ...',
        )  # fmt: skip
    at = body.end()
    target_columns = None
    if at < len(text) and text[at] == "(":
        inside, at = _parenthesised(source, text, at, offset)
        target_columns = tuple(
            identifier(item) if re.fullmatch(_IDENT, item) else _bad_name(source, o, item)
            for o, item in _column_list(source, inside, offset + body.end() + 1)
        )
        while at < len(text) and text[at].isspace():
            at += 1
    select = _SELECT_STREAM.match(text, at)
    if not select:
        raise source.refuse(
            offset + at, "a pump inserts the rows of SELECT STREAM", "write INSERT INTO s SELECT STREAM ..."
        )
    # every SELECT STREAM (a CURSOR's too) reads as SELECT: STREAM is blanked, offsets are kept
    blanked = _SELECT_STREAM.sub(lambda m: m.group(0)[: m.start(1) - m.start(0)] + " " * 6, text[at:])
    return PumpStatement(
        identifier(name_match.group(1)),
        identifier(body.group(1)),
        target_columns,
        blanked,
        offset + at,
        offset,
    )


def _bad_name(source: SourceText, offset: int, item: str) -> str:
    raise source.refuse(offset, f"{item!r} is not a column name", 'write a name, e.g. "page"')


def check_nesting(source: SourceText, offset: int, text: str) -> None:
    """Refuse a statement whose parentheses, CASE ... END and runs of NOT nest more than
    MAX_NESTING levels, at the token that goes past it (before sqlglot recurses into it)."""
    parens = cases = nots = 0
    for token in _NESTING_TOKEN.finditer(text):
        word = token.group(0).upper()
        if word == "NOT":
            nots += 1
        else:
            nots = 0
            if word == "(":
                parens += 1
            elif word == ")":
                parens = max(parens - 1, 0)
            elif word == "CASE":
                cases += 1
            elif word == "END":
                cases = max(cases - 1, 0)
        if parens + cases + nots > MAX_NESTING:
            raise source.refuse(offset + token.start(), NESTED_TOO_DEEPLY, SPLIT_IT)


def parse_statements(source: SourceText) -> list[StreamStatement | PumpStatement]:
    """Every statement of the program, in order; anything but CREATE STREAM / PUMP is refused."""
    statements: list[StreamStatement | PumpStatement] = []
    for offset, text in split_statements(source):
        check_nesting(source, offset, text)
        head = _CREATE.match(text)
        if not head:
            word = text.split(None, 1)[0].upper()
            raise source.refuse(
                offset, f"a {word} statement is not part of a KDA SQL application",
                "write CREATE OR REPLACE STREAM ... and CREATE OR REPLACE PUMP ... AS INSERT INTO ... SELECT STREAM ...",
            )  # fmt: skip
        kind = head.group(1).upper()
        if kind == "STREAM":
            statements.append(_stream(source, text, offset, head.end()))
        else:
            statements.append(_pump(source, text, offset, head.end()))
    if not statements:
        raise source.refuse(
            0, "the program has no statements", "write CREATE STREAM and CREATE PUMP statements"
        )
    return statements
