"""Athena's JSON actions: each body validated by a pydantic model, then a plain function of the service.

Shapes and limits come from botocore's Athena model (`botocore/data/athena/2017-05-18/service-2.json`):
QueryString 1-262,144 characters, ids 1-128 non-blank characters, WorkGroup `[a-zA-Z0-9._-]{1,128}`,
ClientRequestToken 32-128, NextToken 1-1,024, GetQueryResults' MaxResults 1-1,000, the list
actions' 0-50 (ListWorkGroups 1-50), batches of 1-50 ids, BytesScannedCutoffPerQuery at least
10,000,000, StatementName `[a-zA-Z_][a-zA-Z0-9_@:]{1,256}`, the metadata actions' MaxResults 1-50
(ListDataCatalogs 2-50), Expression 0-256 characters. A body that breaks them is Athena's `InvalidRequestException` (HTTP 400), never a 500.
Members the model does not name are ignored, as AWS's services do for fields a client is newer
than; values of the wrong JSON type are refused (no coercion: `"QueryString": 123` is an error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import QueryError
from queries import athena_metadata as metadata
from queries.athena_ctas import RESULTS_BUCKET as CTAS_BUCKET
from queries.athena_ctas import parse_ctas
from queries.athena_ddl import is_ddl
from queries.prepared import PreparedStatement, parse_deallocate, parse_prepare
from queries.service import PRIMARY, Execution, QueryService, RequestError

QueryText = Annotated[str, Field(min_length=1, max_length=262_144)]
ResourceId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\S+$")]
WorkGroupName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9._-]{1,128}$")]
Token = Annotated[str, Field(min_length=1, max_length=1024)]
IdempotencyToken = Annotated[str, Field(min_length=32, max_length=128)]
IdBatch = Annotated[list[ResourceId], Field(min_length=1, max_length=50)]
Cutoff = Annotated[int, Field(ge=10_000_000)]
StatementNameText = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^[a-zA-Z_][a-zA-Z0-9_@:]{1,255}$")
]
DescriptionText = Annotated[str, Field(min_length=1, max_length=1024)]
CatalogNameText = Annotated[str, Field(min_length=1, max_length=256)]
NameText = Annotated[str, Field(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class ExecutionContext(_Body):
    Database: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    Catalog: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class StartQueryExecution(_Body):
    QueryString: QueryText
    ClientRequestToken: IdempotencyToken | None = None
    WorkGroup: WorkGroupName = PRIMARY
    QueryExecutionContext: ExecutionContext | None = None
    ResultConfiguration: dict[str, Any] | None = None
    ExecutionParameters: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=1024)]], Field(min_length=1)] | None
    ) = None


class QueryExecutionRef(_Body):
    QueryExecutionId: ResourceId


class BatchGetQueryExecution(_Body):
    QueryExecutionIds: IdBatch


class GetQueryResults(_Body):
    QueryExecutionId: ResourceId
    NextToken: Token | None = None
    MaxResults: Annotated[int, Field(ge=1, le=1000)] = 1000
    QueryResultType: Literal["DATA_ROWS", "DATA_MANIFEST"] = "DATA_ROWS"


class ListRequest(_Body):
    NextToken: Token | None = None
    MaxResults: Annotated[int, Field(ge=0, le=50)] = 50
    WorkGroup: WorkGroupName | None = None


class ListWorkGroups(_Body):
    NextToken: Token | None = None
    MaxResults: Annotated[int, Field(ge=1, le=50)] = 50


class CreateNamedQuery(_Body):
    Name: Annotated[str, Field(min_length=1, max_length=128)]
    Database: Annotated[str, Field(min_length=1, max_length=255)]
    QueryString: QueryText
    Description: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    ClientRequestToken: IdempotencyToken | None = None
    WorkGroup: WorkGroupName = PRIMARY


class UpdateNamedQuery(_Body):
    NamedQueryId: ResourceId
    Name: Annotated[str, Field(min_length=1, max_length=128)]
    QueryString: QueryText
    Description: Annotated[str, Field(max_length=1024)] | None = None


class ListEngineVersions(_Body):
    NextToken: Token | None = None
    MaxResults: Annotated[int, Field(ge=1, le=10)] = 10


class NamedQueryRef(_Body):
    NamedQueryId: ResourceId


class BatchGetNamedQuery(_Body):
    NamedQueryIds: IdBatch


class WorkGroupConfiguration(_Body):
    BytesScannedCutoffPerQuery: Cutoff | None = None
    EnforceWorkGroupConfiguration: bool | None = None
    PublishCloudWatchMetricsEnabled: bool | None = None
    RequesterPaysEnabled: bool | None = None


class WorkGroupConfigurationUpdates(WorkGroupConfiguration):
    RemoveBytesScannedCutoffPerQuery: bool | None = None


class CreateWorkGroup(_Body):
    Name: WorkGroupName
    Configuration: WorkGroupConfiguration | None = None
    Description: Annotated[str, Field(max_length=1024)] = ""
    Tags: list[dict[str, Any]] | None = None


class WorkGroupRef(_Body):
    WorkGroup: WorkGroupName


class UpdateWorkGroup(_Body):
    WorkGroup: WorkGroupName
    Description: Annotated[str, Field(max_length=1024)] | None = None
    ConfigurationUpdates: WorkGroupConfigurationUpdates | None = None
    State: Literal["ENABLED", "DISABLED"] | None = None


class DeleteWorkGroup(_Body):
    WorkGroup: WorkGroupName
    RecursiveDeleteOption: bool | None = None


class CreatePreparedStatement(_Body):
    StatementName: StatementNameText
    WorkGroup: WorkGroupName
    QueryStatement: QueryText
    Description: DescriptionText | None = None


class PreparedStatementRef(_Body):
    StatementName: StatementNameText
    WorkGroup: WorkGroupName


class BatchGetPreparedStatement(_Body):
    PreparedStatementNames: Annotated[list[StatementNameText], Field(min_length=1, max_length=50)]
    WorkGroup: WorkGroupName


class ListPreparedStatements(_Body):
    WorkGroup: WorkGroupName
    NextToken: Token | None = None
    MaxResults: Annotated[int, Field(ge=1, le=50)] = 50


class ListDataCatalogs(_Body):
    NextToken: Token | None = None
    MaxResults: Annotated[int, Field(ge=2, le=50)] = 50
    WorkGroup: WorkGroupName | None = None


class GetDataCatalog(_Body):
    Name: CatalogNameText
    WorkGroup: WorkGroupName | None = None


class ListDatabases(_Body):
    CatalogName: CatalogNameText
    NextToken: Token | None = None
    MaxResults: Annotated[int, Field(ge=1, le=50)] = 50
    WorkGroup: WorkGroupName | None = None
    AttributesToGet: Annotated[list[Literal["NAME"]], Field(max_length=1)] | None = None


class GetDatabase(_Body):
    CatalogName: CatalogNameText
    DatabaseName: NameText
    WorkGroup: WorkGroupName | None = None


class ListTableMetadata(_Body):
    CatalogName: CatalogNameText
    DatabaseName: NameText
    Expression: Annotated[str, Field(max_length=256)] | None = None
    NextToken: Token | None = None
    MaxResults: Annotated[int, Field(ge=1, le=50)] = 50
    WorkGroup: WorkGroupName | None = None
    AttributesToGet: (
        Annotated[list[Literal["NAME", "TABLE_TYPE"]], Field(min_length=1, max_length=2)] | None
    ) = None


class GetTableMetadata(_Body):
    CatalogName: CatalogNameText
    DatabaseName: NameText
    TableName: NameText
    WorkGroup: WorkGroupName | None = None


#: Athena action name -> the model of its request body.
REQUESTS: dict[str, type[_Body]] = {
    "StartQueryExecution": StartQueryExecution,
    "GetQueryExecution": QueryExecutionRef,
    "BatchGetQueryExecution": BatchGetQueryExecution,
    "GetQueryResults": GetQueryResults,
    "StopQueryExecution": QueryExecutionRef,
    "ListQueryExecutions": ListRequest,
    "CreateNamedQuery": CreateNamedQuery,
    "GetNamedQuery": NamedQueryRef,
    "BatchGetNamedQuery": BatchGetNamedQuery,
    "ListNamedQueries": ListRequest,
    "DeleteNamedQuery": NamedQueryRef,
    "UpdateNamedQuery": UpdateNamedQuery,
    "ListEngineVersions": ListEngineVersions,
    "CreateWorkGroup": CreateWorkGroup,
    "GetWorkGroup": WorkGroupRef,
    "UpdateWorkGroup": UpdateWorkGroup,
    "DeleteWorkGroup": DeleteWorkGroup,
    "ListWorkGroups": ListWorkGroups,
    "GetQueryRuntimeStatistics": QueryExecutionRef,
    "CreatePreparedStatement": CreatePreparedStatement,
    "UpdatePreparedStatement": CreatePreparedStatement,
    "GetPreparedStatement": PreparedStatementRef,
    "DeletePreparedStatement": PreparedStatementRef,
    "BatchGetPreparedStatement": BatchGetPreparedStatement,
    "ListPreparedStatements": ListPreparedStatements,
    "ListDataCatalogs": ListDataCatalogs,
    "GetDataCatalog": GetDataCatalog,
    "ListDatabases": ListDatabases,
    "GetDatabase": GetDatabase,
    "ListTableMetadata": ListTableMetadata,
    "GetTableMetadata": GetTableMetadata,
}


def parse_body(model: type[_Body], body: bytes) -> _Body:
    """The validated request, or RequestError with AWS's wording (`1 validation error detected: ...`)."""
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors(include_url=False)]
        count = len(problems)
        msg = f"{count} validation error{'s' if count > 1 else ''} detected: {'; '.join(problems[:5])}"
        raise RequestError(msg) from exc


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "the body"
    if error["type"] in ("json_invalid", "model_type", "model_attributes_type") and where == "the body":
        return f"the body must be one JSON object ({error['msg']})"
    return f"Value at '{where}' failed to satisfy constraint: {error['msg']}"


