"""Athena's parameters, prepared statements, runtime statistics, metadata actions and restarts, through
boto3's athena client against the real query app served in a thread (real DuckDB, a lake written here)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from queries.api import create_app
from queries.engine import Engine, Limits
from queries.results import ResultStore
from queries.service import QueryService
from tests.aws_endpoints import aws_client, endpoint_in_thread
from tests.unit.queries_lake import event, write_events

#: 60 events at 07:00-07:59 on 2026-11-23: every tenth minute a 404 on /missing, else 200 on /p<m % 3>
EVENTS = [
    event(
        f"2026-11-23T07:{m:02d}:00",
        f"v{m % 4}",
        "/missing" if m % 10 == 0 else f"/p{m % 3}",
        status=404 if m % 10 == 0 else 200,
    )
    for m in range(60)
]


class Served:
    """One service on `root`'s lake and results, its app in a thread, and a boto3 client for it."""

    def __init__(self, root: Path) -> None:
        self.engine = Engine(root / "lake", Limits(timeout_s=60), sessions=2)
        self.service = QueryService(self.engine, ResultStore(root / "results"), 2)
        self._endpoint = endpoint_in_thread(create_app(self.service))
        self.athena = aws_client("athena", self._endpoint.__enter__())

    def close(self) -> None:
        self._endpoint.__exit__(None, None, None)
        self.service.close()
        self.engine.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_events(tmp_path / "lake", EVENTS)
    return tmp_path


@pytest.fixture
def served(root: Path) -> Iterator[Served]:
    one = Served(root)
    try:
        yield one
    finally:
        one.close()


