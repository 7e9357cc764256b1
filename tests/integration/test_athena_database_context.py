"""Bare table names in the execution's database: boto3's QueryExecutionContext.Database and
PyAthena's schema_name make `SELECT * FROM sales` read `uploads.sales`, as on Athena."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest
import sqlalchemy
from pyathena import connect

from queries.s3_api import RESULTS_BUCKET
from tests.integration.test_athena_ddl import LAKE, SALES_CSV, SALES_DDL, Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    one = Stack(tmp_path)
    try:
        one.s3.put_object(Bucket=LAKE, Key="uploads/sales/sales.csv", Body=SALES_CSV)
        one.ok("CREATE DATABASE uploads")
        one.ok(SALES_DDL)
        yield one
    finally:
        one.close()


def test_qualified_names_work_from_any_database(stack: Stack) -> None:
    assert stack.ok("SELECT count(*) AS n FROM uploads.sales", "default") == [["n"], ["3"]]
    assert stack.ok("SELECT count(*) AS n FROM uploads.sales", "uploads") == [["n"], ["3"]]


def test_boto3_bare_name_in_the_context_database(stack: Stack) -> None:
    assert stack.ok("SELECT count(*) AS n FROM sales", "uploads") == [["n"], ["3"]]


def test_pyathena_schema_name_is_the_database_of_bare_names(stack: Stack) -> None:
    url = stack.athena.meta.endpoint_url
    cursor = connect(
        s3_staging_dir=f"s3://{RESULTS_BUCKET}/",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        schema_name="uploads",
    ).cursor()
    cursor.execute("SELECT item FROM sales WHERE id = 1")
    assert cursor.fetchall() == [("apple",)]


def test_metadata_lists_glue_databases_and_their_tables(stack: Stack) -> None:
    databases = stack.athena.list_databases(CatalogName="AwsDataCatalog")["DatabaseList"]
    assert [d["Name"] for d in databases] == ["default", "uploads"]
    listed = stack.athena.list_table_metadata(CatalogName="AwsDataCatalog", DatabaseName="uploads")
    (sales,) = listed["TableMetadataList"]
    assert sales["Name"] == "sales"
    assert [(c["Name"], c["Type"]) for c in sales["Columns"]] == [
        ("id", "int"),
        ("item", "string"),
        ("amount", "decimal(10,2)"),
        ("sold_on", "date"),
    ]
    assert sales["Parameters"]["location"] == "s3://tidelake-lake/uploads/sales/"
    one = stack.athena.get_table_metadata(
        CatalogName="AwsDataCatalog", DatabaseName="uploads", TableName="SALES"
    )
    assert one["TableMetadata"]["Name"] == "sales"
    with pytest.raises(stack.athena.exceptions.MetadataException):
        stack.athena.get_database(CatalogName="AwsDataCatalog", DatabaseName="nowhere")
    url = (
        "awsathena+rest://local:local@athena.us-east-1.amazonaws.com:443/default"
        f"?s3_staging_dir={quote_plus(f's3://{RESULTS_BUCKET}/')}"
        f"&endpoint_url={quote_plus(stack.athena.meta.endpoint_url)}"
    )
    engine = sqlalchemy.create_engine(url)
    try:
        inspector = sqlalchemy.inspect(engine)
        assert inspector.get_schema_names() == ["default", "uploads"]
        assert inspector.get_table_names(schema="uploads") == ["sales"]
        with engine.connect() as connection:
            table = sqlalchemy.Table(
                "sales", sqlalchemy.MetaData(), schema="uploads", autoload_with=connection
            )
            query = sqlalchemy.select(sqlalchemy.func.count()).where(table.c.item == "plum")
            assert connection.execute(query).scalar() == 1
    finally:
        engine.dispose()
