"""tidelake's pytest plugin, loaded through the `pytest11` entry point (`pip install tidelake[testing]`).

Fixtures (docs/testing.md):

| fixture | scope | gives |
|---|---|---|
| `tidelake_stack` | session | a running `TidelakeStack`: `endpoint_url`, `bootstrap_servers`, `lake`, `region`, `flush`, `wait_delivered`, `wait_windows_closed`, `run_app`, `reset` |
| `kinesis_client`, `firehose_client`, `athena_client`, `s3_client`, `glue_client` | session | boto3 clients pointed at the stack |
| `tidelake_reset` | function | an empty stack before the test (stream apps stopped; streams, lake, catalog and saved queries gone) |
| `tidelake_env` | function | AWS_ENDPOINT_URL, region and credentials set, so code that makes its own clients reaches the stack |

ini options: `tidelake_firehose_hook_modules` (modules a Firehose transform's LambdaArn may name,
importable from the rootdir). pytest loads this module in every session, so it imports nothing
heavy: the stack is built on first use of a fixture, never when the fixtures are unused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tidelake.testing.stack import TidelakeStack


#: kafka-python 3.0 (the stack's Kafka client) loads its protocol schemas with importlib.resources'
#: read_text/open_text, deprecated since Python 3.11: ignored, so that a session with
#: `filterwarnings = error` can use the fixtures (tidelake's own suite ignores the same).
KAFKA_PYTHON_WARNING = r"ignore:(read|open)_text is deprecated:DeprecationWarning"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", KAFKA_PYTHON_WARNING)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "tidelake_firehose_hook_modules",
        "Modules (importable from the rootdir) whose functions Firehose transform hooks may name "
        "as LambdaArn 'module:function' (tidelake serve --firehose-hook-module).",
        type="linelist",
        default=[],
    )


@pytest.fixture(scope="session")
def tidelake_stack(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[TidelakeStack]:
    """A running tidelake stack (Kafka + `tidelake serve`) for the whole session; stopped at its end."""
    from tidelake.testing.stack import start_stack

    hooks = [str(m) for m in pytestconfig.getini("tidelake_firehose_hook_modules")]
    with start_stack(
        tmp_path_factory.mktemp("tidelake"), hook_modules=hooks, python_path=[pytestconfig.rootpath]
    ) as stack:
        yield stack


@pytest.fixture
def tidelake_reset(tidelake_stack: TidelakeStack) -> TidelakeStack:
    """The stack, emptied before the test (see `TidelakeStack.reset`)."""
    tidelake_stack.reset()
    return tidelake_stack


@pytest.fixture
def tidelake_env(tidelake_stack: TidelakeStack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS variables pointing at the stack, set for the test (`TidelakeStack.env`)."""
    env = tidelake_stack.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="session")
def kinesis_client(tidelake_stack: TidelakeStack) -> Any:
    """boto3 Kinesis Data Streams client pointed at the stack."""
    return tidelake_stack.client("kinesis")


@pytest.fixture(scope="session")
def firehose_client(tidelake_stack: TidelakeStack) -> Any:
    """boto3 Firehose client pointed at the stack."""
    return tidelake_stack.client("firehose")


@pytest.fixture(scope="session")
def athena_client(tidelake_stack: TidelakeStack) -> Any:
    """boto3 Athena client pointed at the stack."""
    return tidelake_stack.client("athena")


@pytest.fixture(scope="session")
def s3_client(tidelake_stack: TidelakeStack) -> Any:
    """boto3 S3 client pointed at the stack (path-style: bucket `tidelake-lake` is the lake)."""
    return tidelake_stack.client("s3")


@pytest.fixture(scope="session")
def glue_client(tidelake_stack: TidelakeStack) -> Any:
    """boto3 Glue client pointed at the stack."""
    return tidelake_stack.client("glue")
