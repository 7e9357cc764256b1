"""ExtendedS3DestinationConfiguration -> DeliveryStreamConfig (sinks.firehose_config) and the jq
metadata extraction (sinks.firehose_processing): the mapping rules, without Kafka."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.aws_json import AwsError
from sinks.firehose_config import (
    ExtendedS3DestinationConfigurationIn,
    error_layout,
    firehose_delivery,
    sink_name,
    split_prefix,
)
from sinks.firehose_processing import parse_metadata_query

ROLE = "arn:aws:iam::000000000000:role/firehose"


def _destination(**changes: Any) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "RoleARN": ROLE,
        "BucketARN": "arn:aws:s3:::any-bucket",
        "DataFormatConversionConfiguration": {
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}},
        },
    }
    destination.update(changes)
    return destination


def _query_processor(query: str) -> dict[str, Any]:
    return {
        "Processors": [
            {
                "Type": "MetadataExtraction",
                "Parameters": [{"ParameterName": "MetadataExtractionQuery", "ParameterValue": query}],
            }
        ]
    }


def _deliver(destination: dict[str, Any], tmp_path: Path, name: str = "orders-stream"):
    model = ExtendedS3DestinationConfigurationIn.model_validate(destination)
    return firehose_delivery(name, model, topic=f"firehose.{name}", lake=tmp_path)


def _refused(destination: dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(AwsError) as caught:
        _deliver(destination, tmp_path)
    assert caught.value.code == "InvalidArgumentException"
    return caught.value.text


def hook_upper(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """A transform hook (tests name it as tests.unit.test_firehose_config:hook_upper)."""
    out = []
    for record in event["records"]:
        value = json.loads(base64.b64decode(record["data"]))
        value["region"] = value["region"].upper()
        out.append(
            {
                "recordId": record["recordId"],
                "result": "Ok",
                "data": base64.b64encode(json.dumps(value).encode()).decode(),
            }
        )
    return {"records": out}


def test_the_first_folder_of_the_prefix_names_the_dataset() -> None:
    assert split_prefix("orders/customer=!{partitionKeyFromQuery:c}/", "s") == (
        "orders",
        "customer=!{partitionKeyFromQuery:c}/",
    )
    assert split_prefix("raw-events/", "s") == ("raw_events", "")
    assert split_prefix("", "My.Stream") == ("my_stream", "")
    assert split_prefix("!{timestamp:yyyy}/x/", "clicks") == ("clicks", "!{timestamp:yyyy}/x/")
    assert split_prefix("orders", "clicks") == ("clicks", "orders")


def test_defaults_follow_firehose(tmp_path: Path) -> None:
    delivery = _deliver(_destination(), tmp_path)
    config = delivery.config
    assert delivery.dataset == "orders_stream"
    assert config.name == "orders-stream"
    assert config.topics == ["firehose.orders-stream"]
    assert config.prefix == "!{timestamp:yyyy/MM/dd/HH}/"
    assert config.error_prefix == "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"
    assert (config.time_source, config.time_field) == ("arrival", None)
    assert (config.buffer.size_mb, config.buffer.interval_s) == (128, 300)
    assert config.parquet.compression == "snappy"
    assert config.schema_ == "infer" and config.fields == []
    assert config.consumer_group == "tidelake-firehose-orders-stream"
    assert delivery.handler() is None


def test_layout_buffering_compression_and_error_prefix(tmp_path: Path) -> None:
    destination = _destination(
        Prefix="sales/dt=!{timestamp:yyyy-MM-dd}/",
        ErrorOutputPrefix="failed/!{firehose:error-output-type}/!{timestamp:yyyy}/",
        BufferingHints={"SizeInMBs": 64, "IntervalInSeconds": 0},
    )
    destination["DataFormatConversionConfiguration"]["OutputFormatConfiguration"]["Serializer"][
        "ParquetSerDe"
    ] = {"Compression": "GZIP"}
    config = _deliver(destination, tmp_path).config
    assert (config.dataset, config.prefix) == ("sales", "dt=!{timestamp:yyyy-MM-dd}/")
    assert config.error_prefix == "!{firehose:error-output-type}/!{timestamp:yyyy}/"
    assert (config.buffer.size_mb, config.buffer.interval_s) == (64, 0)
    assert config.parquet.compression == "gzip"
    # a literal layout gets Firehose's default time folders appended
    assert (
        _deliver(_destination(Prefix="sales/v1/"), tmp_path, "other").config.prefix
        == "v1/!{timestamp:yyyy/MM/dd/HH}/"
    )
    assert error_layout("errors/") == "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"


def test_a_lake_table_declares_the_columns(tmp_path: Path) -> None:
    (tmp_path / "orders").mkdir()
    schema = pa.schema([("order_id", pa.string()), ("amount", pa.int64()), ("at", pa.timestamp("us", "UTC"))])
    pq.write_table(schema.empty_table(), tmp_path / "orders" / "f.parquet")
    destination = _destination()
    destination["DataFormatConversionConfiguration"]["SchemaConfiguration"] = {
        "DatabaseName": "default",
        "TableName": "orders",
    }
    config = _deliver(destination, tmp_path).config
    assert config.fields == [
        {"name": "order_id", "type": "string", "nullable": True},
        {"name": "amount", "type": "int64", "nullable": True},
        {"name": "at", "type": "timestamp[us, UTC]", "nullable": True},
    ]
    destination["DataFormatConversionConfiguration"]["SchemaConfiguration"]["TableName"] = "missing"
    assert _deliver(destination, tmp_path, "again").config.schema_ == "infer"


def test_a_tag_declares_the_columns_inline(tmp_path: Path) -> None:
    tags = {"tidelake:schema": "order_id=string amount=int64 at=timestamp"}
    model = ExtendedS3DestinationConfigurationIn.model_validate(_destination())
    config = firehose_delivery("tagged", model, topic="t", lake=tmp_path, tags=tags).config
    assert config.fields == [
        {"name": "order_id", "type": "string", "nullable": True},
        {"name": "amount", "type": "int64", "nullable": True},
        {"name": "at", "type": "timestamp", "nullable": True},
    ]
    with pytest.raises(AwsError) as caught:
        firehose_delivery("tagged", model, topic="t", lake=tmp_path, tags={"tidelake:schema": "amount:int64"})
    assert caught.value.code == "InvalidArgumentException"
    assert "name=type" in caught.value.text


def test_what_tidelake_and_aws_refuse(tmp_path: Path) -> None:
    orc = _destination()
    orc["DataFormatConversionConfiguration"]["OutputFormatConfiguration"]["Serializer"] = {"OrcSerDe": {}}
    assert "OrcSerDe is not supported" in _refused(orc, tmp_path)
    raw = _destination()
    del raw["DataFormatConversionConfiguration"]
    assert "raw delivery is not supported" in _refused(raw, tmp_path)
    assert "at least 64 MiB" in _refused(
        _destination(BufferingHints={"SizeInMBs": 5, "IntervalInSeconds": 60}), tmp_path
    )
    assert "UNCOMPRESSED" in _refused(_destination(CompressionFormat="GZIP"), tmp_path)
    assert "UTC" in _refused(_destination(CustomTimeZone="Asia/Tokyo"), tmp_path)
    assert "DynamicPartitioningConfiguration" in _refused(
        _destination(Prefix="o/c=!{partitionKeyFromQuery:c}/"), tmp_path
    )
    dynamic = {"DynamicPartitioningConfiguration": {"Enabled": True}, "ErrorOutputPrefix": "e/"}
    no_query = _destination(Prefix="o/c=!{partitionKeyFromQuery:c}/", **dynamic)
    assert "MetadataExtraction" in _refused(no_query, tmp_path)
    wrong_key = _destination(
        Prefix="o/c=!{partitionKeyFromQuery:c}/",
        ProcessingConfiguration=_query_processor("{d:.d}"),
        **dynamic,
    )
    assert "['c']" in _refused(wrong_key, tmp_path)
    not_jq = _destination(
        Prefix="o/c=!{partitionKeyFromQuery:c}/", ProcessingConfiguration=_query_processor("{c:"), **dynamic
    )
    assert "is not a jq program" in _refused(not_jq, tmp_path)
    no_error_prefix = _destination(
        Prefix="o/c=!{partitionKeyFromQuery:c}/", DynamicPartitioningConfiguration={"Enabled": True}
    )
    assert "ErrorOutputPrefix is required" in _refused(no_error_prefix, tmp_path)
    arn = {
        "Processors": [
            {
                "Type": "Lambda",
                "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": "arn:aws:lambda:x"}],
            }
        ]
    }
    assert "package.module:function" in _refused(_destination(ProcessingConfiguration=arn), tmp_path)
    decompress = {"Processors": [{"Type": "Decompression"}]}
    assert "Decompression processor is not supported" in _refused(
        _destination(ProcessingConfiguration=decompress), tmp_path
    )


def test_top_level_query_keys_are_read_by_the_sink_and_others_by_jq(tmp_path: Path) -> None:
    dynamic = {"DynamicPartitioningConfiguration": {"Enabled": True}, "ErrorOutputPrefix": "e/"}
    fast = _deliver(
        _destination(
            Prefix="o/cust=!{partitionKeyFromQuery:cid}/",
            ProcessingConfiguration=_query_processor("{cid: .customer_id}"),
            **dynamic,
        ),
        tmp_path,
    )
    assert fast.config.prefix == "cust=!{partitionKeyFromQuery:customer_id}/"
    assert fast.handler() is None
    slow = _deliver(
        _destination(
            Prefix="p/r=!{partitionKeyFromQuery:r}/n=!{partitionKeyFromQuery:n}/",
            ProcessingConfiguration=_query_processor("{r: .address.region, n: (.items | length)}"),
            **dynamic,
        ),
        tmp_path,
        "nested",
    )
    assert slow.config.prefix == "r=!{partitionKeyFromLambda:query:r}/n=!{partitionKeyFromLambda:query:n}/"
    handler = slow.handler()
    assert handler is not None
    data = [b'{"address": {"region": "eu"}, "items": [1, 2]}', b"not json", b'{"items": []}']
    event = {
        "records": [{"recordId": str(i), "data": base64.b64encode(d).decode()} for i, d in enumerate(data)]
    }
    answer = handler(event, None)
    assert [r.get("metadata", {}).get("partitionKeys") for r in answer["records"]] == [
        {"query:r": "eu", "query:n": "2"},
        None,
        {"query:n": "0"},
    ]
    assert [r["result"] for r in answer["records"]] == ["Ok", "Ok", "Ok"]


def test_a_lambda_hook_runs_before_jq(tmp_path: Path) -> None:
    processors = _query_processor("{r: .region}")
    processors["Processors"].append(
        {
            "Type": "Lambda",
            "Parameters": [
                {"ParameterName": "LambdaArn", "ParameterValue": "tests.unit.test_firehose_config:hook_upper"}
            ],
        }
    )
    processors["Processors"].append({"Type": "AppendDelimiterToRecord"})
    delivery = _deliver(
        _destination(
            Prefix="o/r=!{partitionKeyFromQuery:r}/",
            ProcessingConfiguration=processors,
            DynamicPartitioningConfiguration={"Enabled": True},
            ErrorOutputPrefix="e/",
        ),
        tmp_path,
    )
    # the sink converts what the hook returned, so a top-level key still reads its column
    assert delivery.lambda_hook == "tests.unit.test_firehose_config:hook_upper"
    assert delivery.config.prefix == "r=!{partitionKeyFromQuery:region}/"
    assert delivery.handler() is hook_upper
    nested = _deliver(
        _destination(
            Prefix="o/r=!{partitionKeyFromQuery:r}/",
            ProcessingConfiguration={
                "Processors": [
                    *processors["Processors"][1:],
                    *_query_processor("{r: .a.region}")["Processors"],
                ]
            },
            DynamicPartitioningConfiguration={"Enabled": True},
            ErrorOutputPrefix="e/",
        ),
        tmp_path,
        "nested",
    )
    handler = nested.handler()
    assert handler is not None and handler is not hook_upper
    event = {
        "records": [
            {"recordId": "a", "data": base64.b64encode(b'{"region": "eu", "a": {"region": "x"}}').decode()}
        ]
    }
    answer = handler(event, None)  # jq reads the record as the hook returned it
    assert answer["records"][0]["metadata"]["partitionKeys"] == {"query:r": "x"}
    assert json.loads(base64.b64decode(answer["records"][0]["data"]))["region"] == "EU"


def test_metadata_queries_and_sink_names() -> None:
    assert parse_metadata_query('{customer_id:.customer_id, "r": .a.b}').keys == {
        "customer_id": ".customer_id",
        "r": ".a.b",
    }
    assert parse_metadata_query("{n: (.items | length)}").keys is None
    assert sink_name("orders-stream") == "orders-stream"
    assert sink_name("Orders") != sink_name("orders") == "orders"
    assert sink_name("Orders").startswith("orders-")
