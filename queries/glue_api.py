"""The Glue Data Catalog's actions over the lake: `boto3.client("glue")`, the AWS CLI and awswrangler's
`wr.catalog.*` unchanged.

`glue_actions(service)` is the action table `tidelake serve` answers `X-Amz-Target:
AWSGlue.<Action>` with (botocore's `glue/2017-03-31` model, metadata.targetPrefix `AWSGlue`):

- **Reading:** GetDatabases, GetDatabase, GetTables (`Expression`: a table-name pattern,
  `queries.glue_expressions.table_pattern`), GetTable, GetPartitions (`Expression`: a partition
  filter, `queries.glue_expressions.partition_predicate`; `NextToken`/`MaxResults`; `Segment`;
  `ExcludeColumnSchema`), GetPartition.
- **Writing:** CreateDatabase, DeleteDatabase, CreateTable, UpdateTable, DeleteTable,
  BatchDeleteTable, BatchCreatePartition, CreatePartition, BatchGetPartition, DeletePartition,
  BatchDeletePartition: for tables over other data in the lake (a CSV or JSON folder),
  kept in SQLite under the state folder (`queries.glue_store`), so they survive a restart.

The database `default` is the lake (`queries.catalog`, what Athena's `QueryExecutionContext`
calls `default`): one EXTERNAL_TABLE per dataset folder that has readable Parquet files (or a
declared schema), found anew on every call, with Athena's type names (`catalog.athena_schema`),
Glue's Parquet formats and SerDe, `Location` `s3://<lake bucket>/<dataset>/`, and a partition per
Hive folder (`dt=2019-01-22/hour=00/`, values as the folders spell them, `%XX` decoded). These
tables and their partitions are the lake's: DeleteTable and BatchCreatePartition refuse them
(InvalidInputException); a sink's new folder is a new partition at once, as with partition projection.

Names are kept in lower case, as Glue keeps them. Every location must be in the lake
(`queries.glue_locations`): another bucket is AccessDeniedException; `file://`, `..` and the like
InvalidInputException. Errors are Glue's: EntityNotFoundException, AlreadyExistsException,
InvalidInputException (HTTP 400); a body that breaks the model's constraints is ValidationException,
one of the wrong JSON types SerializationException (`core.aws_json`).

`GlueService.table_source(database, name)` tells a query engine what to read for a table: its lake
folder, format, columns and partitions.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import Field

from core.aws_json import ActionTable, AwsError, AwsModel, parse_request
from core.lake import LAKE_BUCKET, NULL_PARTITION
from core.settings import Settings
from queries.catalog import EVENTS_TABLE, Table, athena_schema, discover
from queries.glue_expressions import partition_predicate, table_pattern
from queries.glue_locations import lake_path, lake_uri
from queries.glue_projection import Projection, ProjectionError, parse_projection
from queries.glue_store import GlueStore

#: The target prefix of every Glue action (botocore: glue/2017-03-31 metadata.targetPrefix).
TARGET_PREFIX = "AWSGlue"
#: The account of every catalog entry (the Data Catalog's CatalogId).
ACCOUNT_ID = "000000000000"
#: The database that holds the lake's datasets.
LAKE_DATABASE = "default"
#: How Glue describes a Parquet table (what a crawler or Athena's `STORED AS PARQUET` writes).
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
#: Page sizes when MaxResults is not given (the model's maxima).
DATABASES_PAGE = 100
TABLES_PAGE = 100
PARTITIONS_PAGE = 1000

# -- request shapes (botocore's Glue model, 2017-03-31) --------------------------------------------
NameStr = Annotated[str, Field(min_length=1, max_length=255)]
CatalogIdStr = Annotated[str, Field(min_length=1, max_length=255)]
DescriptionStr = Annotated[str, Field(max_length=2048)]
UriStr = Annotated[str, Field(min_length=1, max_length=1024)]
LocationStr = Annotated[str, Field(max_length=2056)]
FormatStr = Annotated[str, Field(max_length=128)]
ValueStr = Annotated[str, Field(max_length=1024)]
ParamMap = dict[
    Annotated[str, Field(min_length=1, max_length=255)], Annotated[str, Field(max_length=512_000)]
]
Timestamp = float | int


class ColumnIn(AwsModel):
    Name: NameStr
    Type: Annotated[str, Field(max_length=131_072)] | None = None
    Comment: Annotated[str, Field(max_length=255)] | None = None
    Parameters: ParamMap | None = None


class SerDeIn(AwsModel):
    Name: NameStr | None = None
    SerializationLibrary: NameStr | None = None
    Parameters: ParamMap | None = None


class StorageDescriptorIn(AwsModel):
    Columns: list[ColumnIn] | None = None
    Location: LocationStr | None = None
    AdditionalLocations: list[str] | None = None
    InputFormat: FormatStr | None = None
    OutputFormat: FormatStr | None = None
    Compressed: bool | None = None
    NumberOfBuckets: int | None = None
    SerdeInfo: SerDeIn | None = None
    BucketColumns: list[NameStr] | None = None
    SortColumns: list[dict[str, Any]] | None = None
    Parameters: ParamMap | None = None
    SkewedInfo: dict[str, Any] | None = None
    StoredAsSubDirectories: bool | None = None


class DatabaseIn(AwsModel):
    Name: NameStr
    Description: DescriptionStr | None = None
    LocationUri: UriStr | None = None
    Parameters: ParamMap | None = None


class TableIn(AwsModel):
    Name: NameStr
    Description: DescriptionStr | None = None
    Owner: NameStr | None = None
    LastAccessTime: Timestamp | None = None
    LastAnalyzedTime: Timestamp | None = None
    Retention: Annotated[int, Field(ge=0)] | None = None
    StorageDescriptor: StorageDescriptorIn | None = None
    PartitionKeys: list[ColumnIn] | None = None
    ViewOriginalText: Annotated[str, Field(max_length=409_600)] | None = None
    ViewExpandedText: Annotated[str, Field(max_length=409_600)] | None = None
    TableType: Annotated[str, Field(max_length=255)] | None = None
    Parameters: ParamMap | None = None


class PartitionIn(AwsModel):
    Values: list[ValueStr] | None = None
    LastAccessTime: Timestamp | None = None
    StorageDescriptor: StorageDescriptorIn | None = None
    Parameters: ParamMap | None = None
    LastAnalyzedTime: Timestamp | None = None


class CatalogRef(AwsModel):
    CatalogId: CatalogIdStr | None = None


class GetDatabasesInput(CatalogRef):
    NextToken: str | None = None
    MaxResults: Annotated[int, Field(ge=1, le=100)] | None = None
    ResourceShareType: Literal["FOREIGN", "ALL", "FEDERATED"] | None = None
    AttributesToGet: list[Literal["NAME"]] | None = None


class GetDatabaseInput(CatalogRef):
    Name: NameStr


class GetTablesInput(CatalogRef):
    DatabaseName: NameStr
    Expression: Annotated[str, Field(max_length=2048)] | None = None
    NextToken: str | None = None
    MaxResults: Annotated[int, Field(ge=1, le=100)] | None = None
    AttributesToGet: list[Literal["NAME", "TABLE_TYPE"]] | None = None


class GetTableInput(CatalogRef):
    DatabaseName: NameStr
    Name: NameStr


class SegmentIn(AwsModel):
    SegmentNumber: Annotated[int, Field(ge=0)]
    TotalSegments: Annotated[int, Field(ge=1, le=10)]


class GetPartitionsInput(CatalogRef):
    DatabaseName: NameStr
    TableName: NameStr
    Expression: Annotated[str, Field(max_length=2048)] | None = None
    NextToken: str | None = None
    Segment: SegmentIn | None = None
    MaxResults: Annotated[int, Field(ge=1, le=1000)] | None = None
    ExcludeColumnSchema: bool | None = None


class GetPartitionInput(CatalogRef):
    DatabaseName: NameStr
    TableName: NameStr
    PartitionValues: list[ValueStr]


class CreateDatabaseInput(CatalogRef):
    DatabaseInput: DatabaseIn
    Tags: dict[str, str] | None = None


class DeleteDatabaseInput(CatalogRef):
    Name: NameStr


class CreateTableInput(CatalogRef):
    DatabaseName: NameStr
    Name: NameStr | None = None
    TableInput: TableIn | None = None
    OpenTableFormatInput: dict[str, Any] | None = None


class DeleteTableInput(CatalogRef):
    DatabaseName: NameStr
    Name: NameStr


class UpdateTableInput(CatalogRef):
    DatabaseName: NameStr
    Name: NameStr | None = None
    TableInput: TableIn | None = None
    SkipArchive: bool | None = None
    VersionId: NameStr | None = None


class BatchDeleteTableInput(CatalogRef):
    DatabaseName: NameStr
    TablesToDelete: Annotated[list[NameStr], Field(max_length=100)]


class PartitionValuesIn(AwsModel):
    Values: list[ValueStr]


class BatchGetPartitionInput(CatalogRef):
    DatabaseName: NameStr
    TableName: NameStr
    PartitionsToGet: Annotated[list[PartitionValuesIn], Field(max_length=1000)]


class BatchDeletePartitionInput(CatalogRef):
    DatabaseName: NameStr
    TableName: NameStr
    PartitionsToDelete: Annotated[list[PartitionValuesIn], Field(max_length=25)]


class BatchCreatePartitionInput(CatalogRef):
    DatabaseName: NameStr
    TableName: NameStr
    PartitionInputList: Annotated[list[PartitionIn], Field(max_length=100)]


class CreatePartitionInput(CatalogRef):
    DatabaseName: NameStr
    TableName: NameStr
    PartitionInput: PartitionIn


class DeletePartitionInput(CatalogRef):
    DatabaseName: NameStr
    TableName: NameStr
    PartitionValues: list[ValueStr]


# -- what a query engine reads -----------------------------------------------------------------------
@dataclass(frozen=True)
class TableSource:
    """What a query engine reads for a Glue table: `location`, a folder in the lake; `format`,
    `parquet`, `csv`, `json` or the table's own SerDe class when it is none of these;
    `columns` and `partition_keys` as (name, Athena type); `serde_parameters` (a CSV table's
    `field.delim`...) and `table_parameters` (`classification`, `skip.header.line.count`, as
    awswrangler and Athena's TBLPROPERTIES set them); `partitions` as (values, folder), values None
    for the NULL partition."""

    database: str
    name: str
    location: Path
    format: str
    columns: list[tuple[str, str]]
    partition_keys: list[tuple[str, str]]
    serde_parameters: dict[str, str] = field(default_factory=dict)
    table_parameters: dict[str, str] = field(default_factory=dict)
    partitions: list[tuple[list[str | None], Path]] = field(default_factory=list)
    #: partition projection (`queries.glue_projection`): the table's Projection, the ProjectionError
    #: its properties raise (raised when it is queried), or None when projection is off; with it, the
    #: table's `s3://` location and `resolve(uri)`, a location's lake folder (AwsError outside the lake)
    #: (derived from the fields above, so left out of comparisons)
    projection: Projection | ProjectionError | None = field(default=None, compare=False)
    location_uri: str = field(default="", compare=False)
    resolve: Callable[[str], Path] | None = field(default=None, compare=False)


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidInputException", message)


def _not_found(message: str) -> AwsError:
    return AwsError("EntityNotFoundException", message)


class GlueService:
    """The Data Catalog over `lake` (a folder, the bucket `bucket`), with its own entries in
    `<state_dir>/catalog.sqlite3`. Thread-safe; `close()` closes the SQLite file.

    `clock` (epoch seconds) dates created entries; tests pass their own. `read_only` opens the
    entries without creating or changing anything (`queries.glue_store`)."""

    def __init__(
        self,
        lake: Path,
        state_dir: Path,
        *,
        bucket: str = LAKE_BUCKET,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        self.lake = lake
        self.bucket = bucket
        self.clock = clock
        self.store = GlueStore(state_dir / "catalog.sqlite3", read_only=read_only)

    @classmethod
    def from_settings(cls, settings: Settings, *, read_only: bool = False) -> GlueService:
        """The service of `tidelake serve`: the configured lake, entries under `<runtime.state_dir>/glue/`;
        `read_only` (for `tidelake query`, beside a running serve) creates and changes nothing."""
        return cls(settings.lake.root, settings.runtime.state_dir / "glue", read_only=read_only)

    def close(self) -> None:
        self.store.close()

    # -- the lake's tables ---------------------------------------------------------------------------
    def _lake_tables(self) -> dict[str, Table]:
        """The lake's datasets that are tables (readable files, or the declared clickstream schema)."""
        return {t.name: t for t in discover(self.lake) if t.files or t.name == EVENTS_TABLE}

    def _lake_table_json(self, table: Table) -> dict[str, Any]:
        columns, keys = athena_schema(table)
        times = [_mtime(f) for f in table.files]
        rows, size = table.row_count(), table.total_bytes
        answer: dict[str, Any] = {
            "Name": table.name,
            "DatabaseName": LAKE_DATABASE,
            "CatalogId": ACCOUNT_ID,
            "Retention": 0,
            "StorageDescriptor": self._parquet_descriptor(columns, lake_uri(self.bucket, table.name)),
            "PartitionKeys": [{"Name": n, "Type": t} for n, t in keys],
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {
                "classification": "parquet",
                "typeOfData": "file",
                "EXTERNAL": "TRUE",
                "objectCount": str(len(table.files)),
                "recordCount": str(rows),
                "sizeKey": str(size),
                "averageRecordSize": str(size // rows if rows else 0),
            },
            "IsRegisteredWithLakeFormation": False,
        }
        if times:
            answer["CreateTime"] = min(times)
            answer["UpdateTime"] = max(times)
        return answer

    def _parquet_descriptor(self, columns: list[tuple[str, str]], location: str) -> dict[str, Any]:
        return {
            "Columns": [{"Name": n, "Type": t} for n, t in columns],
            "Location": location,
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "Compressed": False,
            "NumberOfBuckets": -1,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"serialization.format": "1"},
            },
            "BucketColumns": [],
            "SortColumns": [],
            "Parameters": {},
            "StoredAsSubDirectories": False,
        }

    def _lake_partitions(self, table: Table) -> list[dict[str, Any]]:
        """One partition per Hive folder holding files, for the table's keys in order, sorted by values."""
        columns, keys = athena_schema(table)
        names = [k for k, _ in keys]
        folders: dict[Path, list[float]] = {}
        for path in table.files:
            folders.setdefault(path.parent, []).append(_mtime(path))
        found = []
        for folder, times in folders.items():
            parts = folder.relative_to(table.location).parts
            pairs = [part.partition("=") for part in parts]
            if not names or [p[0] for p in pairs] != names or not all(p[1] for p in pairs):
                continue  # a file outside the partition layout belongs to no partition
            relative = "/".join((table.name, *parts))
            found.append(
                {
                    "Values": [unquote(p[2]) if p[2] != NULL_PARTITION else p[2] for p in pairs],
                    "DatabaseName": LAKE_DATABASE,
                    "TableName": table.name,
                    "CatalogId": ACCOUNT_ID,
                    "CreationTime": min(times),
                    "StorageDescriptor": self._parquet_descriptor(columns, lake_uri(self.bucket, relative)),
                    "Parameters": {},
                }
            )
        return sorted(found, key=lambda p: p["Values"])

    # -- lookups -------------------------------------------------------------------------------------
    def _check_catalog(self, request: CatalogRef) -> None:
        if request.CatalogId is not None and request.CatalogId != ACCOUNT_ID:
            msg = f"Catalog {request.CatalogId} is not this account's ({ACCOUNT_ID}); cross-account catalogs are not shared here"
            raise AwsError("AccessDeniedException", msg)

    def _database(self, name: str) -> dict[str, Any]:
        name = name.lower()
        if name == LAKE_DATABASE:
            return {
                "Name": LAKE_DATABASE,
                "Description": "tidelake's lake: one table per dataset folder",
                "LocationUri": lake_uri(self.bucket),
                "Parameters": {},
                "CatalogId": ACCOUNT_ID,
            }
        found = self.store.database(name)
        if found is None:
            raise _not_found(f"Database {name} not found.")
        return found

    def _tables(self, database: str) -> dict[str, dict[str, Any]]:
        """Every table of the database by name: the lake's (in `default`) and the stored ones; a
        stored table wins over a dataset folder of the same name made after it."""
        self._database(database)
        database = database.lower()
        tables: dict[str, dict[str, Any]] = {}
        if database == LAKE_DATABASE:
            tables.update({name: self._lake_table_json(t) for name, t in self._lake_tables().items()})
        tables.update({t["Name"]: t for t in self.store.tables(database)})
        return tables

    def _table(self, database: str, name: str) -> tuple[dict[str, Any], Table | None]:
        """(Glue JSON, the lake's Table or None for a stored table), or EntityNotFoundException."""
        self._database(database)
        database, name = database.lower(), name.lower()
        stored = self.store.table(database, name)
        if stored is not None:
            return stored, None
        if database == LAKE_DATABASE:
            table = self._lake_tables().get(name)
            if table is not None:
                return self._lake_table_json(table), table
        raise _not_found(f"Table {name} not found.")

    # -- reading -------------------------------------------------------------------------------------
    def get_databases(self, request: GetDatabasesInput) -> dict[str, Any]:
        self._check_catalog(request)
        if request.ResourceShareType in ("FOREIGN", "FEDERATED"):
            return {"DatabaseList": []}  # nothing is shared with this account
        databases = [self._database(LAKE_DATABASE), *self.store.databases()]
        databases.sort(key=lambda d: d["Name"])
        page, token = _page(databases, request.NextToken, request.MaxResults or DATABASES_PAGE, "databases")
        if request.AttributesToGet:
            page = [{"Name": d["Name"]} for d in page]
        return {"DatabaseList": page, **({"NextToken": token} if token else {})}

    def get_database(self, request: GetDatabaseInput) -> dict[str, Any]:
        self._check_catalog(request)
        return {"Database": self._database(request.Name)}

    def get_tables(self, request: GetTablesInput) -> dict[str, Any]:
        self._check_catalog(request)
        matches = table_pattern(request.Expression)
        tables = [t for name, t in sorted(self._tables(request.DatabaseName).items()) if matches(name)]
        page, token = _page(tables, request.NextToken, request.MaxResults or TABLES_PAGE, "tables")
        if request.AttributesToGet:
            wanted = {"NAME": "Name", "TABLE_TYPE": "TableType"}
            keep = {wanted[a] for a in request.AttributesToGet} | {"Name"}
            page = [{k: v for k, v in t.items() if k in keep} for t in page]
        return {"TableList": page, **({"NextToken": token} if token else {})}

    def get_table(self, request: GetTableInput) -> dict[str, Any]:
        self._check_catalog(request)
        return {"Table": self._table(request.DatabaseName, request.Name)[0]}

    def _partitions(self, database: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        table, lake_table = self._table(database, name)
        if lake_table is not None:
            return table, self._lake_partitions(lake_table)
        stored = self.store.partitions(table["DatabaseName"], table["Name"])
        return table, sorted(stored, key=lambda p: p["Values"])

    def get_partitions(self, request: GetPartitionsInput) -> dict[str, Any]:
        self._check_catalog(request)
        table, partitions = self._partitions(request.DatabaseName, request.TableName)
        keys = [(k["Name"], k.get("Type") or "string") for k in table.get("PartitionKeys", [])]
        selects = partition_predicate(request.Expression, keys)
        chosen = [p for p in partitions if selects([_null(v) for v in p["Values"]])]
        if request.Segment is not None:
            if request.Segment.SegmentNumber >= request.Segment.TotalSegments:
                raise _invalid("SegmentNumber must be less than TotalSegments.")
            chosen = [
                p
                for p in chosen
                if _segment(p["Values"], request.Segment.TotalSegments) == request.Segment.SegmentNumber
            ]
        page, token = _page(
            chosen, request.NextToken, request.MaxResults or PARTITIONS_PAGE, "partitions", "Values"
        )
        if request.ExcludeColumnSchema:
            page = [_without_columns(p) for p in page]
        return {"Partitions": page, **({"NextToken": token} if token else {})}

    def get_partition(self, request: GetPartitionInput) -> dict[str, Any]:
        self._check_catalog(request)
        _, partitions = self._partitions(request.DatabaseName, request.TableName)
        for partition in partitions:
            if partition["Values"] == request.PartitionValues:
                return {"Partition": partition}
        raise _not_found("Cannot find partition.")

    # -- writing -------------------------------------------------------------------------------------
    def _check_location(self, uri: str | None) -> None:
        if uri is not None and uri != "":
            lake_path(uri, self.lake, self.bucket)

    def create_database(self, request: CreateDatabaseInput) -> dict[str, Any]:
        self._check_catalog(request)
        given = request.DatabaseInput
        name = given.Name.lower()
        self._check_location(given.LocationUri)
        body: dict[str, Any] = {
            "Name": name,
            **given.model_dump(exclude_none=True, exclude={"Name"}),
            "CreateTime": self.clock(),
            "CatalogId": ACCOUNT_ID,
        }
        body.setdefault("Parameters", {})
        if name == LAKE_DATABASE or not self.store.add_database(name, body):
            raise AwsError("AlreadyExistsException", "Database already exists.")
        return {}

    def delete_database(self, request: DeleteDatabaseInput) -> dict[str, Any]:
        self._check_catalog(request)
        name = request.Name.lower()
        if name == LAKE_DATABASE:
            raise _invalid("The database default is the lake itself and cannot be deleted.")
        if not self.store.drop_database(name):
            raise _not_found(f"Database {name} not found.")
        return {}

    def create_table(self, request: CreateTableInput) -> dict[str, Any]:
        self._check_catalog(request)
        if request.TableInput is None:
            raise _invalid(
                "TableInput is required (open table formats, OpenTableFormatInput, are not supported)."
            )
        given = request.TableInput
        database, name = request.DatabaseName.lower(), given.Name.lower()
        self._database(database)
        descriptor = given.StorageDescriptor
        self._check_location(descriptor.Location if descriptor else None)
        for location in (descriptor.AdditionalLocations or []) if descriptor else []:
            self._check_location(location)
        now = self.clock()
        body: dict[str, Any] = {
            "Name": name,
            "DatabaseName": database,
            **given.model_dump(exclude_none=True, exclude={"Name"}),
            "CreateTime": now,
            "UpdateTime": now,
            "CatalogId": ACCOUNT_ID,
            "IsRegisteredWithLakeFormation": False,
        }
        body.setdefault("PartitionKeys", [])
        body.setdefault("Retention", 0)
        taken = database == LAKE_DATABASE and name in self._lake_tables()
        if taken or not self.store.add_table(database, name, body):
            raise AwsError("AlreadyExistsException", "Table already exists.")
        return {}

    def update_table(self, request: UpdateTableInput) -> dict[str, Any]:
        """Replace a stored table's definition (its partitions stay); a table is never renamed."""
        self._check_catalog(request)
        if request.TableInput is None:
            raise _invalid("TableInput is required (open table formats are not supported).")
        given = request.TableInput
        table, lake_table = self._table(request.DatabaseName, given.Name)
        if lake_table is not None:
            raise _invalid(f"Table {table['Name']} is the lake's dataset: its definition is its files.")
        if request.Name is not None and request.Name.lower() != given.Name.lower():
            raise _invalid("A table cannot be renamed: Name and TableInput.Name differ.")
        descriptor = given.StorageDescriptor
        self._check_location(descriptor.Location if descriptor else None)
        for location in (descriptor.AdditionalLocations or []) if descriptor else []:
            self._check_location(location)
        body: dict[str, Any] = {
            "Name": table["Name"],
            "DatabaseName": table["DatabaseName"],
            **given.model_dump(exclude_none=True, exclude={"Name"}),
            "CreateTime": table.get("CreateTime"),
            "UpdateTime": self.clock(),
            "CatalogId": ACCOUNT_ID,
            "IsRegisteredWithLakeFormation": False,
        }
        body.setdefault("PartitionKeys", [])
        body.setdefault("Retention", 0)
        if not self.store.replace_table(table["DatabaseName"], table["Name"], body):
            raise _not_found(f"Table {table['Name']} not found.")
        return {}

    def _drop_table(self, database: str, name: str) -> None:
        if self.store.drop_table(database, name):
            return
        if database == LAKE_DATABASE and name in self._lake_tables():
            msg = f"Table {name} is the lake's dataset folder {name}/; it is listed while it holds files (remove the folder to drop it)."
            raise _invalid(msg)
        raise _not_found(f"Table {name} not found.")

    def delete_table(self, request: DeleteTableInput) -> dict[str, Any]:
        self._check_catalog(request)
        self._database(request.DatabaseName)
        self._drop_table(request.DatabaseName.lower(), request.Name.lower())
        return {}

    def batch_delete_table(self, request: BatchDeleteTableInput) -> dict[str, Any]:
        self._check_catalog(request)
        self._database(request.DatabaseName)
        errors = []
        for name in request.TablesToDelete:
            try:
                self._drop_table(request.DatabaseName.lower(), name.lower())
            except AwsError as exc:
                errors.append(
                    {"TableName": name, "ErrorDetail": {"ErrorCode": exc.code, "ErrorMessage": exc.text}}
                )
        return {"Errors": errors} if errors else {}

    def batch_create_partition(self, request: BatchCreatePartitionInput) -> dict[str, Any]:
        self._check_catalog(request)
        errors = self._create_partitions(request.DatabaseName, request.TableName, request.PartitionInputList)
        return {"Errors": errors} if errors else {}

    def create_partition(self, request: CreatePartitionInput) -> dict[str, Any]:
        self._check_catalog(request)
        errors = self._create_partitions(request.DatabaseName, request.TableName, [request.PartitionInput])
        if errors:
            detail = errors[0]["ErrorDetail"]
            raise AwsError(detail["ErrorCode"], detail["ErrorMessage"])
        return {}

    def _create_partitions(self, database: str, name: str, given: list[PartitionIn]) -> list[dict[str, Any]]:
        """Store each partition; one error entry per refused one (BatchCreatePartition's `Errors`)."""
        table, lake_table = self._table(database, name)
        if lake_table is not None:
            msg = f"Table {table['Name']} is the lake's dataset: its partitions are its folders and cannot be added."
            raise _invalid(msg)
        keys = table.get("PartitionKeys", [])
        errors = []
        for partition in given:
            values = list(partition.Values or [])
            try:
                if len(values) != len(keys):
                    raise _invalid(
                        "The number of partition keys do not match the number of partition values."
                    )
                descriptor = partition.StorageDescriptor
                self._check_location(descriptor.Location if descriptor else None)
                body = {
                    "Values": values,
                    "DatabaseName": table["DatabaseName"],
                    "TableName": table["Name"],
                    "CatalogId": ACCOUNT_ID,
                    "CreationTime": self.clock(),
                    **partition.model_dump(exclude_none=True, exclude={"Values"}),
                }
                body.setdefault("Parameters", {})
                if not self.store.add_partition(table["DatabaseName"], table["Name"], values, body):
                    raise AwsError("AlreadyExistsException", "Partition already exists.")
            except AwsError as exc:
                errors.append(
                    {
                        "PartitionValues": values,
                        "ErrorDetail": {"ErrorCode": exc.code, "ErrorMessage": exc.text},
                    }
                )
        return errors

    def batch_get_partition(self, request: BatchGetPartitionInput) -> dict[str, Any]:
        """The partitions asked for that exist, in the order asked; unknown ones are left out, as Glue does."""
        self._check_catalog(request)
        _, partitions = self._partitions(request.DatabaseName, request.TableName)
        by_values = {json.dumps(p["Values"]): p for p in partitions}
        found = [
            by_values[key]
            for key in dict.fromkeys(json.dumps(p.Values) for p in request.PartitionsToGet)
            if key in by_values
        ]
        return {"Partitions": found, "UnprocessedKeys": []}

    def batch_delete_partition(self, request: BatchDeletePartitionInput) -> dict[str, Any]:
        self._check_catalog(request)
        table, lake_table = self._table(request.DatabaseName, request.TableName)
        if lake_table is not None:
            raise _invalid(f"Table {table['Name']} is the lake's dataset: its partitions are its folders.")
        errors = []
        for partition in request.PartitionsToDelete:
            if not self.store.drop_partition(table["DatabaseName"], table["Name"], partition.Values):
                detail = {"ErrorCode": "EntityNotFoundException", "ErrorMessage": "Cannot find partition."}
                errors.append({"PartitionValues": partition.Values, "ErrorDetail": detail})
        return {"Errors": errors} if errors else {}

    def delete_partition(self, request: DeletePartitionInput) -> dict[str, Any]:
        self._check_catalog(request)
        table, lake_table = self._table(request.DatabaseName, request.TableName)
        if lake_table is not None:
            raise _invalid(f"Table {table['Name']} is the lake's dataset: its partitions are its folders.")
        if not self.store.drop_partition(table["DatabaseName"], table["Name"], request.PartitionValues):
            raise _not_found("Cannot find partition.")
        return {}

    # -- for a query engine ----------------------------------------------------------------------------
    def stored_sources(self) -> tuple[list[TableSource], list[str]]:
        """(TableSource of every table made by CreateTable or CREATE EXTERNAL TABLE, in every database,
        one line per table that cannot be read with why): what `Engine.attach_glue` makes queryable."""
        sources, warnings = [], []
        for database in [LAKE_DATABASE, *(d["Name"] for d in self.store.databases())]:
            for table in self.store.tables(database):
                try:
                    sources.append(self.table_source(database, table["Name"]))
                except AwsError as exc:
                    warnings.append(f"{database}.{table['Name']}: not readable: {exc.text}")
        return sources, warnings

    def table_source(self, database: str, name: str) -> TableSource:
        """What to read for the table `database.name` (see `TableSource`); EntityNotFoundException for
        an unknown table, InvalidInputException for one without a location in the lake. Locations
        are checked again here (a link may have appeared in the lake since CreateTable)."""
        table, lake_table = self._table(database, name)
        descriptor = table.get("StorageDescriptor") or {}
        location = descriptor.get("Location")
        if not location:
            raise _invalid(f"Table {table['Name']} has no StorageDescriptor.Location to read.")
        columns = [(c["Name"], c.get("Type", "string")) for c in descriptor.get("Columns", [])]
        keys = [(k["Name"], k.get("Type", "string")) for k in table.get("PartitionKeys", [])]
        serde = descriptor.get("SerdeInfo") or {}
        projection: Projection | ProjectionError | None
        try:
            projection = parse_projection(dict(table.get("Parameters") or {}), keys)
        except ProjectionError as exc:
            projection = exc
        partitions = (
            []  # Athena ignores a projected table's catalog partitions
            if projection is not None
            else self._lake_partitions(lake_table)
            if lake_table is not None
            else self.store.partitions(table["DatabaseName"], table["Name"])
        )
        folders = []
        for partition in sorted(partitions, key=lambda p: p["Values"]):
            where = (partition.get("StorageDescriptor") or {}).get("Location")
            if where:
                folders.append(
                    ([_null(v) for v in partition["Values"]], lake_path(where, self.lake, self.bucket))
                )
        return TableSource(
            database=table["DatabaseName"],
            name=table["Name"],
            location=lake_path(location, self.lake, self.bucket),
            format=table_format(table),
            columns=columns,
            partition_keys=keys,
            serde_parameters=dict(serde.get("Parameters") or {}),
            table_parameters=dict(table.get("Parameters") or {}),
            partitions=folders,
            projection=projection,
            location_uri=location,
            resolve=lambda uri: lake_path(uri, self.lake, self.bucket),
        )


def table_format(table: dict[str, Any]) -> str:
    """`parquet`, `csv`, `json`, or the SerDe class (else the InputFormat, else `unknown`) of a Glue
    table: from its `classification` parameter, as crawlers and awswrangler set it, else its SerDe."""
    descriptor = table.get("StorageDescriptor") or {}
    classification = ((table.get("Parameters") or {}).get("classification") or "").lower()
    if classification in ("parquet", "csv", "json"):
        return classification
    serde_class = (descriptor.get("SerdeInfo") or {}).get("SerializationLibrary") or ""
    serde = serde_class.lower()
    input_format = descriptor.get("InputFormat") or ""
    if "parquet" in serde or "parquet" in input_format.lower():
        return "parquet"
    if "json" in serde:
        return "json"
    if "opencsvserde" in serde or "lazysimpleserde" in serde:
        return "csv"
    return serde_class or input_format or "unknown"


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def _null(value: str) -> str | None:
    return None if value == NULL_PARTITION else value


def _segment(values: list[str], total: int) -> int:
    """The segment (0 ... total-1) a partition falls in: a stable hash of its values."""
    return zlib.crc32(json.dumps(values).encode()) % total


def _without_columns(partition: dict[str, Any]) -> dict[str, Any]:
    descriptor = {k: v for k, v in (partition.get("StorageDescriptor") or {}).items() if k != "Columns"}
    return {**partition, "StorageDescriptor": descriptor}


def _page(
    items: list[dict[str, Any]], token: str | None, size: int, kind: str, key: str = "Name"
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `items` (sorted by `key`) after the item a NextToken names; the next token or None.

    A token names the last item given, so entries that appear or go between calls shift no page."""
    start = 0
    if token:
        after = _unwrap_token(token, kind)
        start = next((i for i, item in enumerate(items) if item[key] > after), len(items))
    page = items[start : start + size]
    more = start + size < len(items)
    return page, _wrap_token(kind, page[-1][key]) if more else None


def _wrap_token(kind: str, last: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([kind, last]).encode()).decode()


def _unwrap_token(token: str, kind: str) -> Any:
    try:
        found, last = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise _invalid(f"Invalid NextToken: {token[:40]}") from exc
    if found != kind:
        raise _invalid(f"Invalid NextToken: {token[:40]}")
    return last


def glue_actions(service: GlueService) -> ActionTable:
    """The action table: Glue action name -> handler of a raw JSON 1.1 body."""

    def action(
        model: type[Any], handler: Callable[[Any], dict[str, Any]]
    ) -> Callable[[bytes], dict[str, Any]]:
        return lambda body: handler(parse_request(model, body))

    return {
        "GetDatabases": action(GetDatabasesInput, service.get_databases),
        "GetDatabase": action(GetDatabaseInput, service.get_database),
        "GetTables": action(GetTablesInput, service.get_tables),
        "GetTable": action(GetTableInput, service.get_table),
        "GetPartitions": action(GetPartitionsInput, service.get_partitions),
        "GetPartition": action(GetPartitionInput, service.get_partition),
        "CreateDatabase": action(CreateDatabaseInput, service.create_database),
        "DeleteDatabase": action(DeleteDatabaseInput, service.delete_database),
        "CreateTable": action(CreateTableInput, service.create_table),
        "UpdateTable": action(UpdateTableInput, service.update_table),
        "DeleteTable": action(DeleteTableInput, service.delete_table),
        "BatchDeleteTable": action(BatchDeleteTableInput, service.batch_delete_table),
        "BatchCreatePartition": action(BatchCreatePartitionInput, service.batch_create_partition),
        "CreatePartition": action(CreatePartitionInput, service.create_partition),
        "BatchGetPartition": action(BatchGetPartitionInput, service.batch_get_partition),
        "DeletePartition": action(DeletePartitionInput, service.delete_partition),
        "BatchDeletePartition": action(BatchDeletePartitionInput, service.batch_delete_partition),
    }
