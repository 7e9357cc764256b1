"""App specs: a stream app is declared (source, key, time field, window, aggregates, filters, emit
mode, sink), never hand-coded. A spec is a TOML file (see stream_apps/specs/) or the same fields
from `tidelake stream run` flags.

Conditions (`filters`, and `derive` for computed 0/1 fields) are `FIELD OP VALUE` with OP one of
`= != < <= > >=` and VALUE in JSON (`false`, `500`, `"/index"`); a missing field fails the test,
as NULL does in SQL.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.events import EVENT_TIME_FIELD
from core.toml_files import read_toml
from core.topics import CLICKSTREAM_EVENTS, analytics_topic
from stream_apps.aggregates import Aggregate, parse_aggregate
from stream_apps.durations import format_duration, parse_duration_us
from stream_apps.windows import WindowSpec, parse_window

EMIT_MODES = ("final", "changes")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|<=|>=|=|<|>)\s*(.+?)\s*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Condition:
    """`FIELD OP VALUE`, tested against one event dict."""

    field: str
    op: str
    value: Any

    def test(self, event: dict[str, Any]) -> bool:
        found = event.get(self.field)
        if found is None:
            return False
        try:
            return _OPS[self.op](found, self.value)
        except TypeError:
            return False

    @property
    def spelling(self) -> str:
        return f"{self.field} {self.op} {json.dumps(self.value)}"


def parse_condition(text: str, what: str = "filter") -> Condition:
    match = _CONDITION.match(str(text))
    if not match:
        msg = f"{what} {text!r}: write FIELD OP VALUE, e.g. is_bot = false or status >= 500"
        raise ConfigError(msg)
    name, op, raw = match.groups()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw.strip("'")
    return Condition(name, op, value)


@dataclass(frozen=True)
class AppSpec:
    """Everything that defines one stream app; the app id (consumer group, state folder) is its name."""

    name: str
    window: WindowSpec
    aggregates: tuple[Aggregate, ...]
    source: str = CLICKSTREAM_EVENTS
    key_field: str | None = None
    time_field: str = EVENT_TIME_FIELD
    filters: tuple[Condition, ...] = ()
    derive: tuple[tuple[str, Condition], ...] = ()
    allowed_lateness_us: int = 0
    idle_timeout_us: int = 10_000_000
    emit: str = "final"
    sink_topic: str = ""
    anomaly: dict[str, Any] = field(default_factory=dict)
    kda_sql: str = ""
    #: A compiled KDA SQL program (stream_apps/kda_sql/program.py) that computes the key and the
    #: aggregates' arguments of each event and shapes the output rows; None for TOML specs.
    program: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            msg = f"app name {self.name!r}: use lower-case letters, digits, '.', '_' and '-'"
            raise ConfigError(msg)
        if not self.aggregates:
            msg = f"app {self.name!r}: give at least one aggregate (e.g. --agg count)"
            raise ConfigError(msg)
        if self.emit not in EMIT_MODES:
            msg = f"app {self.name!r}: emit {self.emit!r} is unknown; use final or changes"
            raise ConfigError(msg)
        names = [a.output_name for a in self.aggregates]
        if len(set(names)) != len(names) or (self.key_field and self.key_field in names):
            msg = f"app {self.name!r}: output fields {names} repeat or clash with the key {self.key_field!r}"
            raise ConfigError(msg)
        if not self.sink_topic:
            object.__setattr__(self, "sink_topic", analytics_topic(self.name))

    @property
    def fingerprint(self) -> str:
        """What state written by this app depends on; a restart with a different spec refuses old state."""
        parts = [
            self.source,
            str(self.key_field),
            self.time_field,
            self.window.spelling,
            *(a.spelling for a in self.aggregates),
            *(c.spelling for c in self.filters),
            *(f"{n}={c.spelling}" for n, c in self.derive),
            str(self.allowed_lateness_us),
        ]
        if self.program is not None:
            parts.append(self.program.fingerprint)
        return "|".join(parts)

    def describe(self) -> str:
        if self.program is not None:
            return f"KDA SQL ({self.window.spelling}) from {self.source} to {self.sink_topic}"
        key = self.key_field or "(all events)"
        aggs = ", ".join(a.spelling for a in self.aggregates)
        return f"{self.window.spelling} by {key} of {aggs} from {self.source} to {self.sink_topic}"


def _as_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    msg = f"{what} must be a string or a list of strings, got {value!r}"
    raise ConfigError(msg)


def spec_from_mapping(data: dict[str, Any], where: str = "spec") -> AppSpec:
    """Build a spec from TOML-shaped data (also what the CLI flags produce)."""
    known = {
        "name", "source", "key_field", "time_field", "window", "aggregates", "filters", "derive",
        "allowed_lateness", "idle_timeout", "emit", "sink_topic", "anomaly", "kda_sql",
    }  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        msg = f"{where}: unknown field(s) {unknown}; known fields are {sorted(known)}"
        raise ConfigError(msg)
    for required in ("name", "window", "aggregates"):
        if not data.get(required):
            msg = f"{where}: field {required!r} is required"
            raise ConfigError(msg)
    derive = data.get("derive") or {}
    if not isinstance(derive, dict):
        msg = f'{where}: derive must be a table of NAME = "FIELD OP VALUE"'
        raise ConfigError(msg)
    return AppSpec(
        name=str(data["name"]),
        window=parse_window(data["window"]),
        aggregates=tuple(parse_aggregate(a) for a in _as_list(data["aggregates"], f"{where}: aggregates")),
        source=str(data.get("source") or CLICKSTREAM_EVENTS),
        key_field=data.get("key_field") or None,
        time_field=str(data.get("time_field") or EVENT_TIME_FIELD),
        filters=tuple(parse_condition(c) for c in _as_list(data.get("filters"), f"{where}: filters")),
        derive=tuple((str(n), parse_condition(c, "derive")) for n, c in derive.items()),
        allowed_lateness_us=(
            parse_duration_us(data["allowed_lateness"], "allowed_lateness")
            if data.get("allowed_lateness")
            else 0
        ),
        idle_timeout_us=parse_duration_us(data.get("idle_timeout") or "10s", "idle_timeout"),
        emit=str(data.get("emit") or "final"),
        sink_topic=str(data.get("sink_topic") or ""),
        anomaly=dict(data.get("anomaly") or {}),
        kda_sql=str(data.get("kda_sql") or ""),
    )


def load_spec(path: Path) -> AppSpec:
    """Read a TOML spec file; ConfigError says which file and what is wrong."""
    data = read_toml(path, "stream-app spec", "`tidelake stream list` shows the shipped apps")
    return spec_from_mapping(data, str(path))


def spec_to_mapping(spec: AppSpec) -> dict[str, Any]:
    """The TOML-shaped form of a spec (for `stream list --json` and worker subprocesses)."""
    data: dict[str, Any] = {
        "name": spec.name,
        "source": spec.source,
        "time_field": spec.time_field,
        "window": spec.window.spelling,
        "aggregates": [a.spelling for a in spec.aggregates],
        "filters": [c.spelling for c in spec.filters],
        "derive": {n: c.spelling for n, c in spec.derive},
        "idle_timeout": format_duration(spec.idle_timeout_us),
        "emit": spec.emit,
        "sink_topic": spec.sink_topic,
    }
    if spec.key_field:
        data["key_field"] = spec.key_field
    if spec.allowed_lateness_us:
        data["allowed_lateness"] = format_duration(spec.allowed_lateness_us)
    if spec.anomaly:
        data["anomaly"] = dict(spec.anomaly)
    return data
