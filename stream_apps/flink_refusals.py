"""What Flink SQL cannot express: each refusal's exact message (docs/flink.md, "What Flink SQL
cannot express", lists them; tests/unit/test_flink_sql.py asserts them)."""

from __future__ import annotations

from core.errors import ConfigError

DOCS = 'docs/flink.md, "What Flink SQL cannot express"'


class FlinkUnsupported(ConfigError):
    """A construct Flink SQL cannot express. The message names the construct, says what differs,
    and points at docs/flink.md ("What Flink SQL cannot express")."""


def refuse(app: str, construct: str, why: str) -> FlinkUnsupported:
    """`app 'x': <construct> cannot run on Flink SQL: <why> (docs/flink.md, ...)`."""
    return FlinkUnsupported(f"app {app!r}: {construct} cannot run on Flink SQL: {why} ({DOCS})")


STAGGER = (
    "Flink has no stagger window (one that opens at a key's first event and lasts a fixed time); "
    "its SESSION window closes after a gap of inactivity instead, and its TUMBLE windows are aligned "
    "to the epoch, so either would give other windows"
)
ANOMALY = (
    "Flink SQL has no RANDOM_CUT_FOREST (nor any anomaly-score function); run the app on tidelake's "
    "own runtimes, or compile only its per-minute count (window = tumbling:60s, aggregates = [count])"
)
EMIT_CHANGES = (
    "Flink SQL's window aggregations emit one final row per window, never the updated rows of a "
    'window still open; use emit = "final"'
)
SLIDING_TOP = "Flink SQL has no Top-N over an OVER window; use a tumbling or hopping window"
SUB_MILLISECOND = "Flink's event time (a TIMESTAMP(3) rowtime) counts whole milliseconds"


def sub_millisecond(what: str, spelling: str) -> str:
    return f"{what} {spelling} is not a whole number of milliseconds: {SUB_MILLISECOND}"


TWO_TOPS = (
    "each top:N:F is a Window Top-N joined back to the window's row, and the compiler joins one; "
    "split the app in two (one top:N:F each)"
)
KDA_SHAPE = (
    "the compiler translates KDA SQL programs of one tumbling-window pump (GROUP BY STEP(ROWTIME BY "
    "INTERVAL ...) or FLOOR(ROWTIME TO unit) and keys) from SOURCE_SQL_STREAM_001 into the output stream, "
    "with COUNT, SUM, MIN, MAX, AVG, WHERE, CASE, IS NULL, NOT, AND, OR, comparisons and + - *; "
    "write the app as a TOML spec, or run it on tidelake's own runtimes"
)