# -- answers -------------------------------------------------------------------------------------
#: The one engine (ListEngineVersions, each execution's EngineVersion).
ENGINE_VERSION = {"SelectedEngineVersion": "DuckDB", "EffectiveEngineVersion": "DuckDB"}


def execution_json(service: QueryService, e: Execution) -> dict[str, Any]:
    status: dict[str, Any] = {"State": e.state, "SubmissionDateTime": e.submitted_ms / 1000}
    if e.reason:
        status["StateChangeReason"] = e.reason
    if e.completed_ms:
        status["CompletionDateTime"] = e.completed_ms / 1000
    if e.error_category is not None:
        status["AthenaError"] = {
            "ErrorCategory": e.error_category,
            "ErrorType": e.error_type,
            "Retryable": False,
            "ErrorMessage": e.reason,
        }
    out: dict[str, Any] = {
        "QueryExecutionId": e.id,
        "Query": e.query,
        "StatementType": "UTILITY" if is_utility(e.query) else "DDL" if is_ddl(e.query) else "DML",
        "ResultConfiguration": {"OutputLocation": service.output_location(e.id)},
        "QueryExecutionContext": {"Database": "default", "Catalog": "AwsDataCatalog", **e.context},
        "Status": status,
        "Statistics": service.statistics(e),
        "WorkGroup": e.workgroup,
        "EngineVersion": ENGINE_VERSION,
    }
    if e.execution_parameters:
        out["ExecutionParameters"] = list(e.execution_parameters)
    manifest = _ctas_manifest(service, e)
    if manifest is not None:
        out["Statistics"] = {**out["Statistics"], "DataManifestLocation": manifest}
    return out


