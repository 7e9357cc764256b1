"""What a query engine reads for a Glue table: its format, from `classification` or its SerDe."""

from __future__ import annotations

import pytest

from queries.glue_api import table_format


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"Parameters": {"classification": "CSV"}}, "csv"),
        ({"Parameters": {"classification": "json"}, "StorageDescriptor": {"SerdeInfo": {}}}, "json"),
        (
            {
                "StorageDescriptor": {
                    "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"}
                }
            },
            "json",
        ),
        (
            {
                "StorageDescriptor": {
                    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.serde2.OpenCSVSerde"}
                }
            },
            "csv",
        ),
        (
            {
                "StorageDescriptor": {
                    "SerdeInfo": {
                        "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
                    }
                }
            },
            "csv",
        ),
        (
            {
                "StorageDescriptor": {
                    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
                }
            },
            "parquet",
        ),
        (
            {
                "StorageDescriptor": {
                    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.orc.OrcSerde"}
                }
            },
            "org.apache.hadoop.hive.ql.io.orc.OrcSerde",
        ),
        (
            {"StorageDescriptor": {"InputFormat": "org.apache.hadoop.mapred.TextInputFormat"}},
            "org.apache.hadoop.mapred.TextInputFormat",
        ),
        ({}, "unknown"),
    ],
)
def test_table_format(table: dict, expected: str) -> None:
    assert table_format(table) == expected
