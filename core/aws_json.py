"""AWS's JSON 1.1 protocol, declared once: the content type, the error shape and request parsing.

Every AWS action tidelake answers (Athena, Kinesis, Firehose) speaks it: `POST /` with
`X-Amz-Target: <Prefix>.<Action>` and a JSON body, answered with `application/x-amz-json-1.1`.
An error is an HTTP status (400 for the caller's mistakes) and the body

    {"__type": "ResourceNotFoundException", "message": "...", "Message": "..."}

botocore picks the exception class from `__type` (`client.exceptions.ResourceNotFoundException`)
and reads the text from `message` or `Message` (services differ; both are sent).

Request bodies are parsed by a pydantic model (`AwsModel`, strict: no "5" for 5) with AWS's
two answers for a bad body, as the services give them (botocore's service models declare the
constraints; the wording follows AWS's Coral framework):
- `SerializationException`: the body is not JSON, not one object, or a member has the wrong JSON
  type (a string where a number goes).
- `ValidationException`: the types are right but a constraint is not: `1 validation error
  detected: Value 'x' at 'records.1.member.partitionKey' failed to satisfy constraint: Member must
  have length less than or equal to 256` (member paths lower-camel, list items 1-based).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from core.errors import TidelakeError

#: The content type of every request and answer of the JSON 1.1 protocol.
AMZ_JSON_1_1 = "application/x-amz-json-1.1"

#: One role's actions: action name (the part after the X-Amz-Target prefix) -> handler of the raw
#: body, returning the answer as a JSON-ready dict or raising `AwsError`.
ActionTable = Mapping[str, Callable[[bytes], dict[str, Any]]]


class AwsError(TidelakeError):
    """An AWS error answer: `code` is the `__type` botocore maps to an exception class, `status`
    the HTTP status (400 for the caller's mistakes, 500 for `InternalFailure`)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.text = message
        self.status = status


def error_body(code: str, message: str) -> dict[str, str]:
    """The JSON of an error answer (both spellings of the message: Kinesis reads `message`,
    Athena `Message`)."""
    return {"__type": code, "Message": message, "message": message}


def error_response(error: AwsError) -> Response:
    """`error` as an HTTP answer botocore turns back into the right exception class."""
    return json_response(error_body(error.code, error.text), error.status)


#: The access key id in a SigV4 `Authorization` header (`Credential=<key id>/<date>/...`).
_SIGV4_KEY = re.compile(r"Credential=([^/,\s]+)/")


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether a request carries the server's API token: as `Bearer <token>`, or as the access key
    id of its SigV4 signature (boto3, the AWS CLI and PyAthena with `aws_access_key_id=<token>`).
    The signature itself is not checked, as AWS's local emulators do not."""
    given = authorization or ""
    signed = _SIGV4_KEY.search(given)
    return given.removeprefix("Bearer ").strip() == token or bool(signed and signed.group(1) == token)


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it passes `limit` bytes (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class AmzJsonResponse(Response):
    """Compact JSON with AWS's JSON 1.1 content type, encoded by orjson: a GetRecords answer of
    10,000 records (4.4 MB) takes 2-3 ms where `json.dumps` took 32-41 ms. orjson writes NaN and
    infinities as null (JSON has no spelling for them) and refuses integers past 64 bits; such a
    payload falls back to `json.dumps`, which writes those integers."""

    media_type = AMZ_JSON_1_1

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # orjson.JSONEncodeError is a TypeError: e.g. an int beyond 64 bits
            return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    """A JSON 1.1 answer (compact JSON, AWS's content type)."""
    return AmzJsonResponse(payload, status_code=status)


class AwsModel(BaseModel):
    """Base of request models: strict JSON types, members AWS does not define are ignored (newer
    SDKs send members older services do not know), field names as AWS spells them."""

    model_config = ConfigDict(strict=True, extra="ignore")


_Model = TypeVar("_Model", bound=BaseModel)

#: pydantic error types that mean "this JSON value has the wrong type" (AWS: SerializationException).
_TYPE_ERRORS = {
    "json_invalid",
    "json_type",
    "model_type",
    "model_attributes_type",
    "dict_type",
    "list_type",
    "string_type",
    "int_type",
    "int_from_float",
    "float_type",
    "bool_type",
    "bytes_type",
}


def parse_request(model: type[_Model], body: bytes) -> _Model:
    """The validated request, or `AwsError` 400: `SerializationException` for a body that is not
    one JSON object or a member of the wrong JSON type, `ValidationException` for a broken
    constraint (length, range, pattern, enum, a missing required member). An empty body is `{}`."""
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    wrong_type = next((e for e in errors if e["type"] in _TYPE_ERRORS), None)
    if wrong_type is not None:
        where = _member_path(wrong_type["loc"])
        if wrong_type["type"] in ("json_invalid", "json_type") or not where:
            raise AwsError("SerializationException", f"the body is not one JSON object ({wrong_type['msg']})")
        raise AwsError("SerializationException", f"'{where}': {wrong_type['msg']}")
    problems = [_constraint(e) for e in errors]
    count = len(problems)
    shown = "; ".join(problems[:10])
    raise AwsError(
        "ValidationException", f"{count} validation error{'s' if count > 1 else ''} detected: {shown}"
    )


def constraint_error(where: str, value: object, constraint: str) -> AwsError:
    """A one-problem `ValidationException` worded as AWS words it, for checks a model cannot make
    (a blob's decoded length): `constraint_error("records.1.member.data", None, "Member must have
    length less than or equal to 1048576")`."""
    return AwsError(
        "ValidationException",
        f"1 validation error detected: {_value(value) if value is not None else 'Value '}at '{where}' "
        f"failed to satisfy constraint: {constraint}",
    )


def decode_blob(text: str, where: str) -> bytes:
    """A blob member's bytes (JSON 1.1 sends blobs as standard base64), or SerializationException."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AwsError("SerializationException", f"'{where}' is not valid base64: {exc}") from exc


def encode_blob(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _member_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"{part + 1}.member")
        else:
            parts.append(part[:1].lower() + part[1:])
    return ".".join(parts)


def _value(value: object) -> str:
    if value is None:
        return "Value null "
    if isinstance(value, str | int | float):
        return f"Value '{value}' "
    return "Value "


def _constraint(error: Any) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    where = _member_path(error["loc"])
    if kind == "missing":
        return f"Value null at '{where}' failed to satisfy constraint: Member must not be null"
    if kind in ("string_too_short", "too_short"):
        rule = f"Member must have length greater than or equal to {ctx.get('min_length')}"
    elif kind in ("string_too_long", "too_long"):
        rule = f"Member must have length less than or equal to {ctx.get('max_length')}"
    elif kind in ("greater_than_equal", "greater_than"):
        rule = f"Member must have value greater than or equal to {ctx.get('ge', ctx.get('gt'))}"
    elif kind in ("less_than_equal", "less_than"):
        rule = f"Member must have value less than or equal to {ctx.get('le', ctx.get('lt'))}"
    elif kind == "string_pattern_mismatch":
        rule = f"Member must satisfy regular expression pattern: {str(ctx.get('pattern', '')).strip('^$')}"
    elif kind in ("literal_error", "enum"):
        rule = f"Member must satisfy enum value set: [{ctx.get('expected', '')}]"
    else:
        rule = str(error["msg"])
    value = error.get("input")
    shown = value if isinstance(value, str | int | float) and kind != "too_long" else None
    prefix = _value(shown) if shown is not None else "Value "
    return f"{prefix}at '{where}' failed to satisfy constraint: {rule}"
