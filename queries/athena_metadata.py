"""Athena's metadata actions over the lake's catalog: one data catalog, one database, one table per dataset.

    ListDataCatalogs / GetDataCatalog   -> AwsDataCatalog (Type GLUE), the only catalog
    ListDatabases / GetDatabase         -> default, and each Glue database that holds tables
    ListTableMetadata / GetTableMetadata -> every dataset DuckDB has a view of (`tidelake catalog`),
                                           and the Glue tables of the database (CREATE EXTERNAL TABLE)

Shapes are botocore's (`DataCatalog`, `Database`, `TableMetadata` with `Columns` and
`PartitionKeys` of `{Name, Type}`); column types are Athena's DDL names from
`queries.catalog.athena_schema` (what `tidelake catalog --emit-ddl athena` writes: `string`,
`bigint`, `timestamp`, `array<string>` ...). Catalog names match case-insensitively, as Athena's.

Errors as Athena answers them: an unknown catalog is InvalidRequestException; an unknown database
or table is MetadataException whose message ends as Glue's does, `(Service: AmazonDataCatalog;
Status Code: 400; Error Code: EntityNotFoundException; ...)`, which PyAthena's SQLAlchemy dialect
reads as "no such table". `Expression` is a regular expression the whole table name must match
(Python's `re`); one that does not compile is InvalidRequestException. CreateTime is the oldest
file's modification time (the folder has no creation time); LastAccessTime is not kept.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from typing import Any

from queries.catalog import Table, athena_schema
from queries.engine import Engine
from queries.service import RequestError

CATALOG = "AwsDataCatalog"
DATABASE = "default"


def _entity_not_found(what: str) -> RequestError:
    msg = (
        f"{what} not found (Service: AmazonDataCatalog; Status Code: 400; Error Code: "
        f"EntityNotFoundException; Request ID: {uuid.uuid4()}; Proxy: null)"
    )
    return RequestError(msg, "MetadataException")


def check_catalog(name: str) -> None:
    """InvalidRequestException unless `name` is AwsDataCatalog (any case)."""
    if name.lower() != CATALOG.lower():
        msg = f"Catalog {name} was not found; tidelake has one data catalog, {CATALOG}"
        raise RequestError(msg)


def data_catalog(name: str) -> dict[str, Any]:
    check_catalog(name)
    return {
        "Name": CATALOG,
        "Description": "the lake's datasets (tidelake's catalog, as a Glue crawler would see them)",
        "Type": "GLUE",
        "Parameters": {"catalog-id": "tidelake"},
        "Status": "CREATE_COMPLETE",
    }


def catalog_summaries() -> list[dict[str, Any]]:
    return [{"CatalogName": CATALOG, "Type": "GLUE", "Status": "CREATE_COMPLETE"}]


def database(catalog: str, name: str, engine: Engine | None = None) -> dict[str, Any]:
    """`default`, or a Glue database holding tables the engine reads; MetadataException (Glue's
    EntityNotFoundException) for any other."""
    check_catalog(catalog)
    if name.lower() == DATABASE:
        return {"Name": DATABASE, "Description": "every dataset of the lake", "Parameters": {}}
    if engine is not None and name.lower() in glue_databases(engine):
        return {
            "Name": name.lower(),
            "Description": "tables made through Glue or Athena DDL",
            "Parameters": {},
        }
    raise _entity_not_found(f"Database {name}")


def glue_databases(engine: Engine) -> list[str]:
    """The Glue databases other than `default` that hold tables the engine reads, sorted."""
    return sorted({s.database for s in engine.glue_sources() if s.database != DATABASE})


def tables(engine: Engine, db: str = DATABASE) -> list[Any]:
    """The tables of `db` by name: in `default` the datasets that are tables now (a DuckDB view
    exists) and Glue's tables there (a Glue table wins over a dataset of its name); elsewhere the
    database's Glue tables (`queries.glue_api.TableSource`)."""
    glue = {s.name: s for s in engine.glue_sources() if s.database == db.lower()}
    if db.lower() != DATABASE:
        return [glue[name] for name in sorted(glue)]
    found = engine.refresh()
    lake = {name: found[name] for name in engine.table_names() if name in found}
    merged: dict[str, Any] = {**lake, **glue}
    return [merged[name] for name in sorted(merged)]


def table_metadata(table: Any, attributes: Sequence[str] | None = None) -> dict[str, Any]:
    """Athena's TableMetadata of one table (a lake dataset's `Table` or a Glue `TableSource`);
    `attributes` (AttributesToGet) NAME, TABLE_TYPE keep only those."""
    if attributes:
        out: dict[str, Any] = {"Name": table.name}
        if "TABLE_TYPE" in attributes:
            out["TableType"] = "EXTERNAL_TABLE"
        return out
    if not isinstance(table, Table):
        return {
            "Name": table.name,
            "TableType": "EXTERNAL_TABLE",
            "Columns": [{"Name": n, "Type": t} for n, t in table.columns],
            "PartitionKeys": [{"Name": n, "Type": t} for n, t in table.partition_keys],
            "Parameters": {**table.table_parameters, "location": table.location_uri},
        }
    columns, keys = athena_schema(table)
    out = {
        "Name": table.name,
        "TableType": "EXTERNAL_TABLE",
        "Columns": [{"Name": n, "Type": t} for n, t in columns],
        "PartitionKeys": [{"Name": n, "Type": t} for n, t in keys],
        "Parameters": {
            "classification": "parquet",
            "location": table.location.as_uri() + "/",
            "inputformat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "outputformat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "serde.serialization.lib": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        },
    }
    created = _oldest_mtime(table)
    if created is not None:
        out["CreateTime"] = created
    return out


def _oldest_mtime(table: Table) -> float | None:
    times = []
    for path in table.files:
        try:
            times.append(os.stat(path).st_mtime)
        except FileNotFoundError:
            continue
    return min(times) if times else None


def find_table(engine: Engine, catalog: str, db: str, name: str) -> Table:
    """The table `name` (case-insensitive, as Glue folds names); MetadataException when there is none."""
    database(catalog, db, engine)
    for table in tables(engine, db):
        if table.name.lower() == name.lower():
            return table
    raise _entity_not_found(f"Table {name}")


def matching_tables(engine: Engine, catalog: str, db: str, expression: str | None) -> list[Table]:
    """The tables whose whole name matches `expression` (a regex; all when it is None or empty)."""
    database(catalog, db, engine)
    found = tables(engine, db)
    if not expression:
        return found
    try:
        pattern = re.compile(expression, re.IGNORECASE)
    except re.error as exc:
        msg = f"Expression {expression!r} is not a regular expression: {exc}"
        raise RequestError(msg) from exc
    return [t for t in found if pattern.fullmatch(t.name)]
