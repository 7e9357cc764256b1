"""Athena's DDL over Glue, the learner's walk-through with real clients: upload files with boto3's s3
client, CREATE EXTERNAL TABLE over them with boto3's athena client, query them by name, restart.

The stack is mounted as `tidelake serve` mounts it (S3 in front of the AWS endpoint with Glue's
actions and the real query app), wired by `tidelake.aws_services.connect_athena`, on real DuckDB and
a real SQLite Glue store, all on one port in a thread.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.settings import load_settings
from queries.api import create_app
from queries.engine import Engine, Limits
from queries.glue_api import TARGET_PREFIX as GLUE_PREFIX
from queries.glue_api import GlueService, glue_actions
from queries.results import ResultStore
from queries.s3_api import s3_app, s3_in_front
from queries.service import QueryService
from tests.aws_endpoints import aws_client, endpoint_in_thread
from tidelake.aws_endpoint import aws_endpoint
from tidelake.aws_services import connect_athena

pytestmark = pytest.mark.integration

LAKE = "tidelake-lake"
SALES_CSV = b"id,item,amount,sold_on\n1,apple,2.50,2026-11-29\n2,pear,x,2026-11-30\n3,plum,1.25,\n"
SALES_DDL = """
CREATE EXTERNAL TABLE IF NOT EXISTS uploads.sales (
  id int,
  item string COMMENT 'what was sold',
  amount decimal(10,2),
  sold_on date
)
ROW FORMAT DELIMITED FIELDS TERMINATED BY ','
STORED AS TEXTFILE
LOCATION 's3://tidelake-lake/uploads/sales/'
TBLPROPERTIES ('skip.header.line.count'='1')
"""


class Stack:
    """Athena, Glue and S3 on one port over `root`'s lake and state, as serve wires them."""

    def __init__(self, root: Path) -> None:
        settings = load_settings(
            lake={"root": root / "lake"},
            runtime={"state_dir": root / "state"},
            query={"results_dir": root / "results"},
        )
        (root / "lake").mkdir(exist_ok=True)
        self.engine = Engine(root / "lake", Limits(timeout_s=60), sessions=2)
        self.service = QueryService(self.engine, ResultStore(root / "results"), 2)
        self.glue = GlueService.from_settings(settings)
        connect_athena(self.glue, self.engine, self.service)
        app = s3_in_front(
            s3_app(settings), aws_endpoint(create_app(self.service), {GLUE_PREFIX: glue_actions(self.glue)})
        )
        self._endpoint = endpoint_in_thread(app)
        url = self._endpoint.__enter__()
        self.athena = aws_client("athena", url)
        self.s3 = aws_client("s3", url)
        self.glue_client = aws_client("glue", url)

    def close(self) -> None:
        self._endpoint.__exit__(None, None, None)
        self.service.close()
        self.engine.close()
        self.glue.close()

    def run(self, sql: str, database: str | None = None) -> tuple[dict, list[list[str | None]]]:
        """(the finished execution, its rows with the header row first); rows are [] unless SUCCEEDED."""
        extra = {"QueryExecutionContext": {"Database": database}} if database else {}
        query_id = self.athena.start_query_execution(QueryString=sql, **extra)["QueryExecutionId"]
        deadline = time.monotonic() + 30
        while True:
            execution = self.athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            if execution["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"query {query_id} did not finish within 30 s")
            time.sleep(0.02)
        if execution["Status"]["State"] != "SUCCEEDED":
            return execution, []
        pages = self.athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
        rows = [[d.get("VarCharValue") for d in r["Data"]] for p in pages for r in p["ResultSet"]["Rows"]]
        return execution, rows

    def ok(self, sql: str, database: str | None = None) -> list[list[str | None]]:
        execution, rows = self.run(sql, database)
        assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
        return rows

    def failed(self, sql: str, database: str | None = None) -> str:
        execution, _ = self.run(sql, database)
        assert execution["Status"]["State"] == "FAILED", execution["Status"]
        return execution["Status"]["StateChangeReason"]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    one = Stack(tmp_path)
    try:
        yield one
    finally:
        one.close()


def test_a_csv_uploaded_then_created_is_queryable_by_name_and_after_a_restart(tmp_path: Path) -> None:
    first = Stack(tmp_path)
    try:
        first.s3.put_object(Bucket=LAKE, Key="uploads/sales/2026-11.csv", Body=SALES_CSV)
        assert first.ok("CREATE DATABASE uploads") == []
        execution, rows = first.run(SALES_DDL)
        assert execution["Status"]["State"] == "SUCCEEDED"
        assert execution["StatementType"] == "DDL"
        assert rows == []
        # Glue holds it, as CreateTable would have written it
        table = first.glue_client.get_table(DatabaseName="uploads", Name="sales")["Table"]
        assert table["StorageDescriptor"]["Location"] == "s3://tidelake-lake/uploads/sales/"
        assert table["StorageDescriptor"]["SerdeInfo"]["Parameters"] == {
            "field.delim": ",",
            "serialization.format": ",",
        }
        assert table["Parameters"] == {"EXTERNAL": "TRUE", "skip.header.line.count": "1"}
        assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == [
            ("id", "int"),
            ("item", "string"),
            ("amount", "decimal(10,2)"),
            ("sold_on", "date"),
        ]
        sql = "SELECT id, item, amount, sold_on FROM uploads.sales ORDER BY id"
        expected = [
            ["id", "item", "amount", "sold_on"],
            ["1", "apple", "2.50", "2026-11-29"],
            ["2", "pear", None, "2026-11-30"],  # 'x' is no decimal: NULL, as Hive's SerDe reads it
            ["3", "plum", "1.25", None],
        ]
        execution, rows = first.run(sql)
        assert execution["StatementType"] == "DML"
        assert rows == expected
        # a second file uploaded later is read by the next query
        first.s3.put_object(
            Bucket=LAKE, Key="uploads/sales/2026-12.csv", Body=b"id,item,amount,sold_on\n4,fig,9,\n"
        )
        assert first.ok("SELECT count(*) AS n, sum(amount) AS total FROM uploads.sales") == [
            ["n", "total"],
            ["4", "12.75"],
        ]
    finally:
        first.close()
    again = Stack(tmp_path)  # a restart: a new service on the same state folder
    try:
        assert again.ok(sql) == [*expected, ["4", "fig", "9.00", None]]
    finally:
        again.close()


def test_a_table_in_database_default_is_read_by_its_bare_name(stack: Stack) -> None:
    stack.s3.put_object(Bucket=LAKE, Key="uploads/sales/a.csv", Body=SALES_CSV)
    ddl = SALES_DDL.replace("uploads.sales", "sales")
    assert stack.ok(ddl, database="default") == []
    assert stack.ok("SELECT item FROM sales WHERE amount > 2") == [["item"], ["apple"]]
    # DEFAULT is a DuckDB keyword: `default.sales` is a syntax error here, unlike on Athena
    assert stack.failed("SELECT count(*) AS n FROM default.sales") == (
        'Parser Error: syntax error at or near "default" (line 1, column 27)'
    )


def test_parquet_and_json_tables(stack: Stack) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"page": ["/a", "/b"], "views": [3, 5], "extra": [1.5, 2.5]}), buffer)
    stack.s3.put_object(Bucket=LAKE, Key="uploads/views/part-0.parquet", Body=buffer.getvalue())
    stack.s3.put_object(
        Bucket=LAKE,
        Key="uploads/people/p.json",
        Body=b'{"name": "ada", "age": 36}\n{"name": "bo", "age": null}\n',
    )
    stack.ok("CREATE DATABASE uploads")
    stack.ok(
        "CREATE EXTERNAL TABLE uploads.views (page string, views bigint) STORED AS PARQUET "
        "LOCATION 's3://tidelake-lake/uploads/views/'"
    )
    stack.ok(
        "CREATE EXTERNAL TABLE uploads.people (name string, age int) "
        "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://tidelake-lake/uploads/people/'"
    )
    assert stack.ok("SELECT page, views FROM uploads.views ORDER BY page") == [
        ["page", "views"],
        ["/a", "3"],
        ["/b", "5"],
    ]
    assert stack.ok("SELECT name, age FROM uploads.people ORDER BY name") == [
        ["name", "age"],
        ["ada", "36"],
        ["bo", None],
    ]


