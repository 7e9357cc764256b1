"""ExtendedS3DestinationConfiguration -> DeliveryStreamConfig (sinks.firehose_config) and the jq
metadata extraction (sinks.firehose_processing): the mapping rules, without Kafka."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jq
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.aws_json import AwsError
from core.settings import load_settings
from sinks.firehose_config import (
    ExtendedS3DestinationConfigurationIn,
    error_layout,
    firehose_delivery,
    sink_name,
    split_prefix,
)
from sinks.firehose_processing import ACCEPTED_SHAPE, parse_metadata_query

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


def _deliver(
    destination: dict[str, Any],
    tmp_path: Path,
    name: str = "orders-stream",
    hook_modules: tuple[str, ...] = (),
):
    model = ExtendedS3DestinationConfigurationIn.model_validate(destination)
    return firehose_delivery(name, model, topic=f"firehose.{name}", lake=tmp_path, hook_modules=hook_modules)


def _refused(destination: dict[str, Any], tmp_path: Path, hook_modules: tuple[str, ...] = ()) -> str:
    with pytest.raises(AwsError) as caught:
        _deliver(destination, tmp_path, hook_modules=hook_modules)
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
    assert (
        _refused(not_jq, tmp_path)
        == f"MetadataExtractionQuery '{{c:' is refused: tidelake accepts {ACCEPTED_SHAPE}"
    )
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
            Prefix="p/r=!{partitionKeyFromQuery:r}/n=!{partitionKeyFromQuery:n}/y=!{partitionKeyFromQuery:y}/",
            ProcessingConfiguration=_query_processor(
                '{r: .address.region, n: .items[1], y: (.ts | strftime("%Y"))}'
            ),
            **dynamic,
        ),
        tmp_path,
        "nested",
    )
    assert (
        slow.config.prefix
        == "r=!{partitionKeyFromLambda:query:r}/n=!{partitionKeyFromLambda:query:n}/y=!{partitionKeyFromLambda:query:y}/"
    )
    handler = slow.handler()
    assert handler is not None
    data = [
        b'{"address": {"region": "eu"}, "items": [1, 2], "ts": 86400}',
        b"not json",
        b'{"items": [], "ts": 0}',
    ]
    event = {
        "records": [{"recordId": str(i), "data": base64.b64encode(d).decode()} for i, d in enumerate(data)]
    }
    answer = handler(event, None)
    assert [r.get("metadata", {}).get("partitionKeys") for r in answer["records"]] == [
        {"query:r": "eu", "query:n": "2", "query:y": "1970"},
        None,
        {"query:y": "1970"},
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
        hook_modules=("tests.unit",),
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
        hook_modules=("tests.unit.test_firehose_config",),
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
    assert parse_metadata_query('{ y : (.ts|strftime("%Y-%m")) , "x y": .["a b"][0] | tostring }').keys == {
        "y": '.ts | strftime("%Y-%m")',
        "x y": '.["a b"][0] | tostring',
    }
    assert sink_name("orders-stream") == "orders-stream"
    assert sink_name("Orders") != sink_name("orders") == "orders"
    assert sink_name("Orders").startswith("orders-")


# -- the security review's findings (F0, F4, F6, F10, F14) ----------------------------------------
_DYNAMIC = {"DynamicPartitioningConfiguration": {"Enabled": True}, "ErrorOutputPrefix": "e/"}


def _lambda(reference: str) -> dict[str, Any]:
    return {
        "Processors": [
            {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": reference}]}
        ]
    }


@pytest.fixture
def side_effect_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module `fh_side_effect.hooks` on sys.path whose import writes a marker file."""
    marker = tmp_path / "imported"
    package = tmp_path / "mods" / "fh_side_effect"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "hooks.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('x')\ndef h(event, context):\n    return event\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.delitem(sys.modules, "fh_side_effect", raising=False)
    monkeypatch.delitem(sys.modules, "fh_side_effect.hooks", raising=False)
    yield marker
    sys.modules.pop("fh_side_effect.hooks", None)
    sys.modules.pop("fh_side_effect", None)


