"""Named queries: one question per `queries/sql/<name>.sql`, with typed parameters (Athena's saved queries).

A file starts with a header of `--` comments:

    -- question: Which pages were viewed most in each hour?
    -- reads: clickstream_events
    -- fill: tidelake demo (or a sink into the dataset)
    -- param: day DATE = NULL | only this day (a dt partition)
    -- param: top INTEGER = 5 | pages per hour

and then one SELECT that uses its parameters as `$day`, `$top`. Parameter types are DuckDB's:
INTEGER, BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP (UTC), VARCHAR; `NULL` as default means "not set".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError, TableNotFound
from queries.engine import Engine

SQL_DIR = Path(__file__).with_name("sql")
_PARAM = re.compile(
    r"^(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>[A-Z]+)\s*(=\s*(?P<default>[^|]*?))?\s*(\|\s*(?P<help>.*))?$"
)
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str | None
    help: str = ""

    def convert(self, text: str | None) -> Any:
        """The typed value of `text` (None or 'NULL' = not set); ConfigError if it does not fit."""
        if text is None or text.strip().upper() == "NULL":
            return None
        value = text.strip()
        try:
            if self.type in ("INTEGER", "BIGINT"):
                return int(value)
            if self.type == "DOUBLE":
                return float(value)
            if self.type == "BOOLEAN":
                if value.lower() in _TRUE | _FALSE:
                    return value.lower() in _TRUE
                raise ValueError(value)
            if self.type == "DATE":
                return dt.date.fromisoformat(value)
            if self.type == "TIMESTAMP":
                moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
            return value
        except ValueError as exc:
            msg = f"parameter {self.name} must be {self.type}, got {text!r} (example: {_EXAMPLES[self.type]})"
            raise ConfigError(msg) from exc


_EXAMPLES = {
    "INTEGER": "10",
    "BIGINT": "10",
    "DOUBLE": "2.5",
    "BOOLEAN": "true",
    "DATE": "2026-11-23",
    "TIMESTAMP": "2026-11-23T07:00:00Z",
    "VARCHAR": "/index.html",
}


def example(type_name: str) -> str:
    """A value of parameter type `type_name` as one would type it (help text, form placeholders)."""
    return _EXAMPLES[type_name]


@dataclass(frozen=True)
class NamedQuery:
    name: str
    question: str
    sql: str
    reads: tuple[str, ...] = ()
    fill: str = ""
    params: tuple[Param, ...] = field(default_factory=tuple)

    def bind(self, given: Mapping[str, str | None]) -> dict[str, Any]:
        """Typed values for every parameter: `given` over the defaults, for DuckDB to bind as `$name`.

        `given` holds text as typed (`--param k=v`, the console's form); None or 'NULL' = not set.
        ConfigError names an unknown parameter or a value that does not fit its type.
        """
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            msg = (
                f"named query {self.name!r} has no parameter {', '.join(unknown)}; "
                f"its parameters: {', '.join(known) or 'none'}"
            )
            raise ConfigError(msg)
        return {name: p.convert(given.get(name, p.default)) for name, p in known.items()}


def parse(name: str, text: str) -> NamedQuery:
    """A named query from a .sql file's text; ConfigError names the line that is wrong."""
    question, fill, reads, params = "", "", [], []
    body = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^--\s*(question|reads|fill|param):\s*(.*)$", line.strip())
        if not header:
            body.append(line)
            continue
        key, value = header.groups()
        if key == "question":
            question = value.strip()
        elif key == "fill":
            fill = value.strip()
        elif key == "reads":
            reads += [t.strip() for t in value.split(",") if t.strip()]
        else:
            found = _PARAM.match(value.strip())
            if not found or found["type"] not in _EXAMPLES:
                msg = f"{name}.sql line {number}: bad parameter {value!r}; write `-- param: name TYPE = default | help`"
                raise ConfigError(msg)
            params.append(
                Param(found["name"], found["type"], found["default"], (found["help"] or "").strip())
            )
    if not question:
        msg = f"{name}.sql has no `-- question:` line; every named query answers one question"
        raise ConfigError(msg)
    return NamedQuery(name, question, "\n".join(body).strip(), tuple(reads), fill, tuple(params))


def load_all(folder: Path = SQL_DIR) -> dict[str, NamedQuery]:
    """Every named query shipped in `folder`, by name (the file stem)."""
    return {path.stem: parse(path.stem, path.read_text()) for path in sorted(folder.glob("*.sql"))}


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`['day=2026-11-23', 'top=5']` -> `{'day': '2026-11-23', 'top': '5'}`."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            msg = f"--param {pair!r} must look like name=value"
            raise ConfigError(msg)
        params[key.strip()] = value
    return params


def check_inputs(query: NamedQuery, engine: Engine) -> None:
    """TableNotFound naming the dataset a named query needs and how to fill it, before running it."""
    tables = engine.refresh()
    for dataset in query.reads:
        table = tables.get(dataset)
        if table is not None and (table.files or dataset in engine.table_names()):
            continue
        where = (
            f"is empty under {table.location}"
            if table is not None
            else f"is not in the lake at {engine.lake}"
        )
        msg = f"named query {query.name!r} reads dataset {dataset!r}, which {where}; fill it: {query.fill or 'tidelake demo'}"
        raise TableNotFound(msg)