def test_a_partitioned_table_reads_the_partitions_msck_repair_and_alter_table_add(stack: Stack) -> None:
    for day, body in (("2026-11-29", b"1,a\n2,b\n"), ("2026-11-30", b"3,c\n")):
        stack.s3.put_object(Bucket=LAKE, Key=f"uploads/visits/dt={day}/v.csv", Body=body)
    stack.s3.put_object(Bucket=LAKE, Key="uploads/extra/v.csv", Body=b"9,z\n")
    stack.ok(
        "CREATE EXTERNAL TABLE visits (id int, who string) PARTITIONED BY (dt date) "
        "ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' LOCATION 's3://tidelake-lake/uploads/visits/'"
    )
    # as on Athena: no partition is read until it is registered
    assert stack.ok("SELECT count(*) AS n FROM visits") == [["n"], ["0"]]
    assert stack.ok("SHOW PARTITIONS visits") == [["partition"]]
    assert stack.ok("MSCK REPAIR TABLE visits") == [
        ["result"],
        ["Repair: Added partition to metastore visits:dt=2026-11-29"],
        ["Repair: Added partition to metastore visits:dt=2026-11-30"],
    ]
    assert stack.ok("MSCK REPAIR TABLE visits") == [["result"]]  # nothing new
    assert stack.ok("SELECT dt, count(*) AS n FROM visits GROUP BY dt ORDER BY dt") == [
        ["dt", "n"],
        ["2026-11-29", "2"],
        ["2026-11-30", "1"],
    ]
    assert (
        stack.ok(
            "ALTER TABLE visits ADD PARTITION (dt='2026-12-01') LOCATION 's3://tidelake-lake/uploads/extra/'"
        )
        == []
    )
    assert stack.ok("SHOW PARTITIONS visits") == [
        ["partition"],
        ["dt=2026-11-29"],
        ["dt=2026-11-30"],
        ["dt=2026-12-01"],
    ]
    assert stack.ok("SELECT id, who, dt FROM visits WHERE dt = DATE '2026-12-01'") == [
        ["id", "who", "dt"],
        ["9", "z", "2026-12-01"],
    ]
    assert "AlreadyExistsException: Partition already exists." in stack.failed(
        "ALTER TABLE visits ADD PARTITION (dt='2026-12-01')"
    )
    assert stack.ok("ALTER TABLE visits ADD IF NOT EXISTS PARTITION (dt='2026-12-01')") == []