def test_a_lambda_hook_is_imported_only_from_allowed_modules(
    tmp_path: Path, side_effect_module: Path
) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    hook = _destination(ProcessingConfiguration=_lambda("fh_side_effect.hooks:h"))
    assert _refused(hook, lake) == (
        "LambdaArn 'fh_side_effect.hooks:h': the serve operator allows no transform hook module "
        "(setting query.firehose_hook_modules, env TIDELAKE_QUERY__FIREHOSE_HOOK_MODULES, is empty)"
    )
    for allowed in (("fh_side",), ("fh_side_effect.hook",), ("fh_side_effect.hooks.x", "other")):
        assert _refused(hook, lake, allowed) == (
            f"LambdaArn 'fh_side_effect.hooks:h': module 'fh_side_effect.hooks' is not in the setting "
            f"query.firehose_hook_modules {list(allowed)}"
        )
    venv = _destination(ProcessingConfiguration=_lambda("venv.__main__:x"))
    assert _refused(venv, lake, ("fh_side_effect",)) == (
        "LambdaArn 'venv.__main__:x': module 'venv.__main__' is not in the setting "
        "query.firehose_hook_modules ['fh_side_effect']"
    )
    assert not side_effect_module.exists()  # nothing was imported
    assert "venv.__main__" not in sys.modules
    for allowed in (("fh_side_effect",), ("fh_side_effect.hooks",)):
        delivery = _deliver(hook, lake, hook_modules=allowed)
        assert delivery.lambda_hook == "fh_side_effect.hooks:h"
    assert side_effect_module.read_text() == "x"


def test_the_hook_modules_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().query.firehose_hook_modules == []
    monkeypatch.setenv("TIDELAKE_QUERY__FIREHOSE_HOOK_MODULES", '["mycompany.hooks"]')
    assert load_settings().query.firehose_hook_modules == ["mycompany.hooks"]


REFUSED_QUERIES = {
    "import": 'import "creds" as $c; {s: ($c[0].pw)}',
    "include": 'include "creds"; {a: .a}',
    "env-var": "{h: $ENV.HOME}",
    "env-fn": "{p: (env.PATH[0:20])}",
    "env-piped": "{p: .a | env}",
    "interpolation": '{h: .a | strftime("\\(env.HOME)")}',
    "loop": "{k: (last(range(1e15))|tostring)}",
    "until": "{k: .a | until(false; .)}",
    "input": "{k: input}",
    "inputs": "{k: .a | inputs}",
    "input_filename": "{k: input_filename}",
    "loc": "{k: $__loc__}",
    "def": "def f: f; {k: .a | f}",
    "recurse": "{k: .a | recurse}",
    "index-expression": "{k: .a[.b]}",
    "slice": "{k: .a[0:2]}",
    "alternative": "{k: .a // .b}",
    "not-object": ".customer_id",
    "object-then-pipe": "{k: .a} | input_filename",
    "two-objects": "{k: .a}, {j: .b}",
    "computed-key": "{(.a): .b}",
    "literal-value": '{k: "x"}',
    "nested-parentheses": "{k: ((.a))}",
    "empty": "{}",
    "not-jq": "{c:",
}


@pytest.mark.parametrize("query", REFUSED_QUERIES.values(), ids=REFUSED_QUERIES.keys())
def test_only_paths_and_safe_functions_are_accepted(tmp_path: Path, query: str) -> None:
    destination = _destination(
        Prefix="o/k=!{partitionKeyFromQuery:k}/", ProcessingConfiguration=_query_processor(query), **_DYNAMIC
    )
    assert _refused(destination, tmp_path) == (
        f"MetadataExtractionQuery {query!r} is refused: tidelake accepts {ACCEPTED_SHAPE}"
    )