def _ctas_manifest(service: QueryService, e: Execution) -> str | None:
    """The `s3://` data manifest of a CREATE TABLE AS that SUCCEEDED (`queries.athena_ctas`), else None."""
    if e.state != "SUCCEEDED" or not is_ddl(e.query):
        return None
    try:
        statement = parse_ctas(e.query, e.context.get("Database") or "default")
        key = statement.manifest_key if statement is not None else None
    except QueryError:
        return None
    if key is None or not (service.results.folder / key).is_file():
        return None
    return f"s3://{CTAS_BUCKET}/{key}"


def is_utility(sql: str) -> bool:
    """PREPARE and DEALLOCATE PREPARE: Athena's StatementType UTILITY."""
    return parse_prepare(sql) is not None or parse_deallocate(sql) is not None


def prepared_json(s: PreparedStatement) -> dict[str, Any]:
    out: dict[str, Any] = {
        "StatementName": s.name,
        "QueryStatement": s.query,
        "WorkGroupName": s.workgroup,
        "LastModifiedTime": s.modified_ms / 1000,
    }
    if s.description:
        out["Description"] = s.description
    return out


def workgroup_json(service: QueryService, name: str) -> dict[str, Any]:
    wg = service.workgroup(name)
    config: dict[str, Any] = {
        "EnforceWorkGroupConfiguration": False,
        "PublishCloudWatchMetricsEnabled": False,
    }
    if wg.bytes_scanned_cutoff is not None:
        config["BytesScannedCutoffPerQuery"] = wg.bytes_scanned_cutoff
    if service.results_uri:
        # where results are (awswrangler takes its s3_output, and its CTAS external_location, from here)
        config["ResultConfiguration"] = {"OutputLocation": service.results_uri}
    return {
        "Name": wg.name,
        "State": "ENABLED",
        "Description": wg.description,
        "CreationTime": wg.created_ms / 1000,
        "Configuration": config,
    }


