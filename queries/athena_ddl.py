"""Athena's Hive DDL over the Glue Data Catalog: what StartQueryExecution runs as StatementType DDL.

    ddl = AthenaDdl(glue)                    # glue: queries.glue_api.GlueService
    table = ddl.run(sql, database="default") # a pyarrow Table, or None when `sql` is not DDL

Statements (Athena's "DDL statements" reference pages; keywords in any case, `db.name` or the
execution's QueryExecutionContext.Database):
- `CREATE DATABASE|SCHEMA [IF NOT EXISTS] name`, `DROP DATABASE|SCHEMA [IF EXISTS] name`;
- `CREATE EXTERNAL TABLE [IF NOT EXISTS] [db.]name (col type [COMMENT '...'], ...) [COMMENT '...']
  [PARTITIONED BY (key type, ...)] [ROW FORMAT SERDE 'class' [WITH SERDEPROPERTIES ('k'='v', ...)]
  | ROW FORMAT DELIMITED [FIELDS TERMINATED BY 'c'] [ESCAPED BY 'c'] [LINES TERMINATED BY 'c']]
  [STORED AS PARQUET|TEXTFILE] LOCATION 's3://<lake bucket>/...' [TBLPROPERTIES ('k'='v', ...)]`:
  a Glue table (CreateTable), so the location rules of `queries.glue_locations` apply: another
  bucket, `file://` or `..` FAILS the query with Glue's reason;
- `DROP TABLE [IF EXISTS] [db.]name` (the table's files stay, as with an external table on AWS);
- `SHOW TABLES [IN db]` (column `tab_name`), `SHOW PARTITIONS [db.]name` (column `partition`,
  `k=v/k2=v2`), `DESCRIBE [db.]name` for a table made through Glue (columns `col_name`,
  `data_type`, `comment`, then Hive's `# Partition Information` block; a lake dataset's DESCRIBE
  is DuckDB's, run by the engine);
- `MSCK REPAIR TABLE [db.]name`: registers every `k=v/...` folder under the table's location that
  is not a partition yet (column `result`, one `Repair: Added partition to metastore t:k=v` line each);
- `ALTER TABLE [db.]name ADD [IF NOT EXISTS] PARTITION (k='v', ...) [LOCATION 's3://...'] [PARTITION ...]`.

Anything else that starts like DDL (`CREATE TABLE` without EXTERNAL: CTAS and Iceberg tables;
STORED AS ORC|AVRO...) FAILS with a `DdlError` that says what is read instead. The parser is a
small hand-written one (DuckDB's parser does not read Hive DDL); an error names the token and its
position.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from core.aws_json import AwsError, parse_request
from core.errors import QueryError, QueryRefused
from queries.athena_ctas import parse_ctas, run_ctas
from queries.glue_api import (
    LAKE_DATABASE,
    PARQUET_INPUT_FORMAT,
    PARQUET_OUTPUT_FORMAT,
    PARQUET_SERDE,
    BatchCreatePartitionInput,
    CreateDatabaseInput,
    CreateTableInput,
    DeleteDatabaseInput,
    DeleteTableInput,
    GetTablesInput,
    GlueService,
)
from queries.glue_locations import lake_key, lake_uri

TEXT_INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
LAZY_SIMPLE_SERDE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
#: Statements that are DDL by their first words (Athena's StatementType DDL).
_DDL_START = re.compile(
    r"^\s*(create\s+(external\s+)?(table|database|schema)|drop\s+(table|database|schema)|show\s+(tables|partitions)"
    r"|describe\s|desc\s|msck\s|alter\s+table)",
    re.IGNORECASE,
)
_TOKEN = re.compile(
    r"(?P<space>\s+|--[^\n]*)|(?P<str>'(?:[^'\\]|\\.|'')*')|(?P<bq>`[^`]*`)|(?P<dq>\"[^\"]*\")"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>\d+)|(?P<sym>[(),.=<>:;])"
)
_NAME = re.compile(r"^[a-z0-9_]{1,255}$")


class DdlError(QueryError):
    """A DDL statement tidelake cannot parse or does not run; the message says where and why."""


@dataclass
class _Token:
    kind: str
    text: str
    at: int


def is_ddl(sql: str) -> bool:
    """Whether `sql` is one of the DDL statements this module answers (by its first words)."""
    return bool(_DDL_START.match(sql))


def _tokens(sql: str) -> list[_Token]:
    found, at = [], 0
    while at < len(sql):
        match = _TOKEN.match(sql, at)
        if match is None:
            raise DdlError(f"cannot read {sql[at : at + 20]!r} at character {at + 1} of the DDL statement")
        kind = match.lastgroup or ""
        if kind != "space":
            text = match.group()
            if kind == "str":
                text = re.sub(r"\\(.)", r"\1", text[1:-1].replace("''", "'"))
            elif kind == "bq":
                text, kind = text[1:-1], "word"
            elif kind == "dq":  # Hive reads "..." as a string, or a name where one is expected
                text = text[1:-1]
            found.append(_Token(kind, text, at + 1))
        at = match.end()
    while found and found[-1].text == ";":
        found.pop()
    return found


class _Parser:
    def __init__(self, sql: str) -> None:
        self.tokens = _tokens(sql)
        self.pos = 0

    def peek(self, ahead: int = 0) -> _Token | None:
        index = self.pos + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def _where(self) -> str:
        token = self.peek()
        return "at the end of the statement" if token is None else f"at {token.text!r} (character {token.at})"

    def fail(self, wanted: str) -> DdlError:
        return DdlError(f"DDL syntax error: expected {wanted} {self._where()}")

    def accept(self, *words: str) -> bool:
        """Consume `words` (keywords or symbols, any case) when they come next."""
        for offset, word in enumerate(words):
            token = self.peek(offset)
            if token is None or token.kind in ("str", "dq") or token.text.lower() != word.lower():
                return False
        self.pos += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise self.fail(" ".join(words).upper())

    def name(self, what: str = "a name") -> str:
        token = self.peek()
        if token is None or token.kind not in ("word", "dq"):
            raise self.fail(what)
        self.pos += 1
        name = token.text.lower()
        if not _NAME.match(name):
            msg = f"{what} {token.text!r} may hold only letters, digits and underscores (Athena's rule for names)"
            raise DdlError(msg)
        return name

    def string(self, what: str) -> str:
        token = self.peek()
        if token is None or token.kind not in ("str", "dq"):
            raise self.fail(f"{what} as a quoted string")
        self.pos += 1
        return token.text

    def qualified(self, database: str) -> tuple[str, str]:
        first = self.name("a table name")
        if self.accept("."):
            return first, self.name("a table name")
        return database, first

    def column_type(self) -> str:
        """A type up to the next `,` or `)` at depth 0: `int`, `decimal(10,2)`, `array<string>`."""
        depth, parts = 0, []
        while True:
            token = self.peek()
            if token is None:
                raise self.fail("a column type")
            if depth == 0 and (token.text in (",", ")") or token.text.lower() == "comment"):
                break
            depth += 1 if token.text in ("(", "<") else -1 if token.text in (")", ">") else 0
            parts.append(token.text.lower())
            self.pos += 1
        if not parts:
            raise self.fail("a column type")
        return "".join(parts)

    def columns(self) -> list[dict[str, str]]:
        self.expect("(")
        found = []
        while True:
            column = {"Name": self.name("a column name"), "Type": self.column_type()}
            if self.accept("comment"):
                column["Comment"] = self.string("the comment")
            found.append(column)
            if self.accept(")"):
                return found
            self.expect(",")

    def properties(self) -> dict[str, str]:
        self.expect("(")
        found = {}
        while True:
            key = self.string("a property name")
            self.expect("=")
            found[key] = self.string(f"the value of {key}")
            if self.accept(")"):
                return found
            self.expect(",")

    def partition_spec(self) -> list[tuple[str, str]]:
        self.expect("(")
        found = []
        while True:
            key = self.name("a partition key")
            self.expect("=")
            token = self.peek()
            if token is None or token.kind not in ("str", "dq", "num"):
                raise self.fail(f"the value of {key}")
            self.pos += 1
            found.append((key, token.text))
            if self.accept(")"):
                return found
            self.expect(",")

    def done(self) -> None:
        if not self.at_end():
            raise self.fail("the end of the statement")


@dataclass
class _Table:
    database: str
    name: str
    if_not_exists: bool = False
    columns: list[dict[str, str]] = field(default_factory=list)
    keys: list[dict[str, str]] = field(default_factory=list)
    comment: str | None = None
    serde: str | None = None
    serde_properties: dict[str, str] = field(default_factory=dict)
    stored_as: str | None = None
    location: str | None = None
    properties: dict[str, str] = field(default_factory=dict)


class AthenaDdl:
    """Runs DDL statements against `glue` (see the module docstring)."""

    def __init__(self, glue: GlueService, *, engine: Any = None, results: Path | None = None) -> None:
        """`engine` and `results` (the results bucket's folder), when given, run CREATE TABLE AS
        SELECT into that bucket (`queries.athena_ctas`); without them CTAS FAILS with a message."""
        self.glue = glue
        self.engine = engine
        self.results = results

    def run(self, sql: str, database: str = LAKE_DATABASE) -> pa.Table | None:
        """The statement's result, or None when `sql` is not DDL (the engine runs it). Raises
        DdlError (a QueryError) for a statement that cannot run, QueryRefused for a location out of the lake."""
        if not is_ddl(sql):
            return None
        database = (database or LAKE_DATABASE).lower()
        if self.engine is not None and self.results is not None:
            ctas = parse_ctas(sql, database)
            if ctas is not None:
                return run_ctas(ctas, self.engine, self.results)
        parser = _Parser(sql)
        try:
            return self._dispatch(parser, database)
        except AwsError as exc:
            if (
                exc.code == "AccessDeniedException"
                or "not an s3:// URI" in exc.text
                or "plain path" in exc.text
            ):
                raise QueryRefused(f"refused: {exc.text}. Nothing was written.") from exc
            raise DdlError(f"{exc.code}: {exc.text}") from exc

    def _dispatch(self, p: _Parser, database: str) -> pa.Table | None:
        if p.accept("create", "external", "table"):
            return self._create_table(p, database)
        if p.accept("create", "table"):
            msg = (
                "CREATE TABLE without EXTERNAL (CTAS, Iceberg) is not run by tidelake: the lake is "
                "read-only to queries; use CREATE EXTERNAL TABLE over files in the lake"
            )
            raise DdlError(msg)
        if p.accept("create", "database") or p.accept("create", "schema"):
            exists_ok = p.accept("if", "not", "exists")
            name = p.name("a database name")
            p.done()
            body: dict[str, Any] = {"DatabaseInput": {"Name": name}}
            try:
                self.glue.create_database(parse_request(CreateDatabaseInput, json.dumps(body).encode()))
            except AwsError as exc:
                if not (exists_ok and exc.code == "AlreadyExistsException"):
                    raise
            return _empty()
        if p.accept("drop", "database") or p.accept("drop", "schema"):
            missing_ok = p.accept("if", "exists")
            name = p.name("a database name")
            p.done()
            try:
                self.glue.delete_database(
                    parse_request(DeleteDatabaseInput, json.dumps({"Name": name}).encode())
                )
            except AwsError as exc:
                if not (missing_ok and exc.code == "EntityNotFoundException"):
                    raise
            return _empty()
        if p.accept("drop", "table"):
            missing_ok = p.accept("if", "exists")
            db, name = p.qualified(database)
            p.done()
            body = {"DatabaseName": db, "Name": name}
            try:
                self.glue.delete_table(parse_request(DeleteTableInput, json.dumps(body).encode()))
            except AwsError as exc:
                if not (missing_ok and exc.code == "EntityNotFoundException"):
                    raise
            return _empty()
        if p.accept("show", "tables"):
            if p.accept("in") or p.accept("from"):
                database = p.name("a database name")
            p.done()
            listed = self.glue.get_tables(
                parse_request(GetTablesInput, json.dumps({"DatabaseName": database}).encode())
            )
            return pa.table({"tab_name": pa.array([t["Name"] for t in listed["TableList"]], pa.string())})
        if p.accept("show", "partitions"):
            db, name = p.qualified(database)
            p.done()
            return pa.table({"partition": pa.array(self._partition_names(db, name), pa.string())})
        if p.accept("describe") or p.accept("desc"):
            _ = p.accept("formatted") or p.accept("extended")
            try:
                db, name = p.qualified(database)
                p.done()
            except DdlError:
                return None  # not a plain table name (DESCRIBE SELECT ...): DuckDB's DESCRIBE
            if self.glue.store.table(db, name) is None:
                return None  # a lake dataset: the engine's DESCRIBE
            return self._describe(db, name)
        if p.accept("msck", "repair", "table"):
            db, name = p.qualified(database)
            p.done()
            return self._repair(db, name)
        if p.accept("alter", "table"):
            db, name = p.qualified(database)
            p.expect("add")
            exists_ok = p.accept("if", "not", "exists")
            given = []
            while p.accept("partition"):
                spec = p.partition_spec()
                location = p.string("the partition's location") if p.accept("location") else None
                given.append((spec, location))
            if not given:
                raise p.fail("PARTITION (key='value', ...)")
            p.done()
            self._add_partitions(db, name, given, exists_ok)
            return _empty()
        raise DdlError(
            "this DDL statement is not run by tidelake; it runs CREATE EXTERNAL TABLE, CREATE/DROP DATABASE, "
            "DROP TABLE, SHOW TABLES, SHOW PARTITIONS, DESCRIBE, MSCK REPAIR TABLE and ALTER TABLE ADD PARTITION"
        )

    # -- CREATE EXTERNAL TABLE ---------------------------------------------------------------------
    def _create_table(self, p: _Parser, database: str) -> pa.Table:
        t = _Table(database, "")
        t.if_not_exists = p.accept("if", "not", "exists")
        t.database, t.name = p.qualified(database)
        t.columns = p.columns()
        seen: set[str] = set()

        def once(clause: str) -> None:
            if clause in seen:
                raise DdlError(f"DDL syntax error: {clause} is given twice {p._where()}")
            seen.add(clause)

        while not p.at_end():
            if p.accept("comment"):
                once("COMMENT")
                t.comment = p.string("the table comment")
            elif p.accept("partitioned", "by"):
                once("PARTITIONED BY")
                t.keys = p.columns()
            elif p.accept("row", "format", "serde"):
                once("ROW FORMAT")
                t.serde = p.string("the SerDe class")
                if p.accept("with", "serdeproperties"):
                    t.serde_properties = p.properties()
            elif p.accept("row", "format", "delimited"):
                once("ROW FORMAT")
                t.serde = LAZY_SIMPLE_SERDE
                while True:
                    if p.accept("fields", "terminated", "by"):
                        delim = p.string("the field delimiter")
                        t.serde_properties.update({"field.delim": delim, "serialization.format": delim})
                    elif p.accept("escaped", "by"):
                        t.serde_properties["escape.delim"] = p.string("the escape character")
                    elif p.accept("lines", "terminated", "by"):
                        t.serde_properties["line.delim"] = p.string("the line delimiter")
                    elif p.accept("null", "defined", "as"):
                        t.serde_properties["serialization.null.format"] = p.string("the null text")
                    else:
                        break
            elif p.accept("stored", "as"):
                once("STORED AS")
                t.stored_as = p.name("a file format").upper()
            elif p.accept("location"):
                once("LOCATION")
                t.location = p.string("the location")
            elif p.accept("tblproperties"):
                once("TBLPROPERTIES")
                t.properties = p.properties()
            else:
                raise p.fail("COMMENT, PARTITIONED BY, ROW FORMAT, STORED AS, LOCATION or TBLPROPERTIES")
        if t.location is None:
            raise DdlError(
                "CREATE EXTERNAL TABLE needs LOCATION 's3://<lake bucket>/<folder>/' (the files to read)"
            )
        body = {"DatabaseName": t.database, "TableInput": self._table_input(t)}
        try:
            self.glue.create_table(parse_request(CreateTableInput, json.dumps(body).encode()))
        except AwsError as exc:
            if not (t.if_not_exists and exc.code == "AlreadyExistsException"):
                raise
        return _empty()

    def _table_input(self, t: _Table) -> dict[str, Any]:
        stored = t.stored_as or ("PARQUET" if t.serde and "parquet" in t.serde.lower() else "TEXTFILE")
        if stored == "PARQUET":
            if t.serde and "parquet" not in t.serde.lower():
                raise DdlError(
                    f"STORED AS PARQUET with ROW FORMAT SERDE {t.serde!r}: Parquet tables use {PARQUET_SERDE}"
                )
            formats = (PARQUET_INPUT_FORMAT, PARQUET_OUTPUT_FORMAT)
            serde, serde_properties = PARQUET_SERDE, {"serialization.format": "1", **t.serde_properties}
        elif stored == "TEXTFILE":
            formats = (TEXT_INPUT_FORMAT, TEXT_OUTPUT_FORMAT)
            serde = t.serde or LAZY_SIMPLE_SERDE
            serde_properties = dict(t.serde_properties)
        else:
            msg = f"STORED AS {stored} is not read by tidelake; it reads PARQUET and TEXTFILE (CSV, TSV, JSON lines)"
            raise DdlError(msg)
        descriptor = {
            "Columns": t.columns,
            "Location": t.location,
            "InputFormat": formats[0],
            "OutputFormat": formats[1],
            "SerdeInfo": {"SerializationLibrary": serde, "Parameters": serde_properties},
        }
        table: dict[str, Any] = {
            "Name": t.name,
            "TableType": "EXTERNAL_TABLE",
            "StorageDescriptor": descriptor,
            "PartitionKeys": t.keys,
            "Parameters": {"EXTERNAL": "TRUE", **t.properties},
        }
        if t.comment is not None:
            table["Description"] = t.comment
        return table

    # -- partitions --------------------------------------------------------------------------------
    def _stored_table(self, database: str, name: str) -> dict[str, Any]:
        table, lake_table = self.glue._table(database, name)
        if lake_table is not None:
            msg = f"{name} is the lake's dataset: its partitions are its folders, found on every query"
            raise DdlError(msg)
        return table

    def _partition_names(self, database: str, name: str) -> list[str]:
        table, partitions = self.glue._partitions(database, name)
        keys = [k["Name"] for k in table.get("PartitionKeys", [])]
        if not keys:
            raise DdlError(f"Table {name} is not partitioned")
        return ["/".join(f"{k}={v}" for k, v in zip(keys, p["Values"], strict=False)) for p in partitions]

    def _add_partitions(
        self, database: str, name: str, given: list[tuple[list[tuple[str, str]], str | None]], exists_ok: bool
    ) -> list[str]:
        table = self._stored_table(database, name)
        keys = [k["Name"] for k in table.get("PartitionKeys", [])]
        base = table["StorageDescriptor"]["Location"].rstrip("/")
        inputs, names = [], []
        for spec, location in given:
            if [k for k, _ in spec] != keys:
                msg = f"PARTITION ({', '.join(k for k, _ in spec)}) does not name the table's keys in order ({', '.join(keys)})"
                raise DdlError(msg)
            folder = "/".join(f"{k}={v}" for k, v in spec)
            names.append(folder)
            inputs.append(
                {
                    "Values": [v for _, v in spec],
                    "StorageDescriptor": {"Location": location or f"{base}/{folder}/"},
                }
            )
        body = {
            "DatabaseName": table["DatabaseName"],
            "TableName": table["Name"],
            "PartitionInputList": inputs,
        }
        answer = self.glue.batch_create_partition(
            parse_request(BatchCreatePartitionInput, json.dumps(body).encode())
        )
        for error in answer.get("Errors", []):
            detail = error["ErrorDetail"]
            if exists_ok and detail["ErrorCode"] == "AlreadyExistsException":
                continue
            raise AwsError(detail["ErrorCode"], detail["ErrorMessage"])
        return names

    def _repair(self, database: str, name: str) -> pa.Table:
        table = self._stored_table(database, name)
        keys = [k["Name"] for k in table.get("PartitionKeys", [])]
        if not keys:
            raise DdlError(f"Table {name} is not partitioned: MSCK REPAIR TABLE has nothing to add")
        location = table["StorageDescriptor"]["Location"]
        key = lake_key(location, self.glue.bucket)
        root = self.glue.lake / key if key else self.glue.lake
        known = {
            json.dumps(p["Values"]) for p in self.glue.store.partitions(table["DatabaseName"], table["Name"])
        }
        found: list[list[tuple[str, str]]] = []
        _walk_partitions(root, keys, [], found)
        new = [spec for spec in found if json.dumps([unquote(v) for _, v in spec]) not in known]
        given: list[tuple[list[tuple[str, str]], str | None]] = [
            (
                [(k, unquote(v)) for k, v in spec],
                lake_uri(self.glue.bucket, "/".join([key, *(f"{k}={v}" for k, v in spec)])),
            )
            for spec in new
        ]
        added = self._add_partitions(database, name, given, exists_ok=True) if given else []
        lines = [f"Repair: Added partition to metastore {table['Name']}:{folder}" for folder in added]
        return pa.table({"result": pa.array(lines, pa.string())})

    def _describe(self, database: str, name: str) -> pa.Table:
        table = self.glue.store.table(database, name) or {}
        rows = [
            (c["Name"], c.get("Type", ""), c.get("Comment", ""))
            for c in (table.get("StorageDescriptor") or {}).get("Columns", [])
        ]
        keys = [(k["Name"], k.get("Type", ""), k.get("Comment", "")) for k in table.get("PartitionKeys", [])]
        rows += keys
        if keys:
            rows += [
                ("", "", ""),
                ("# Partition Information", "", ""),
                ("# col_name", "data_type", "comment"),
                ("", "", ""),
            ]
            rows += keys
        names, types, comments = (
            (list(column) for column in zip(*rows, strict=True)) if rows else ([], [], [])
        )
        return pa.table(
            {
                "col_name": pa.array(names, pa.string()),
                "data_type": pa.array(types, pa.string()),
                "comment": pa.array(comments, pa.string()),
            }
        )


def _walk_partitions(
    folder: Path, keys: list[str], spec: list[tuple[str, str]], found: list[list[tuple[str, str]]]
) -> None:
    """Every `k1=v/k2=v/...` folder path under `folder` for `keys` in order; links are never followed."""
    if not keys:
        found.append(list(spec))
        return
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        key, sep, value = entry.name.partition("=")
        if sep and key == keys[0] and value and entry.is_dir(follow_symlinks=False):
            _walk_partitions(Path(entry.path), keys[1:], [*spec, (key, value)], found)


def _empty() -> pa.Table:
    return pa.table({})