ACCEPTED_QUERIES = {
    # AWS's dynamic partitioning examples (Firehose guide; CDK's MetadataExtractionProcessor)
    "{customer_id:.customer_id}": {"customer_id": "c1"},
    '{customer_id: .customer_id, device: .type.device, year: .event_timestamp|strftime("%Y")}': {
        "customer_id": "c1",
        "device": "phone",
        "year": "1970",
    },
    '{k: .["x y"], i: .items[0], l: .name | ascii_downcase, u: .name | ascii_upcase}': {
        "k": "sp",
        "i": "7",
        "l": "ab",
        "u": "AB",
    },
    "{t: (.event_timestamp | todate), f: .price | floor | tostring, n: .num | tonumber}": {
        "t": "1970-01-02T00:00:00Z",
        "f": "3",
        "n": "12",
    },
    '{d: .day | strptime("%Y-%m-%d") | mktime | strftime("%m"), e: .day | strptime("%Y-%m-%d") | mktime}': {
        "d": "03",
        "e": "1709251200",
    },
}


@pytest.mark.parametrize("query", ACCEPTED_QUERIES, ids=range(len(ACCEPTED_QUERIES)))
def test_documented_queries_are_accepted_and_run_in_jq(tmp_path: Path, query: str) -> None:
    keys = ACCEPTED_QUERIES[query]
    layout = "".join(f"{k}=!{{partitionKeyFromQuery:{k}}}/" for k in keys)
    destination = _destination(
        Prefix=f"o/{layout}", ProcessingConfiguration=_query_processor(query), **_DYNAMIC
    )
    delivery = _deliver(destination, tmp_path)
    assert set(delivery.metadata_query.keys) == set(keys)
    record = {
        "customer_id": "c1",
        "type": {"device": "phone"},
        "event_timestamp": 86400,
        "x y": "sp",
        "items": [7],
        "name": "aB",
        "price": 3.7,
        "num": "12",
        "day": "2024-03-01",
    }
    program = jq.compile(query)
    found = program.input_value(record).first()
    assert {k: str(v) for k, v in found.items()} == keys


def _outside_table(path: Path) -> None:
    path.mkdir(parents=True)
    pq.write_table(pa.schema([("secretcol_outside", pa.int64())]).empty_table(), path / "x.parquet")


def _table_destination(table: str) -> dict[str, Any]:
    destination = _destination(Prefix="okds/")
    destination["DataFormatConversionConfiguration"]["SchemaConfiguration"] = {
        "DatabaseName": "default",
        "TableName": table,
    }
    return destination


def test_a_table_schema_is_not_read_through_a_link(tmp_path: Path) -> None:
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    _outside_table(outside)
    lake.mkdir()
    os.symlink(outside, lake / "linkds")  # the dataset folder is a link out of the lake
    linked = _deliver(_table_destination("linkds"), lake).config
    assert (linked.schema_, linked.fields) == ("infer", [])
    (lake / "filelink" / "sub").mkdir(parents=True)  # a real folder whose only file is a link
    os.symlink(outside / "x.parquet", lake / "filelink" / "f.parquet")
    os.symlink(outside, lake / "filelink" / "sub" / "deeper")  # and a folder link below it
    file_linked = _deliver(_table_destination("filelink"), lake, "s2").config
    assert (file_linked.schema_, file_linked.fields) == ("infer", [])
    pq.write_table(pa.schema([("mine", pa.string())]).empty_table(), lake / "filelink" / "sub" / "m.parquet")
    assert _deliver(_table_destination("filelink"), lake, "s3").config.fields == [
        {"name": "mine", "type": "string", "nullable": True}
    ]


BAD_FIRST_FOLDERS = [
    "_sinks",
    "_errors",
    "..",
    ".",
    ".hidden",
    "%2e%2e",
    "a\x00b",
    "a\\..\\x",
    "9lives",
    "a b",
]


@pytest.mark.parametrize("first", BAD_FIRST_FOLDERS)
def test_a_prefix_whose_first_folder_is_no_dataset_name_is_refused(tmp_path: Path, first: str) -> None:
    prefix = f"{first}/x/"
    assert _refused(_destination(Prefix=prefix), tmp_path) == (
        f"Prefix {prefix!r}: its first folder {first!r} names the dataset and must be a lake dataset name "
        "(^[a-z][a-z0-9_]{0,62}$; letters, digits, '.', '-' are made one, as raw-events -> raw_events): "
        "it starts with a letter (no '_', '.', '..') and holds no other character"
    )
