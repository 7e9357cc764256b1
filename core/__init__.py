"""The kernel every role imports: settings, the error hierarchy and the topic catalogue.

Public surface (`__all__`, guarded by tests/unit/test_exported_members.py). Names resolve on first
use (PEP 562 `__getattr__`), so `import core` does no work and loads neither pydantic nor Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy_names import lazy_names

if TYPE_CHECKING:
    from core.errors import (
        BrokerUnavailable,
        ConfigError,
        QueryError,
        RecordError,
        SchemaError,
        SinkWriteError,
        TableNotFound,
        TidelakeError,
    )
    from core.settings import Settings, load_settings
    from core.topics import CLICKSTREAM_EVENTS, LATE_EVENTS, TopicSpec, dlq_topic, stream_app_group

#: Each public name and the module that defines it.
_SOURCES = {
    "BrokerUnavailable": "core.errors",
    "CLICKSTREAM_EVENTS": "core.topics",
    "ConfigError": "core.errors",
    "LATE_EVENTS": "core.topics",
    "QueryError": "core.errors",
    "RecordError": "core.errors",
    "SchemaError": "core.errors",
    "Settings": "core.settings",
    "SinkWriteError": "core.errors",
    "TableNotFound": "core.errors",
    "TidelakeError": "core.errors",
    "TopicSpec": "core.topics",
    "dlq_topic": "core.topics",
    "load_settings": "core.settings",
    "stream_app_group": "core.topics",
}

__all__ = [
    "CLICKSTREAM_EVENTS",
    "LATE_EVENTS",
    "BrokerUnavailable",
    "ConfigError",
    "QueryError",
    "RecordError",
    "SchemaError",
    "Settings",
    "SinkWriteError",
    "TableNotFound",
    "TidelakeError",
    "TopicSpec",
    "dlq_topic",
    "load_settings",
    "stream_app_group",
]

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, __all__)
