"""Delivery streams (the Firehose part): Kafka topics -> buffered, partitioned, exactly-once Parquet
in the lake.

- `DeliveryStream(config, settings).run(...)`: one delivery stream, from Python without the CLI;
  its config is a `DeliveryStreamConfig` (`parse_config` of a mapping, `load_config_file` of a
  TOML file, `load_shipped` of a shipped name, `shipped_names()`), its result a `SinkSummary`;
- `BackgroundCompactor`: merges a closed hour's small files in a thread.

Public surface (`__all__`, guarded by tests/unit/test_exported_members.py). Names resolve on first
use (PEP 562 `__getattr__`): `import sinks` imports neither kafka-python nor pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy_names import lazy_names

if TYPE_CHECKING:
    from sinks.compactor import BackgroundCompactor
    from sinks.config import (
        DeliveryStreamConfig,
        ParquetOptions,
        load_config_file,
        load_shipped,
        parse_config,
        shipped_names,
    )
    from sinks.metrics import SinkSummary
    from sinks.stream import DeliveryStream

#: Each public name and the module that defines it.
_SOURCES = {
    "BackgroundCompactor": "sinks.compactor",
    "DeliveryStream": "sinks.stream",
    "DeliveryStreamConfig": "sinks.config",
    "ParquetOptions": "sinks.config",
    "SinkSummary": "sinks.metrics",
    "load_config_file": "sinks.config",
    "load_shipped": "sinks.config",
    "parse_config": "sinks.config",
    "shipped_names": "sinks.config",
}

__all__ = [
    "BackgroundCompactor",
    "DeliveryStream",
    "DeliveryStreamConfig",
    "ParquetOptions",
    "SinkSummary",
    "load_config_file",
    "load_shipped",
    "parse_config",
    "shipped_names",
]

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, __all__)
