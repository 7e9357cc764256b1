"""The one error hierarchy of tidelake.

    TidelakeError                      root; carries `retriable` and `exit_code`
    ├── ConfigError                    bad settings, flags or spec files (exit 2)
    ├── BrokerError                    the Kafka broker
    │   ├── BrokerUnavailable          nothing answers at the bootstrap address (retriable)
    │   ├── BrokerStartError           the local broker could not be started
    │   └── BrokerToolMissing          Java or Maven is missing or too old (exit 2)
    ├── RecordError                    one record cannot be parsed or converted (data, not a crash)
    │   └── SchemaError                a record's fields do not fit the declared schema
    ├── SinkWriteError                 the lake cannot be written (disk full, permissions) (retriable)
    └── QueryError                     a query failed in the engine
        ├── QueryRefused               the sandbox refuses the statement
        ├── QueryCancelled             stopped by the user, its time limit or a bytes-scanned cutoff
        └── TableNotFound              the statement names a table the catalog does not know

A bad *record* is data: it goes to a dead-letter topic or the lake's error prefix and the run goes
on. Only infrastructure errors stop a process. Entry points catch `TidelakeError`, print its message
on one line and exit with `exit_code`.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "BrokerStartError",
    "BrokerToolMissing",
    "BrokerUnavailable",
    "ConfigError",
    "QueryCancelled",
    "QueryError",
    "QueryRefused",
    "RecordError",
    "SchemaError",
    "SinkWriteError",
    "TableNotFound",
    "TidelakeError",
]


class TidelakeError(Exception):
    """Root of every error tidelake raises on purpose."""

    retriable: bool = False
    exit_code: int = 1

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retriable is not None:
            self.retriable = retriable

    def __str__(self) -> str:
        return self.message


class ConfigError(TidelakeError):
    """A setting, flag or spec is wrong; the message names it and says what would be right."""

    exit_code = 2


class BrokerError(TidelakeError):
    """Something about the Kafka broker."""


class BrokerUnavailable(BrokerError):
    """No broker answers at the bootstrap address; trying again later may work."""

    retriable = True


class BrokerStartError(BrokerError):
    """The local broker could not be started; the message carries the end of its log."""


class BrokerToolMissing(BrokerError):
    """Java 17+ or Maven, which the local broker needs, is missing."""

    exit_code = 2


class RecordError(TidelakeError):
    """One record cannot be processed. `position` is `topic[partition]@offset` or `file:line`."""

    def __init__(self, message: str, *, error_type: str = "processing-failed", position: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.position = position


class SchemaError(RecordError):
    """A record's fields do not match the declared schema."""

    def __init__(self, message: str, *, position: str = "") -> None:
        super().__init__(message, error_type="format-conversion-failed", position=position)


class SinkWriteError(TidelakeError):
    """The lake could not be written; nothing was committed, so the records will be delivered again."""

    retriable = True


class QueryError(TidelakeError):
    """The query engine failed on a statement."""


class QueryRefused(QueryError):
    """The sandbox does not allow this statement (read-only, confined to the lake)."""

    exit_code = 2


class QueryCancelled(QueryError):
    """The query was stopped before it finished: by the user, its time limit or a workgroup cutoff."""


class TableNotFound(QueryError):
    """The statement names a table that the catalog does not know."""

    exit_code = 2