def test_show_describe_and_drop(stack: Stack) -> None:
    stack.s3.put_object(Bucket=LAKE, Key="uploads/sales/a.csv", Body=SALES_CSV)
    stack.ok("CREATE DATABASE uploads")
    stack.ok(SALES_DDL)
    stack.ok(
        "CREATE EXTERNAL TABLE uploads.visits (id int) PARTITIONED BY (dt string, hour int) "
        "LOCATION 's3://tidelake-lake/uploads/visits/'"
    )
    assert stack.ok("SHOW TABLES IN uploads") == [["tab_name"], ["sales"], ["visits"]]
    assert stack.ok("SHOW TABLES", database="uploads") == [["tab_name"], ["sales"], ["visits"]]
    assert stack.ok("DESCRIBE uploads.sales") == [
        ["col_name", "data_type", "comment"],
        ["id", "int", ""],
        ["item", "string", "what was sold"],
        ["amount", "decimal(10,2)", ""],
        ["sold_on", "date", ""],
    ]
    assert stack.ok("DESCRIBE visits", database="uploads") == [
        ["col_name", "data_type", "comment"],
        ["id", "int", ""],
        ["dt", "string", ""],
        ["hour", "int", ""],
        ["", "", ""],
        ["# Partition Information", "", ""],
        ["# col_name", "data_type", "comment"],
        ["", "", ""],
        ["dt", "string", ""],
        ["hour", "int", ""],
    ]
    assert stack.ok("DROP TABLE uploads.sales") == []
    assert stack.ok("SHOW TABLES IN uploads") == [["tab_name"], ["visits"]]
    assert stack.failed("DROP TABLE uploads.sales") == "EntityNotFoundException: Table sales not found."
    assert stack.ok("DROP TABLE IF EXISTS uploads.sales") == []
    reason = stack.failed("SELECT * FROM uploads.sales")
    assert reason.startswith("table 'sales' does not exist"), reason
    # the files stay: an external table's data is not the catalog's
    assert stack.s3.get_object(Bucket=LAKE, Key="uploads/sales/a.csv")["Body"].read() == SALES_CSV


