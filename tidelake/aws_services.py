"""The AWS services `tidelake serve` answers beside Athena, built from the settings and wired here.

    with aws_services(settings) as services:
        app = aws_endpoint(query_app, services.tables, token, hosts)

Each role owns its actions; this module only builds them and names their target prefixes:

| service | `X-Amz-Target` prefix | role | state under `runtime.state_dir` |
|---|---|---|---|
| Kinesis Data Streams | `Kinesis_20131202` | `producers.kinesis_api` | `kinesis/` (stream registry) |
| Firehose | `Firehose_20150804` | `sinks.firehose_api` | `firehose/` (stream definitions) |
| Glue Data Catalog | `AWSGlue` | `queries.glue_api` | `glue/` (created databases and tables) |

Athena (`AmazonAthena`) is answered by the query app itself (`queries.api`), and S3, a REST API,
by `queries.s3_api` in front of the endpoint. Firehose's delivery streams run inside serve
from `start()` until `close()`, which lets each flush and commit what it holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from core.aws_json import ActionTable
from core.settings import Settings
from producers.kinesis_api import TARGET_PREFIX as KINESIS_PREFIX
from producers.kinesis_api import KinesisService, kinesis_actions
from producers.kinesis_quotas import ShardQuotas
from queries.athena_ddl import AthenaDdl
from queries.engine import Engine
from queries.glue_api import TARGET_PREFIX as GLUE_PREFIX
from queries.glue_api import GlueService, glue_actions
from queries.service import QueryService
from sinks.firehose_api import TARGET_PREFIX as FIREHOSE_PREFIX
from sinks.firehose_api import FirehoseService, firehose_actions


@dataclass
class AwsServices:
    """The services of one `tidelake serve` and their action tables by target prefix."""

    kinesis: KinesisService
    firehose: FirehoseService
    glue: GlueService
    quotas: ShardQuotas | None = None
    tables: dict[str, ActionTable] = field(default_factory=dict)

    def describe(self) -> list[str]:
        """One line per service for serve's banner."""
        quotas = self.quotas.describe() if self.quotas else "off (--shard-quotas enforces AWS's)"
        return [
            f"Kinesis Data Streams ({KINESIS_PREFIX}): shard quotas {quotas}",
            f"Firehose ({FIREHOSE_PREFIX}): delivery streams made through the API run inside serve",
            f"Glue Data Catalog ({GLUE_PREFIX}): database default is the lake",
        ]


def connect_athena(glue: GlueService, engine: Engine, service: QueryService) -> None:
    """Athena reads and writes Glue's catalog: the engine makes Glue's own tables queryable by name
    (`Engine.attach_glue`) and StartQueryExecution runs DDL against Glue (`queries.athena_ddl`)."""
    engine.attach_glue(glue.stored_sources)
    service.ddl = AthenaDdl(glue).run


@contextlib.contextmanager
def aws_services(settings: Settings, *, shard_quotas: bool = False) -> Iterator[AwsServices]:
    """Build and start every service for `settings`; close them all when the block ends (Firehose's
    streams flush and commit first). Kinesis connects to Kafka on first use, so serve starts
    without Kafka; Firehose's streams retry until it answers."""
    quotas = ShardQuotas.aws_defaults() if shard_quotas else None
    kinesis = KinesisService.from_settings(settings, quotas=quotas)
    firehose = FirehoseService.from_settings(settings)
    glue = GlueService.from_settings(settings)
    services = AwsServices(kinesis, firehose, glue, quotas)
    services.tables = {
        KINESIS_PREFIX: kinesis_actions(kinesis),
        FIREHOSE_PREFIX: firehose_actions(firehose),
        GLUE_PREFIX: glue_actions(glue),
    }
    try:
        firehose.start()
        yield services
    finally:
        firehose.close()  # every delivery stream flushes what it holds and commits
        kinesis.close()
        glue.close()
