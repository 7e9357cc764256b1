"""Kinesis Data Streams' request shapes (botocore's model, 2013-12-02) and AWS's limits on them.

Each action's body is parsed by its pydantic model (`core.aws_json.parse_request`: AWS's
SerializationException and ValidationException, worded as AWS words them).

PutRecords is the one hot request: 500 records a call, each with base64 data. Its body is read by
`parse_put_records`, which takes a fast path (orjson and plain checks, no model per record) when
the body is exactly what the model would accept without a word, and otherwise asks the model, so
every error is the model's, word for word. The fast path accepts a subset of what the model
accepts, never more: anything it is unsure of (a StreamARN, a member of an unexpected type, a
string it would have to think about) goes to the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

import orjson
from pydantic import Field

from core.aws_json import AwsModel, parse_request

MAX_RECORDS = 500
MAX_RECORD_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 5 * 1024 * 1024
MAX_GET_RECORDS = 10_000
MAX_GET_BYTES = 10 * 1024 * 1024

NameStr = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.-]+$")]
ArnStr = Annotated[
    str, Field(min_length=1, max_length=2048, pattern=r"^arn:aws.*:kinesis:.*:\d{12}:stream/\S+$")
]
ShardIdStr = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.-]+$")]
HashKeyStr = Annotated[str, Field(pattern=r"^(0|([1-9]\d{0,38}))$")]
SeqStr = Annotated[str, Field(pattern=r"^(0|([1-9]\d{0,128}))$")]
KeyStr = Annotated[str, Field(min_length=1, max_length=256)]
TokenStr = Annotated[str, Field(min_length=1, max_length=1_048_576)]


class StreamRef(AwsModel):
    StreamName: NameStr | None = None
    StreamARN: ArnStr | None = None


class ModeDetails(AwsModel):
    StreamMode: Literal["PROVISIONED", "ON_DEMAND"]


class CreateStreamInput(AwsModel):
    StreamName: NameStr
    ShardCount: Annotated[int, Field(ge=1)] | None = None
    StreamModeDetails: ModeDetails | None = None


class DeleteStreamInput(StreamRef):
    EnforceConsumerDeletion: bool | None = None


class DescribeStreamInput(StreamRef):
    Limit: Annotated[int, Field(ge=1, le=10_000)] | None = None
    ExclusiveStartShardId: ShardIdStr | None = None


class ListStreamsInput(AwsModel):
    Limit: Annotated[int, Field(ge=1, le=10_000)] | None = None
    ExclusiveStartStreamName: NameStr | None = None
    NextToken: TokenStr | None = None


class ShardFilterIn(AwsModel):
    Type: Literal[
        "AFTER_SHARD_ID",
        "AT_TRIM_HORIZON",
        "FROM_TRIM_HORIZON",
        "AT_LATEST",
        "AT_TIMESTAMP",
        "FROM_TIMESTAMP",
    ]
    ShardId: ShardIdStr | None = None
    Timestamp: float | None = None


class ListShardsInput(StreamRef):
    NextToken: TokenStr | None = None
    ExclusiveStartShardId: ShardIdStr | None = None
    MaxResults: Annotated[int, Field(ge=1, le=10_000)] | None = None
    StreamCreationTimestamp: float | None = None
    ShardFilter: ShardFilterIn | None = None


class PutRecordInput(StreamRef):
    Data: str
    PartitionKey: KeyStr  # optional in the model for AUTO distribution, which tidelake lacks
    ExplicitHashKey: HashKeyStr | None = None
    SequenceNumberForOrdering: SeqStr | None = None


class PutRecordsEntry(AwsModel):
    Data: str
    PartitionKey: KeyStr
    ExplicitHashKey: HashKeyStr | None = None


class PutRecordsInput(StreamRef):
    Records: Annotated[list[PutRecordsEntry], Field(min_length=1, max_length=MAX_RECORDS)]


class GetShardIteratorInput(StreamRef):
    ShardId: ShardIdStr
    ShardIteratorType: Literal[
        "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"
    ]
    StartingSequenceNumber: SeqStr | None = None
    Timestamp: float | None = None


class GetRecordsInput(StreamRef):
    ShardIterator: Annotated[str, Field(min_length=1, max_length=512)]
    Limit: Annotated[int, Field(ge=1)] | None = None


#: One record to put: (Data as base64 text, PartitionKey, ExplicitHashKey or None).
PutEntry = tuple[str, str, str | None]


@dataclass(frozen=True, slots=True)
class PutRecordsCall:
    """A parsed PutRecords body: the stream it names and its records, in order."""

    stream: StreamRef
    records: list[PutEntry]

    @classmethod
    def of(cls, request: PutRecordsInput) -> PutRecordsCall:
        ref = StreamRef.model_construct(StreamName=request.StreamName, StreamARN=request.StreamARN)
        return cls(ref, [(e.Data, e.PartitionKey, e.ExplicitHashKey) for e in request.Records])


# What the fast path accepts: ASCII forms of the model's patterns, matched whole (`re`'s `$` would
# let a trailing newline through, the model's does not).
_FAST_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
_FAST_HASH_KEY = re.compile(r"0|[1-9][0-9]{0,38}")


def parse_put_records(body: bytes) -> PutRecordsCall:
    """A PutRecords body, parsed as `parse_request(PutRecordsInput, body)` parses it (the same
    answer for any body, and the same errors), faster for the bodies that are valid."""
    fast = _fast_put_records(body)
    if fast is not None:
        return fast
    return PutRecordsCall.of(parse_request(PutRecordsInput, body))


def _fast_put_records(body: bytes) -> PutRecordsCall | None:
    """The parsed call when the body certainly passes the model; None when the model must judge."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict or document.get("StreamARN") is not None:
        return None
    name, records = document.get("StreamName"), document.get("Records")
    if type(name) is not str or not _FAST_NAME.fullmatch(name):
        return None
    if type(records) is not list or not 1 <= len(records) <= MAX_RECORDS:
        return None
    entries: list[PutEntry] = []
    append = entries.append
    for record in records:
        if type(record) is not dict:
            return None
        data, key, explicit = record.get("Data"), record.get("PartitionKey"), record.get("ExplicitHashKey")
        if type(data) is not str or type(key) is not str or not 1 <= len(key) <= 256:
            return None
        if explicit is not None and (type(explicit) is not str or not _FAST_HASH_KEY.fullmatch(explicit)):
            return None
        append((data, key, explicit))
    return PutRecordsCall(StreamRef.model_construct(StreamName=name, StreamARN=None), entries)