def test_locations_outside_the_lake_are_refused(stack: Stack) -> None:
    ddl = "CREATE EXTERNAL TABLE t (a int) LOCATION '{}'"
    assert stack.failed(ddl.format("s3://other/x/")) == (
        "refused: Insufficient Lake Formation permission(s) on s3://other/x/: the only data location is "
        "the lake, s3://tidelake-lake/. Nothing was written."
    )
    assert stack.failed(ddl.format("file:///etc/")) == (
        "refused: Location 'file:///etc/' is not an s3:// URI; tidelake's tables live in the lake, "
        "s3://tidelake-lake/<path>. Nothing was written."
    )
    assert stack.failed(ddl.format("s3://tidelake-lake/a/../../etc/")) == (
        "refused: Location 's3://tidelake-lake/a/../../etc/' is not a plain path in the lake "
        "(no '.', '..', '//', '\\' or control characters). Nothing was written."
    )
    assert stack.ok("SHOW TABLES") == [["tab_name"]]


def test_user_sql_still_may_not_read_files(stack: Stack) -> None:
    stack.s3.put_object(Bucket=LAKE, Key="uploads/sales/a.csv", Body=SALES_CSV)
    stack.ok("CREATE DATABASE uploads")
    stack.ok(SALES_DDL)
    assert stack.failed("SELECT * FROM read_csv('uploads/sales/a.csv')") == (
        "refused: table function read_csv() is not allowed: it reads files by path or runs SQL text; "
        "tidelake queries read the lake's tables by name (see `tidelake catalog`). Nothing was run or written."
    )
    assert stack.failed("SELECT * FROM 'uploads/sales/a.csv'") == (
        "refused: uploads/sales/a.csv is a file path; tidelake reads only the lake's tables "
        "(see `tidelake catalog`), not files by path. Nothing was run or written."
    )
    assert stack.failed("CREATE VIEW uploads.v AS SELECT 1").startswith(
        "refused: CREATE statements are not allowed"
    )


def test_ddl_errors_say_what_is_wrong(stack: Stack) -> None:
    assert stack.failed("CREATE TABLE t (a int) LOCATION 's3://tidelake-lake/t/'") == (
        "CREATE TABLE without EXTERNAL (CTAS, Iceberg) is not run by tidelake: the lake is read-only to "
        "queries; use CREATE EXTERNAL TABLE over files in the lake"
    )
    assert stack.failed("CREATE EXTERNAL TABLE t (a int) STORED AS ORC LOCATION 's3://tidelake-lake/t/'") == (
        "STORED AS ORC is not read by tidelake; it reads PARQUET and TEXTFILE (CSV, TSV, JSON lines)"
    )
    assert stack.failed("CREATE EXTERNAL TABLE t (a int) LOCATON 's3://tidelake-lake/t/'") == (
        "DDL syntax error: expected COMMENT, PARTITIONED BY, ROW FORMAT, STORED AS, LOCATION or TBLPROPERTIES "
        "at 'LOCATON' (character 33)"
    )
    assert stack.failed("CREATE EXTERNAL TABLE t (a int)") == (
        "CREATE EXTERNAL TABLE needs LOCATION 's3://<lake bucket>/<folder>/' (the files to read)"
    )
    assert stack.failed("CREATE EXTERNAL TABLE nope.t (a int) LOCATION 's3://tidelake-lake/t/'") == (
        "EntityNotFoundException: Database nope not found."
    )
