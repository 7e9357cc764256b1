"""The order pipeline against tidelake: only the plugin's fixtures (`pip install tidelake[testing]`).

Every test starts from an empty stack (`tidelake_reset`), makes the Kinesis stream and the Firehose
delivery stream as the team's infrastructure code would, and waits for data with the stack's
bounded waits: nothing sleeps.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from orders_pipeline.producer import send_orders
from orders_pipeline.report import revenue_by_country

APP_SPEC = Path(__file__).parent.parent / "apps" / "orders-per-country-1m.toml"
APP_SQL = APP_SPEC.with_suffix(".sql")
ROLE = "arn:aws:iam::000000000000:role/firehose-orders"
STREAM = "orders"
DELIVERY = "orders-to-lake"


def order(n: int, country: str, amount: float, minute: int, status: str = "paid") -> dict:
    return {
        "order_id": f"o-{n:04d}",
        "country": country,
        "amount": amount,
        "status": status,
        "event_time": f"2026-03-02T10:{minute:02d}:{n % 60:02d}Z",
    }


#: 1,000 paid orders over two minutes (DE 400, FR 400, NL 200), then 5 test orders (dropped).
PAID = [order(n, ("DE", "FR", "NL", "DE", "FR")[n % 5], 10.0 + n % 7, n // 500) for n in range(1000)]
TEST_ORDERS = [order(1000 + n, "DE", 1.0, 1, status="test") for n in range(5)]


#: (country, window_start, count, sum_amount) of each per-country minute of PAID.
WINDOWS = [
    ("DE", "2026-03-02T10:00:00.000000Z", 200, 2597.0),
    ("DE", "2026-03-02T10:01:00.000000Z", 200, 2602.0),
    ("FR", "2026-03-02T10:00:00.000000Z", 200, 2601.0),
    ("FR", "2026-03-02T10:01:00.000000Z", 200, 2599.0),
    ("NL", "2026-03-02T10:00:00.000000Z", 100, 1296.0),
    ("NL", "2026-03-02T10:01:00.000000Z", 100, 1302.0),
]


def expected_revenue(orders: list[dict]) -> list[tuple[str, int, int]]:
    by_country: dict[str, tuple[int, int]] = {}
    for o in orders:
        count, cents = by_country.get(o["country"], (0, 0))
        by_country[o["country"]] = (count + 1, cents + round(o["amount"] * 100))
    return [(c, n, cents) for c, (n, cents) in sorted(by_country.items())]


@pytest.fixture
def pipeline(tidelake_reset, kinesis_client, firehose_client):
    """The Kinesis stream and its Firehose delivery stream to the lake, as Parquet, through the
    transform Lambda, buffered 15 minutes (the tests flush instead of waiting)."""
    kinesis_client.create_stream(StreamName=STREAM, ShardCount=2)
    arn = kinesis_client.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    firehose_client.create_delivery_stream(
        DeliveryStreamName=DELIVERY,
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": arn, "RoleARN": ROLE},
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE,
            "BucketARN": "arn:aws:s3:::tidelake-lake",
            "Prefix": "orders/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 900},
            "ProcessingConfiguration": {
                "Enabled": True,
                "Processors": [
                    {
                        "Type": "Lambda",
                        "Parameters": [
                            {
                                "ParameterName": "LambdaArn",
                                "ParameterValue": "orders_pipeline.transform:handler",
                            }
                        ],
                    }
                ],
            },
            "DataFormatConversionConfiguration": {
                "SchemaConfiguration": {"RoleARN": ROLE, "DatabaseName": "default", "TableName": "orders"},
                "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}},
            },
        },
    )
    return tidelake_reset


def test_orders_reach_athena_with_their_amount_in_cents(pipeline, kinesis_client, athena_client):
    assert send_orders(PAID + TEST_ORDERS, STREAM, kinesis_client) == 1005

    assert pipeline.wait_delivered(DELIVERY, 1000, timeout_s=60) == 1000  # the 5 test orders dropped
    assert revenue_by_country(athena_client) == expected_revenue(PAID)
    assert revenue_by_country(athena_client) == [
        ("DE", 400, 519900),
        ("FR", 400, 520000),
        ("NL", 200, 259800),
    ]


def test_an_order_without_amount_goes_to_the_error_prefix(pipeline, kinesis_client, s3_client):
    broken = {k: v for k, v in order(7, "FR", 0, 0).items() if k != "amount"}
    send_orders([order(1, "DE", 2.5, 0), broken], STREAM, kinesis_client)

    assert pipeline.wait_delivered(DELIVERY, 1, timeout_s=60) == 1
    listed = s3_client.list_objects_v2(Bucket="tidelake-lake", Prefix="_errors/")
    failed = [o["Key"] for o in listed.get("Contents", [])]
    assert len(failed) == 1 and "/processing-failed/" in failed[0], failed
    body = s3_client.get_object(Bucket="tidelake-lake", Key=failed[0])["Body"].read()
    rows = pq.read_table(io.BytesIO(body), columns=["error_type", "raw_data"]).to_pylist()
    assert [(r["error_type"], json.loads(r["raw_data"])) for r in rows] == [("processing-failed", broken)]


def test_orders_per_country_per_minute(pipeline, kinesis_client):
    app = pipeline.run_app(APP_SPEC)
    send_orders(PAID + TEST_ORDERS, STREAM, kinesis_client)

    counters = pipeline.wait_windows_closed(app, timeout_s=90)
    assert (counters["events_in"], counters["filtered"], counters["windows_closed"]) == (1005, 5, 6)
    rows = read_stream(kinesis_client, app.sink_topic)
    assert sorted((r["country"], r["window_start"], r["count"], r["sum_amount"]) for r in rows) == WINDOWS


def test_the_same_app_in_kda_sql_gives_the_same_windows(pipeline, kinesis_client):
    app = pipeline.run_app(APP_SQL, time_field="event_time", name="orders-per-country-1m-sql")
    send_orders(PAID + TEST_ORDERS, STREAM, kinesis_client)

    pipeline.wait_windows_closed(app, timeout_s=90)
    rows = read_stream(kinesis_client, app.sink_topic)
    assert sorted((r["country"], r["window_start"], r["count"], r["sum_amount"]) for r in rows) == WINDOWS


def test_code_that_makes_its_own_clients_reaches_the_stack(tidelake_reset, tidelake_env, kinesis_client):
    kinesis_client.create_stream(StreamName=STREAM, ShardCount=1)
    assert send_orders(PAID[:3], STREAM) == 3  # boto3.client("kinesis") from AWS_ENDPOINT_URL

    assert [json.loads(d)["order_id"] for d in read_data(kinesis_client, STREAM)] == [
        "o-0000",
        "o-0001",
        "o-0002",
    ]


def read_data(kinesis, stream: str) -> list[bytes]:
    """Every record's data in the stream, shard by shard (one GetRecords a shard: the tests' streams
    are small)."""
    found = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        found += [r["Data"] for r in kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]]
    return found


def read_stream(kinesis, stream: str) -> list[dict]:
    return [json.loads(d) for d in read_data(kinesis, stream)]
