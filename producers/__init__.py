"""Producers: how events enter tidelake, like Kinesis Data Streams producers do on AWS.

- `Replayer(settings, ReplayOptions(...)).run()`: a file into a topic at its original pace
  (`Pace`), faster, at a fixed rate or at full speed -> `ReplaySummary`; `run(iter(generator))`
  publishes a seeded synthetic clickstream (`Generator`, `GeneratorOptions`) the same way;
- `Agent`: follows a growing log like the Kinesis Agent (tail -F, rotation, checkpoints);
- `StreamClient`: PutRecord / PutRecords with Kinesis' limits and result shapes (`ShardQuota`),
  and `put_records_with_retry`, which resends only the failed entries, like the Kinesis Agent.

Public surface (`__all__`, guarded by tests/unit/test_exported_members.py). Names resolve on first
use (PEP 562 `__getattr__`): `import producers` imports no Kafka client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy_names import lazy_names

if TYPE_CHECKING:
    from producers.agent import Agent
    from producers.generator import Generator, GeneratorOptions
    from producers.pacing import Pace
    from producers.put_api import ShardQuota, StreamClient, put_records_with_retry
    from producers.replay import Replayer, ReplayOptions, ReplaySummary

#: Each public name and the module that defines it.
_SOURCES = {
    "Agent": "producers.agent",
    "Generator": "producers.generator",
    "GeneratorOptions": "producers.generator",
    "Pace": "producers.pacing",
    "ReplayOptions": "producers.replay",
    "ReplaySummary": "producers.replay",
    "Replayer": "producers.replay",
    "ShardQuota": "producers.put_api",
    "StreamClient": "producers.put_api",
    "put_records_with_retry": "producers.put_api",
}

__all__ = [
    "Agent",
    "Generator",
    "GeneratorOptions",
    "Pace",
    "ReplayOptions",
    "ReplaySummary",
    "Replayer",
    "ShardQuota",
    "StreamClient",
    "put_records_with_retry",
]

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, __all__)
