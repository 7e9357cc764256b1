"""S3's REST-XML protocol, declared once: the error shape, XML answers and request bodies.

S3 answers in XML in the namespace `http://s3.amazonaws.com/doc/2006-03-01/` (botocore's S3
model, `metadata.xmlNamespace`). An error is an HTTP status and the body

    <Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>
    <Key>a/b</Key><RequestId>...</RequestId></Error>

botocore raises `ClientError` whose `response["Error"]["Code"]` is `Code` (and, for codes the model
declares as shapes, `client.exceptions.NoSuchKey` ...). A HEAD request's error has no body: botocore
then takes the code from the status (404 -> "404"), as on AWS.

The codes and statuses are those of AWS's "Error responses" page of the S3 API reference
(https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from xml.etree import ElementTree as ET

from starlette.responses import Response

from core.errors import TidelakeError

#: The namespace of every S3 answer.
S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_TYPE = "application/xml"
#: The largest XML request body read (DeleteObjects: 1,000 keys of up to 1,024 bytes, with markup).
MAX_XML_BODY_BYTES = 2 * 1024 * 1024


class S3Error(TidelakeError):
    """An S3 error answer: `code` (`NoSuchKey`, `AccessDenied` ...), its HTTP `status`, and the
    resource it concerns (`key`, `bucket`, `upload_id`), echoed as S3 echoes them."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        key: str | None = None,
        bucket: str | None = None,
        upload_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.text = message
        self.status = status
        self.key = key
        self.bucket = bucket
        self.upload_id = upload_id


def request_id() -> str:
    """A request id in S3's shape (16 upper-case hex digits)."""
    return secrets.token_hex(8).upper()


def error_response(error: S3Error, *, head: bool = False) -> Response:
    """`error` as S3 sends it: the XML body (none for HEAD) and `x-amz-request-id`."""
    rid = request_id()
    headers = {"x-amz-request-id": rid}
    if head:
        return Response(status_code=error.status, headers=headers)
    root = ET.Element("Error")
    _text(root, "Code", error.code)
    _text(root, "Message", error.text)
    if error.key is not None:
        _text(root, "Key", error.key)
    if error.bucket is not None:
        _text(root, "BucketName", error.bucket)
    if error.upload_id is not None:
        _text(root, "UploadId", error.upload_id)
    _text(root, "RequestId", rid)
    return Response(_serialize(root), status_code=error.status, media_type=XML_TYPE, headers=headers)


def element(tag: str) -> ET.Element:
    """The root element of an answer, in S3's namespace."""
    return ET.Element(tag, xmlns=S3_NAMESPACE)


def child(parent: ET.Element, tag: str, text: str | int | bool | None = None) -> ET.Element:
    """A sub-element; `text` as S3 writes it (booleans `true`/`false`)."""
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = ("true" if text else "false") if isinstance(text, bool) else str(text)
    return node


def xml_response(root: ET.Element, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _serialize(root),
        status_code=status,
        media_type=XML_TYPE,
        headers={"x-amz-request-id": request_id(), **(headers or {})},
    )


def parse_body(body: bytes, root_tag: str) -> ET.Element:
    """A request's XML body whose root is `root_tag` (namespace optional), or `MalformedXML`.

    Python's expat parser does not expand external entities, and a DTD is refused outright, so a
    body cannot make the server read a file or expand a billion laughs."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed: DTDs are not accepted.")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise S3Error("MalformedXML", f"The XML you provided was not well-formed ({exc}).") from exc
    if local_name(root.tag) != root_tag:
        raise S3Error("MalformedXML", f"The XML you provided was not well-formed: expected <{root_tag}>.")
    return root


def local_name(tag: str) -> str:
    """`{namespace}Tag` -> `Tag`."""
    return tag.rpartition("}")[2]


def children(node: ET.Element, tag: str) -> Iterable[ET.Element]:
    return (c for c in node if local_name(c.tag) == tag)


def text_of(node: ET.Element, tag: str) -> str | None:
    found = next(iter(children(node, tag)), None)
    return None if found is None else (found.text or "")


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _serialize(root: ET.Element) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")).encode()