def saved_json(service: QueryService, named_query_id: str) -> dict[str, Any]:
    s = service.saved_query(named_query_id)
    return {
        "Name": s.name,
        "Description": s.description,
        "Database": s.database,
        "QueryString": s.query,
        "NamedQueryId": s.id,
        "WorkGroup": s.workgroup,
    }


def _paged(items: list[Any], next_token: str | None, size: int) -> tuple[list[Any], str | None]:
    """One page of a list action; Athena's MaxResults 0 means its default (50)."""
    size = size or 50
    try:
        start = int(next_token or 0)
    except ValueError:
        start = -1
    if start < 0:
        msg = f"NextToken {next_token!r} is not one this server gave; start again without it"
        raise RequestError(msg)
    chunk = items[start : start + size]
    return chunk, str(start + size) if start + size < len(items) else None


def _batch(
    ids: list[str], fetch: Callable[[str], dict[str, Any]], id_key: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(found, unprocessed) of a batch get: an unknown id is listed with why, as on Athena."""
    found, unprocessed = [], []
    for one in dict.fromkeys(ids):
        try:
            found.append(fetch(one))
        except RequestError as exc:
            unprocessed.append({id_key: one, "ErrorCode": exc.code, "ErrorMessage": str(exc)})
    return found, unprocessed


# -- the actions ---------------------------------------------------------------------------------
Handler = Callable[[Any], dict[str, Any]]


def athena_actions(service: QueryService) -> dict[str, Handler]:
    """Athena action name -> its handler, which takes the body as `REQUESTS[name]` validated it."""

    def start(b: StartQueryExecution) -> dict[str, Any]:
        given = b.QueryExecutionContext
        context = {} if given is None else given.model_dump(exclude_none=True)
        query_id = service.start(
            b.QueryString,
            b.WorkGroup,
            b.ClientRequestToken,
            execution_parameters=b.ExecutionParameters,
            context=context,
        )
        return {"QueryExecutionId": query_id}

    def results(b: GetQueryResults) -> dict[str, Any]:
        columns, rows, token = service.page(b.QueryExecutionId, b.MaxResults, b.NextToken)
        out: dict[str, Any] = {
            "UpdateCount": 0,
            "ResultSet": {
                "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
                "ResultSetMetadata": {"ColumnInfo": columns},
            },
        }
        if token:
            out["NextToken"] = token
        return out

    def batch_executions(b: BatchGetQueryExecution) -> dict[str, Any]:
        found, missing = _batch(
            b.QueryExecutionIds, lambda i: execution_json(service, service.get(i)), "QueryExecutionId"
        )
        return {"QueryExecutions": found, "UnprocessedQueryExecutionIds": missing}

    def list_executions(b: ListRequest) -> dict[str, Any]:
        ids, token = _paged([e.id for e in service.executions(b.WorkGroup)], b.NextToken, b.MaxResults)
        return {"QueryExecutionIds": ids, **({"NextToken": token} if token else {})}

    def create_named(b: CreateNamedQuery) -> dict[str, Any]:
        saved = service.save_query(b.Name, b.QueryString, b.WorkGroup, b.Description or "")
        return {"NamedQueryId": saved}

    def batch_named(b: BatchGetNamedQuery) -> dict[str, Any]:
        found, missing = _batch(b.NamedQueryIds, lambda i: saved_json(service, i), "NamedQueryId")
        return {"NamedQueries": found, "UnprocessedNamedQueryIds": missing}

    def list_named(b: ListRequest) -> dict[str, Any]:
        wg = b.WorkGroup
        saved = [s.id for s in list(service.saved.values()) if wg is None or s.workgroup == wg]
        ids, token = _paged(saved, b.NextToken, b.MaxResults)
        return {"NamedQueryIds": ids, **({"NextToken": token} if token else {})}

    def create_wg(b: CreateWorkGroup) -> dict[str, Any]:
        cutoff = b.Configuration.BytesScannedCutoffPerQuery if b.Configuration else None
        service.put_workgroup(b.Name, b.Description, cutoff)
        return {}

    def update_wg(b: UpdateWorkGroup) -> dict[str, Any]:
        wg = service.workgroup(b.WorkGroup)
        cutoff = wg.bytes_scanned_cutoff
        updates = b.ConfigurationUpdates
        if updates is not None and updates.RemoveBytesScannedCutoffPerQuery:
            cutoff = None
        if updates is not None and updates.BytesScannedCutoffPerQuery is not None:
            cutoff = updates.BytesScannedCutoffPerQuery
        description = wg.description if b.Description is None else b.Description
        service.put_workgroup(wg.name, description, cutoff, create=False)
        return {}

    def list_wg(b: ListWorkGroups) -> dict[str, Any]:
        names, token = _paged(sorted(service.workgroups), b.NextToken, b.MaxResults)
        found = [
            {"Name": n, "State": "ENABLED", "Description": service.workgroups[n].description} for n in names
        ]
        return {"WorkGroups": found, **({"NextToken": token} if token else {})}

    def nothing(action: Callable[[str], None], argument: str) -> dict[str, Any]:
        action(argument)
        return {}  # Athena answers these with an empty object

    def update_named(b: UpdateNamedQuery) -> dict[str, Any]:
        service.update_saved(b.NamedQueryId, b.Name, b.QueryString, b.Description)
        return {}

    def list_engines(b: ListEngineVersions) -> dict[str, Any]:
        found, token = _paged([ENGINE_VERSION], b.NextToken, b.MaxResults)
        return {"EngineVersions": found, **({"NextToken": token} if token else {})}

    def put_prepared(b: CreatePreparedStatement, *, create: bool) -> dict[str, Any]:
        service.put_prepared(
            b.StatementName, b.WorkGroup, b.QueryStatement, b.Description or "", create=create
        )
        return {}

    def delete_prepared(b: PreparedStatementRef) -> dict[str, Any]:
        service.delete_prepared(b.StatementName, b.WorkGroup)
        return {}

    def batch_prepared(b: BatchGetPreparedStatement) -> dict[str, Any]:
        found, missing = _batch(
            b.PreparedStatementNames,
            lambda n: prepared_json(service.prepared_statement(n, b.WorkGroup)),
            "StatementName",
        )
        return {"PreparedStatements": found, "UnprocessedPreparedStatementNames": missing}

    def list_prepared(b: ListPreparedStatements) -> dict[str, Any]:
        statements, token = _paged(service.prepared_statements(b.WorkGroup), b.NextToken, b.MaxResults)
        found = [{"StatementName": s.name, "LastModifiedTime": s.modified_ms / 1000} for s in statements]
        return {"PreparedStatements": found, **({"NextToken": token} if token else {})}

    def list_catalogs(b: ListDataCatalogs) -> dict[str, Any]:
        found, token = _paged(metadata.catalog_summaries(), b.NextToken, b.MaxResults)
        return {"DataCatalogsSummary": found, **({"NextToken": token} if token else {})}

    def list_databases(b: ListDatabases) -> dict[str, Any]:
        names = ["default", *metadata.glue_databases(service.engine)]
        everything = [metadata.database(b.CatalogName, n, service.engine) for n in names]
        found, token = _paged(everything, b.NextToken, b.MaxResults)
        if b.AttributesToGet:
            found = [{"Name": d["Name"]} for d in found]
        return {"DatabaseList": found, **({"NextToken": token} if token else {})}

    def list_tables(b: ListTableMetadata) -> dict[str, Any]:
        tables = metadata.matching_tables(service.engine, b.CatalogName, b.DatabaseName, b.Expression)
        page, token = _paged(tables, b.NextToken, b.MaxResults)
        found = [metadata.table_metadata(t, b.AttributesToGet) for t in page]
        return {"TableMetadataList": found, **({"NextToken": token} if token else {})}

    def get_table(b: GetTableMetadata) -> dict[str, Any]:
        table = metadata.find_table(service.engine, b.CatalogName, b.DatabaseName, b.TableName)
        return {"TableMetadata": metadata.table_metadata(table)}

    return {
        "StartQueryExecution": start,
        "GetQueryExecution": lambda b: {
            "QueryExecution": execution_json(service, service.get(b.QueryExecutionId))
        },
        "BatchGetQueryExecution": batch_executions,
        "GetQueryResults": results,
        "StopQueryExecution": lambda b: nothing(service.stop, b.QueryExecutionId),
        "ListQueryExecutions": list_executions,
        "CreateNamedQuery": create_named,
        "GetNamedQuery": lambda b: {"NamedQuery": saved_json(service, b.NamedQueryId)},
        "BatchGetNamedQuery": batch_named,
        "ListNamedQueries": list_named,
        "DeleteNamedQuery": lambda b: nothing(service.delete_saved, b.NamedQueryId),
        "UpdateNamedQuery": update_named,
        "ListEngineVersions": list_engines,
        "CreateWorkGroup": create_wg,
        "GetWorkGroup": lambda b: {"WorkGroup": workgroup_json(service, b.WorkGroup)},
        "UpdateWorkGroup": update_wg,
        "DeleteWorkGroup": lambda b: nothing(service.delete_workgroup, b.WorkGroup),
        "ListWorkGroups": list_wg,
        "GetQueryRuntimeStatistics": lambda b: {
            "QueryRuntimeStatistics": service.runtime_statistics(service.get(b.QueryExecutionId))
        },
        "CreatePreparedStatement": lambda b: put_prepared(b, create=True),
        "UpdatePreparedStatement": lambda b: put_prepared(b, create=False),
        "GetPreparedStatement": lambda b: {
            "PreparedStatement": prepared_json(service.prepared_statement(b.StatementName, b.WorkGroup))
        },
        "DeletePreparedStatement": delete_prepared,
        "BatchGetPreparedStatement": batch_prepared,
        "ListPreparedStatements": list_prepared,
        "ListDataCatalogs": list_catalogs,
        "GetDataCatalog": lambda b: {"DataCatalog": metadata.data_catalog(b.Name)},
        "ListDatabases": list_databases,
        "GetDatabase": lambda b: {
            "Database": metadata.database(b.CatalogName, b.DatabaseName, service.engine)
        },
        "ListTableMetadata": list_tables,
        "GetTableMetadata": get_table,
    }