def wait(athena, query_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        if execution["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return execution
        time.sleep(0.02)
    pytest.fail(f"query {query_id} did not finish within 30 s")


def rows(athena, query_id: str) -> list[list[str | None]]:
    pages = athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
    return [[d.get("VarCharValue") for d in r["Data"]] for p in pages for r in p["ResultSet"]["Rows"]]


def run(athena, sql: str, **extra) -> tuple[dict, list[list[str | None]]]:
    query_id = athena.start_query_execution(QueryString=sql, **extra)["QueryExecutionId"]
    execution = wait(athena, query_id)
    if execution["Status"]["State"] != "SUCCEEDED":
        return execution, []
    return execution, rows(athena, query_id)


BY_STATUS = "SELECT page, count(*) AS n FROM clickstream_events WHERE status = ? GROUP BY page ORDER BY page"


# -- ExecutionParameters ---------------------------------------------------------------------------
def test_the_users_qmark_query_succeeds_and_echoes_its_parameters(served: Served) -> None:
    context = {"Database": "default", "Catalog": "awsdatacatalog"}
    execution, found = run(
        served.athena, BY_STATUS, ExecutionParameters=["404"], QueryExecutionContext=context
    )
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert execution["ExecutionParameters"] == ["404"]
    assert execution["QueryExecutionContext"] == context
    assert found == [["page", "n"], ["/missing", "6"]]


def test_parameters_are_sql_literals_of_athenas_types(served: Served) -> None:
    sql = (
        "SELECT count(*) AS n FROM clickstream_events WHERE page = ? AND status = ? AND dt = ? "
        "AND event_time < ? AND is_bot = ?"
    )
    values = ["'/missing'", "404", "CAST('2026-11-23' AS DATE)", "TIMESTAMP '2026-11-23 07:30:00'", "false"]
    execution, found = run(served.athena, sql, ExecutionParameters=values)
    assert execution["ExecutionParameters"] == values
    assert found == [["n"], ["3"]]  # 07:00, 07:10, 07:20


def test_a_wrong_parameter_count_fails_the_execution_as_on_athena(served: Served) -> None:
    execution, _ = run(served.athena, BY_STATUS, ExecutionParameters=["404", "200"])
    status = execution["Status"]
    assert status["State"] == "FAILED"
    assert status["StateChangeReason"] == "Incorrect number of parameters: expected 1 but found 2"
    assert status["AthenaError"]["ErrorCategory"] == 2
    assert status["AthenaError"]["ErrorType"] == 1006
    execution, _ = run(served.athena, BY_STATUS)
    assert (
        execution["Status"]["StateChangeReason"] == "Incorrect number of parameters: expected 1 but found 0"
    )
    execution, _ = run(served.athena, "SELEC 1 WHERE 1 = ?", ExecutionParameters=["1"])
    assert execution["Status"]["StateChangeReason"].startswith(
        'Parser Error: syntax error at or near "SELEC"'
    )


def test_a_parameter_is_a_value_never_sql(served: Served, root: Path) -> None:
    sql = "SELECT count(*) AS n FROM clickstream_events WHERE page = ?"
    quoted = "'''); COPY (SELECT 1) TO ''" + str(root / "escaped.csv") + "'' --'"
    execution, found = run(served.athena, sql, ExecutionParameters=[quoted])
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert found == [["n"], ["0"]]  # compared as one string: no page has that name
    bare = "'); COPY (SELECT 1) TO '" + str(root / "escaped.csv") + "' --"
    execution, _ = run(served.athena, sql, ExecutionParameters=[bare])
    assert execution["Status"]["State"] == "FAILED"
    assert "is not a literal" in execution["Status"]["StateChangeReason"]
    assert not (root / "escaped.csv").exists()


def test_boto3_refuses_an_empty_parameter_list_before_sending(served: Served) -> None:
    raw = aws_client("athena", served.athena.meta.endpoint_url, validate=False)
    with pytest.raises(ClientError, match="InvalidRequestException"):
        raw.start_query_execution(QueryString="SELECT 1", ExecutionParameters=[])


# -- prepared statements ---------------------------------------------------------------------------
def test_prepared_statements_run_with_execute_using(served: Served) -> None:
    athena = served.athena
    athena.create_prepared_statement(
        StatementName="by_status",
        WorkGroup="primary",
        QueryStatement=BY_STATUS,
        Description="pages by status",
    )
    statement = athena.get_prepared_statement(StatementName="by_status", WorkGroup="primary")[
        "PreparedStatement"
    ]
    assert {k: v for k, v in statement.items() if k != "LastModifiedTime"} == {
        "StatementName": "by_status",
        "QueryStatement": BY_STATUS,
        "WorkGroupName": "primary",
        "Description": "pages by status",
    }
    _, found = run(athena, "EXECUTE by_status USING 404")
    assert found == [["page", "n"], ["/missing", "6"]]
    _, found = run(athena, "EXECUTE by_status", ExecutionParameters=["200"])
    assert found == [["page", "n"], ["/p0", "18"], ["/p1", "18"], ["/p2", "18"]]
    execution, found = run(athena, "execute by_status using ?", ExecutionParameters=["404"])
    assert (execution["ExecutionParameters"], found) == (["404"], [["page", "n"], ["/missing", "6"]])
    athena.create_prepared_statement(
        StatementName="constant", WorkGroup="primary", QueryStatement="SELECT 42 AS answer"
    )
    assert run(athena, "EXECUTE constant")[1] == [["answer"], ["42"]]
    execution, _ = run(athena, "EXECUTE by_status USING 404, 200")
    assert (
        execution["Status"]["StateChangeReason"] == "Incorrect number of parameters: expected 1 but found 2"
    )


def test_prepare_and_deallocate_prepare_run_as_sql(served: Served) -> None:
    athena = served.athena
    execution, found = run(athena, f"PREPARE by_status FROM {BY_STATUS}")
    assert (execution["Status"]["State"], execution["StatementType"], found) == ("SUCCEEDED", "UTILITY", [])
    statement = athena.get_prepared_statement(StatementName="by_status", WorkGroup="primary")[
        "PreparedStatement"
    ]
    assert statement["QueryStatement"] == BY_STATUS
    assert run(athena, "EXECUTE by_status USING 404")[1] == [["page", "n"], ["/missing", "6"]]
    run(athena, "PREPARE by_status FROM SELECT 1 AS one WHERE 1 = ?")
    assert run(athena, "EXECUTE by_status USING 1")[1] == [["one"], ["1"]]
    execution, _ = run(athena, "DEALLOCATE PREPARE by_status")
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert athena.list_prepared_statements(WorkGroup="primary")["PreparedStatements"] == []
    execution, _ = run(athena, "DEALLOCATE PREPARE by_status")
    assert (
        execution["Status"]["StateChangeReason"]
        == "Prepared statement by_status was not found in workgroup primary"
    )


def test_prepared_statements_belong_to_their_workgroup(served: Served) -> None:
    athena = served.athena
    athena.create_work_group(Name="analysts")
    athena.create_prepared_statement(
        StatementName="mine", WorkGroup="analysts", QueryStatement="SELECT 1 AS x"
    )
    execution, _ = run(athena, "EXECUTE mine", WorkGroup="primary")
    assert (
        execution["Status"]["StateChangeReason"]
        == "Prepared statement mine was not found in workgroup primary"
    )
    assert run(athena, "EXECUTE mine", WorkGroup="analysts")[1] == [["x"], ["1"]]
    with pytest.raises(
        athena.exceptions.ResourceNotFoundException, match="mine was not found in workgroup primary"
    ):
        athena.get_prepared_statement(StatementName="mine", WorkGroup="primary")
    with pytest.raises(athena.exceptions.InvalidRequestException, match="already exists"):
        athena.create_prepared_statement(
            StatementName="mine", WorkGroup="analysts", QueryStatement="SELECT 2"
        )


def test_a_prepared_statement_runs_inside_the_sandbox(served: Served, root: Path) -> None:
    target = root / "written.csv"
    athena = served.athena
    athena.create_prepared_statement(
        StatementName="writer", WorkGroup="primary", QueryStatement=f"COPY (SELECT ?) TO '{target}'"
    )
    execution, _ = run(athena, "EXECUTE writer USING 1")
    assert execution["Status"]["State"] == "FAILED"
    assert execution["Status"]["StateChangeReason"].startswith("refused: COPY statements are not allowed")
    execution, _ = run(athena, f"PREPARE reader FROM SELECT * FROM read_csv('{root}/x.csv') WHERE 1 = ?")
    assert execution["Status"]["State"] == "SUCCEEDED"  # stored as text, as Athena keeps it
    execution, _ = run(athena, "EXECUTE reader USING 1")
    assert execution["Status"]["StateChangeReason"].startswith(
        "refused: table function read_csv() is not allowed"
    )
    assert not target.exists()


def test_prepared_statement_list_update_batch_and_delete(served: Served) -> None:
    athena = served.athena
    names = [f"s{n:02d}" for n in range(7)]
    for name in reversed(names):
        athena.create_prepared_statement(StatementName=name, WorkGroup="primary", QueryStatement="SELECT 1")
    listed, token = [], {}
    while True:  # botocore has no paginator for it: NextToken by hand
        page = athena.list_prepared_statements(WorkGroup="primary", MaxResults=3, **token)
        listed.append([s["StatementName"] for s in page["PreparedStatements"]])
        if "NextToken" not in page:
            break
        token = {"NextToken": page["NextToken"]}
    assert listed == [["s00", "s01", "s02"], ["s03", "s04", "s05"], ["s06"]]
    athena.update_prepared_statement(
        StatementName="s03", WorkGroup="primary", QueryStatement="SELECT 3 AS three", Description="now 3"
    )
    assert run(athena, "EXECUTE s03")[1] == [["three"], ["3"]]
    with pytest.raises(athena.exceptions.ResourceNotFoundException):
        athena.update_prepared_statement(StatementName="nope", WorkGroup="primary", QueryStatement="SELECT 1")
    batch = athena.batch_get_prepared_statement(PreparedStatementNames=["s03", "nope"], WorkGroup="primary")
    assert [
        (s["StatementName"], s["QueryStatement"], s["Description"]) for s in batch["PreparedStatements"]
    ] == [("s03", "SELECT 3 AS three", "now 3")]
    assert [(u["StatementName"], u["ErrorCode"]) for u in batch["UnprocessedPreparedStatementNames"]] == [
        ("nope", "ResourceNotFoundException")
    ]
    athena.delete_prepared_statement(StatementName="s03", WorkGroup="primary")
    with pytest.raises(athena.exceptions.ResourceNotFoundException):
        athena.delete_prepared_statement(StatementName="s03", WorkGroup="primary")
    left = athena.list_prepared_statements(WorkGroup="primary")["PreparedStatements"]
    assert [s["StatementName"] for s in left] == ["s00", "s01", "s02", "s04", "s05", "s06"]
    with pytest.raises(athena.exceptions.InvalidRequestException, match="WorkGroup nowhere is not found"):
        athena.list_prepared_statements(WorkGroup="nowhere")


# -- runtime statistics ----------------------------------------------------------------------------
def test_runtime_statistics_count_what_duckdb_read_and_wrote(served: Served, root: Path) -> None:
    execution, _ = run(served.athena, BY_STATUS, ExecutionParameters=["200"])
    query_id = execution["QueryExecutionId"]
    stats = served.athena.get_query_runtime_statistics(QueryExecutionId=query_id)["QueryRuntimeStatistics"]
    assert stats["Rows"] == {
        "InputRows": 54,  # rows out of DuckDB's scan: status = 200 is pushed into it (60 - 6 404s)
        "InputBytes": execution["Statistics"]["DataScannedInBytes"],
        "OutputRows": 3,
        "OutputBytes": (root / "results" / f"{query_id}.csv").stat().st_size,
    }
    assert (
        stats["Timeline"]["EngineExecutionTimeInMillis"]
        == execution["Statistics"]["EngineExecutionTimeInMillis"]
    )
    assert (
        stats["Timeline"]["TotalExecutionTimeInMillis"]
        == execution["Statistics"]["TotalExecutionTimeInMillis"]
    )
    assert stats["OutputStage"]["State"] == "FINISHED"
    with pytest.raises(served.athena.exceptions.InvalidRequestException, match="was not found"):
        served.athena.get_query_runtime_statistics(QueryExecutionId="no-such-query")


# -- metadata --------------------------------------------------------------------------------------
def test_metadata_actions_describe_the_lake(served: Served, root: Path) -> None:
    write_events(root / "lake", [event("2026-11-23T07:00:00", "v", "/x")], dataset="other_events")
    athena = served.athena
    assert athena.list_data_catalogs()["DataCatalogsSummary"] == [
        {"CatalogName": "AwsDataCatalog", "Type": "GLUE", "Status": "CREATE_COMPLETE"}
    ]
    assert athena.get_data_catalog(Name="awsdatacatalog")["DataCatalog"]["Type"] == "GLUE"
    with pytest.raises(athena.exceptions.InvalidRequestException, match="Catalog hive was not found"):
        athena.get_data_catalog(Name="hive")
    assert [d["Name"] for d in athena.list_databases(CatalogName="AwsDataCatalog")["DatabaseList"]] == [
        "default"
    ]
    assert (
        athena.get_database(CatalogName="AwsDataCatalog", DatabaseName="default")["Database"]["Name"]
        == "default"
    )
    with pytest.raises(athena.exceptions.MetadataException, match="EntityNotFoundException"):
        athena.get_database(CatalogName="AwsDataCatalog", DatabaseName="sales")
    listed = athena.list_table_metadata(CatalogName="AwsDataCatalog", DatabaseName="default")[
        "TableMetadataList"
    ]
    assert [t["Name"] for t in listed] == ["clickstream_events", "other_events"]
    pages = athena.get_paginator("list_table_metadata").paginate(
        CatalogName="AwsDataCatalog", DatabaseName="default", PaginationConfig={"PageSize": 1}
    )
    assert [[t["Name"] for t in p["TableMetadataList"]] for p in pages] == [
        ["clickstream_events"],
        ["other_events"],
    ]
    only = athena.list_table_metadata(
        CatalogName="AwsDataCatalog", DatabaseName="default", Expression="other.*"
    )
    assert [t["Name"] for t in only["TableMetadataList"]] == ["other_events"]
    table = athena.get_table_metadata(
        CatalogName="AwsDataCatalog", DatabaseName="default", TableName="clickstream_events"
    )["TableMetadata"]
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert [(c["Name"], c["Type"]) for c in table["Columns"]] == [
        ("event_id", "string"),
        ("event_time", "timestamp"),
        ("visitor_id", "string"),
        ("method", "string"),
        ("url", "string"),
        ("page", "string"),
        ("referrer", "string"),
        ("status", "int"),
        ("bytes", "bigint"),
        ("user_agent", "string"),
        ("is_bot", "boolean"),
        ("source", "string"),
    ]
    assert [(c["Name"], c["Type"]) for c in table["PartitionKeys"]] == [("dt", "date"), ("hour", "int")]
    assert table["Parameters"]["location"] == (root / "lake" / "clickstream_events").resolve().as_uri() + "/"
    with pytest.raises(athena.exceptions.MetadataException, match="Error Code: EntityNotFoundException"):
        athena.get_table_metadata(CatalogName="AwsDataCatalog", DatabaseName="default", TableName="nope")


# -- restarts --------------------------------------------------------------------------------------
def test_state_survives_a_restart(root: Path) -> None:
    first = Served(root)
    try:
        athena = first.athena
        athena.create_work_group(Name="analysts", Description="the analysts")
        athena.create_prepared_statement(
            StatementName="by_status", WorkGroup="analysts", QueryStatement=BY_STATUS
        )
        named = athena.create_named_query(
            Name="views", Database="default", QueryString="SELECT 1", WorkGroup="analysts"
        )
        execution, found = run(athena, "EXECUTE by_status USING 404", WorkGroup="analysts")
        query_id = execution["QueryExecutionId"]
        token = "t" * 32
        tokened = athena.start_query_execution(QueryString="SELECT 7 AS n", ClientRequestToken=token)
        wait(athena, tokened["QueryExecutionId"])
    finally:
        first.close()
    second = Served(root)
    try:
        athena = second.athena
        again = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        assert {k: again[k] for k in ("Query", "WorkGroup", "ResultConfiguration")} == {
            k: execution[k] for k in ("Query", "WorkGroup", "ResultConfiguration")
        }
        assert again["Status"] == execution["Status"]
        assert again["Statistics"]["DataScannedInBytes"] == execution["Statistics"]["DataScannedInBytes"]
        assert rows(athena, query_id) == found == [["page", "n"], ["/missing", "6"]]
        assert query_id in athena.list_query_executions(WorkGroup="analysts")["QueryExecutionIds"]
        assert athena.get_work_group(WorkGroup="analysts")["WorkGroup"]["Description"] == "the analysts"
        statement = athena.get_prepared_statement(StatementName="by_status", WorkGroup="analysts")
        assert statement["PreparedStatement"]["QueryStatement"] == BY_STATUS
        assert athena.get_named_query(NamedQueryId=named["NamedQueryId"])["NamedQuery"]["Name"] == "views"
        assert athena.list_named_queries(WorkGroup="analysts")["NamedQueryIds"] == [named["NamedQueryId"]]
        same = athena.start_query_execution(QueryString="SELECT 7 AS n", ClientRequestToken=token)
        assert same["QueryExecutionId"] == tokened["QueryExecutionId"]
        assert run(athena, "EXECUTE by_status USING 200", WorkGroup="analysts")[1][0] == ["page", "n"]
    finally:
        second.close()


def test_update_named_query_and_list_engine_versions(served: Served) -> None:
    athena = served.athena
    named = athena.create_named_query(
        Name="views", Database="default", QueryString="SELECT 1", Description="first"
    )["NamedQueryId"]
    athena.update_named_query(NamedQueryId=named, Name="views2", QueryString="SELECT 2")
    found = athena.get_named_query(NamedQueryId=named)["NamedQuery"]
    assert (found["Name"], found["QueryString"], found["Description"]) == ("views2", "SELECT 2", "first")
    with pytest.raises(athena.exceptions.InvalidRequestException, match="NamedQuery nope was not found"):
        athena.update_named_query(NamedQueryId="nope", Name="x", QueryString="SELECT 1")
    assert athena.list_engine_versions()["EngineVersions"] == [
        {"SelectedEngineVersion": "DuckDB", "EffectiveEngineVersion": "DuckDB"}
    ]
