"""The AWS-API benchmarks' own helpers: events, percentiles, retries and the all-back checks that
make a benchmark that loses data fail (bench/aws_apis.py, bench/kinesis.py, bench/firehose.py)."""

import json

import pytest

from bench import firehose, kinesis
from bench.aws_apis import event, event_id, percentile


def test_events_are_about_200_bytes_of_json_with_unique_ids() -> None:
    events = [event(i, "k") for i in range(2_000)]
    assert all(190 <= len(e) <= 230 for e in events)
    assert len({event_id(e) for e in events}) == 2_000
    marked = json.loads(event(7, "fresh", now_us=1_764_540_000_000_000))
    assert marked["event_id"] == "fresh-1764540000000000-7"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0


class FakeKinesis:
    """PutRecords fails the first record of each call once; GetRecords pages a shard's records."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []
        self.failed_once: set[bytes] = set()

    def put_records(self, StreamName: str, Records: list[dict]) -> dict:
        results = []
        for record in Records:
            if record is Records[0] and record["Data"] not in self.failed_once:
                self.failed_once.add(record["Data"])
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "x"})
            else:
                self.stored.append(record["Data"])
                results.append({"SequenceNumber": "1", "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}

    def list_shards(self, StreamName: str) -> dict:
        return {"Shards": [{"ShardId": "shardId-000000000000"}]}

    def get_shard_iterator(self, **_: object) -> dict:
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict:
        start = int(ShardIterator)
        page = self.stored[start : start + Limit]
        end = start + len(page)
        return {
            "Records": [{"Data": d} for d in page],
            "NextShardIterator": str(end),
            "MillisBehindLatest": 0 if end >= len(self.stored) else 1000,
        }


def test_kinesis_puts_failed_records_again_and_reads_every_page(monkeypatch) -> None:
    monkeypatch.setattr(kinesis, "GET_LIMIT", 300)
    batches = kinesis._batches(1_200)
    fake = FakeKinesis()
    assert kinesis.put_all(fake, "s", batches) == len(batches)
    got, calls = kinesis.get_all(fake, "s")
    assert calls == 5  # 300 + 300 + 300 + 300 (still behind: read on) + the empty caught-up page
    kinesis.check_all_back("fake", batches, got)


def test_kinesis_check_fails_on_a_lost_or_duplicated_record() -> None:
    batches = kinesis._batches(10)
    data = [r["Data"] for b in batches for r in b]
    with pytest.raises(RuntimeError, match="1 missing"):
        kinesis.check_all_back("side", batches, data[:-1])
    with pytest.raises(RuntimeError, match="1 extra or duplicated"):
        kinesis.check_all_back("side", batches, [*data[:-1], data[0]])


def test_firehose_check_ids_fails_on_a_lost_or_duplicated_record() -> None:
    expected = {"a", "b", "c"}
    firehose._check_ids("side", expected, ["c", "b", "a"])
    with pytest.raises(RuntimeError, match="1 missing"):
        firehose._check_ids("side", expected, ["a", "b"])
    with pytest.raises(RuntimeError, match="2 distinct"):
        firehose._check_ids("side", expected, ["a", "b", "b"])


def test_firehose_destination_is_parquet_with_a_one_second_buffer() -> None:
    config = firehose.destination("bench_x", parquet=True)
    assert config["BufferingHints"] == {"SizeInMBs": 64, "IntervalInSeconds": 1}
    assert config["Prefix"].startswith("bench_x/dt=!{timestamp:yyyy-MM-dd}/")
    serializer = config["DataFormatConversionConfiguration"]["OutputFormatConfiguration"]["Serializer"]
    assert serializer == {"ParquetSerDe": {"Compression": "SNAPPY"}}
    assert "DataFormatConversionConfiguration" not in firehose.destination("bench_x", parquet=False)
