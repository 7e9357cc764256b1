"""Fuzz the REST view from its own OpenAPI document, and each Athena JSON action from its request
model: no input makes the server fail (no 5xx)."""

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel
from schemathesis import GenerationMode

from queries.api import LOOPBACK_HOSTS, create_app
from queries.athena import REQUESTS
from queries.engine import Engine, Limits
from queries.results import ResultStore
from queries.service import QueryService
from tests.unit.queries_lake import event, write_events


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    root = tmp_path_factory.mktemp("fuzz")
    write_events(root / "lake", [event("2026-11-23T07:00:00", "v1", "/a")])
    with Engine(root / "lake", Limits(timeout_s=5), sessions=2) as engine:
        service = QueryService(engine, ResultStore(root / "results"), 2)
        try:
            # schemathesis calls an ASGI app as Starlette's test client does, with Host: testserver
            hosts = [*LOOPBACK_HOSTS, "testserver"]
            yield create_app(service, pipeline=lambda: {"events_in": 0, "topics": []}, allowed_hosts=hosts)
        finally:
            service.close()


@pytest.fixture(scope="module")
def api_schema(api_app: FastAPI):
    return schemathesis.openapi.from_asgi("/openapi.json", api_app)


def test_rest_api_never_answers_with_a_server_error(api_schema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert (
        len(operations) == 16
    )  # 12 of the query API + tables, library, named runs and pipeline for the console
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case) -> None:
            response = case.call()
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
            )

        no_server_error()


def _athena_document(model: type[BaseModel]) -> dict:
    """A one-operation OpenAPI document for an Athena action: POST / with the model as its body."""
    body = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components = body.pop("$defs", {})
    operation = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": "the action's answer"}, "400": {"description": "AWS error"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": model.__name__, "version": "1"},
        "paths": {"/": {"post": operation}},
        "components": {"schemas": components},
    }


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_athena_actions_never_answer_with_a_server_error(api_app: FastAPI, action: str) -> None:
    """Bodies from each action's own model (botocore's limits), valid and invalid: never a 5xx."""
    schema = schemathesis.openapi.from_dict(_athena_document(REQUESTS[action]))
    schema.app = api_app
    (operation,) = [result.ok() for result in schema.get_all_operations()]
    headers = {"X-Amz-Target": f"AmazonAthena.{action}", "Content-Type": "application/x-amz-json-1.1"}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(mode, headers=headers))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case) -> None:
            response = case.call()
            assert response.status_code in (200, 400), (
                f"{action} {case.body!r} -> {response.status_code}: {response.text}"
            )
            if response.status_code == 400:
                assert set(response.json()) == {"__type", "Message", "message"}

        no_server_error()
