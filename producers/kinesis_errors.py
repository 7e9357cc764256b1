"""The Kinesis errors every module of the API raises, worded as AWS words them, and the account id
they name (tidelake has one account: twelve zeros)."""

from __future__ import annotations

from core.admin import START_HINT
from core.aws_json import AwsError

ACCOUNT_ID = "000000000000"
#: A request that failed on tidelake's side (botocore: InternalFailureException, retried by the SDKs);
#: a single record of PutRecords that failed says `InternalFailure`, as AWS's does.
INTERNAL_ERROR = "InternalFailureException"


def not_found(stream: str) -> AwsError:
    return AwsError("ResourceNotFoundException", f"Stream {stream} under account {ACCOUNT_ID} not found.")


def invalid(message: str) -> AwsError:
    return AwsError("InvalidArgumentException", message)


def internal(message: str) -> AwsError:
    """HTTP 500 InternalFailureException: the SDKs retry it."""
    return AwsError(INTERNAL_ERROR, message, 500)


def unavailable(bootstrap: str, exc: BaseException) -> AwsError:
    """No broker answered: InternalFailure that says how to start one."""
    return internal(f"no Kafka broker answers at {bootstrap} ({exc.__class__.__name__}); {START_HINT}")
