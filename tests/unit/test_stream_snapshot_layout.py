"""A snapshot written before stream_apps/engine.py was split (issue 19) still resumes its app.

A pickle names each class by its module path: `stream_apps.engine.Outbox`, `.Counters` and
`.OpenWindow` now live in stream_apps/outbox.py and stream_apps/window_state.py, and
stream_apps/checkpoint.py's `MOVED_CLASSES` maps the old paths. `OLD_SNAPSHOT` is the real thing:
the bytes the engine at commit d178cc3 (one module) pickled, as `StateFolder.save_pending` does
(protocol 5), after `process(0, records[:16], 1.0)` and `advance(1.0)` of `SPEC` over `_records()`;
zlib-compressed and base64-encoded here.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib

from stream_apps.checkpoint import StateFolder
from stream_apps.engine import WindowEngine
from stream_apps.outbox import Counters, Outbox
from stream_apps.records import Record
from stream_apps.spec import spec_from_mapping
from stream_apps.window_state import OpenWindow

SPEC = spec_from_mapping(
    {
        "name": "sessions",
        "window": "session:30s",
        "key_field": "visitor_id",
        "aggregates": ["count", "top:2:page"],
    }
)
OLD_SNAPSHOT = (
    "eNq1VE1r1EAYzrKfbbXUKuilLUSQCu2a7BYWcxJX6CFgDwqCpYRsdnYzdDcTM5PtSrOwgngocxHH/+HHH+jF3+JV8OrBdybd"
    "bKRWe+mQQ95nnnnmfd6Zeaflj6dlTY2J2ORV0utRxKiYCFuzVyi/HroRwwyTwBm6YwWfVB/97H3RpmXKa4A5FKFAZCBf9gaE"
    "oq7D/IjEfT83U+7hMeqCBi+RENbIDQuu4KuURcgdOm4Y0joK+jhAgi/uAeUFDrrkSHwQ998odpkySAcktbf3PkvJIgq6EE53"
    "f6gdSgOX5qdLrudRcSA27QLsWnwQGsIuUBR3eKEj/OVU1b9xUj199l4u8Fch29v7X+XvzTl6K6dgZgreHwrTu79mCtr3bzOF"
    "GZpXaJwpxLwKFrs46MsMszLZK7IogDyV5KZATLi8SgdYMUFiURXY8ZEbStpmZt9e85cy70xJpl7sdf9O5kZNnKVob/jrWZJM"
    "IF6k6JWwN3iFxKxDxsK/xit76W92CKWIHKmittfcpGGYD7cNc7vReG4YlvrqhhovRfvTsT7CFDMSObirW7qrb+lH6kgddZAA"
    "/WP9nAxVOk81rWYzR/VIHIDgzpbOSOg0dGv/WA/dPoKFcOxzgjnZyk2Y+YmDiXgn2mudv5hqXWyqcxlTrUub2jGuxJR33pS5"
    "c7Ep7xKm5uv/b6p1BaaQfO4MwU3kFRRFJJKXEh5mTdEQhHB7a+1ZkN3fBTRCAaMODgS8tVqaOfQlGfTwAMgy0PzHtsYX5A4O"
    "CQavJfIEkOWUTx3ZwiSxMofSzifsIq9FihIzCCCl6ggygB4KL58v9eAdoyiMcMAE3/UG2DtMG2A9TSyZn0SiEIfhIUooolLC"
    "aho0UQ4TKJ/VsGSFEkPE9d8mV+1X"
)


def _records() -> list[Record]:
    """30 events of three visitors, 7 s apart, with a 60 s gap before the 13th: sessions of 30 s."""
    start = dt.datetime(2019, 1, 22, tzinfo=dt.UTC)
    records = []
    for i in range(30):
        t = start + dt.timedelta(seconds=7 * i + (60 if i >= 12 else 0))
        event = {"visitor_id": "abc"[i % 3], "page": f"/p{i % 4}", "event_time": f"{t:%Y-%m-%dT%H:%M:%S.%fZ}"}
        records.append(Record(i, event["visitor_id"].encode(), json.dumps(event).encode()))
    return records


def test_the_old_snapshot_names_the_old_module_paths() -> None:
    """The fixture is what the test claims: without the mapping its classes are not found."""
    data = zlib.decompress(base64.b64decode(OLD_SNAPSHOT))
    for old in (b"stream_apps.engine", b"Outbox", b"Counters", b"OpenWindow"):
        assert old in data
    assert b"stream_apps.outbox" not in data


def test_a_snapshot_of_the_engine_before_its_split_resumes_as_an_uninterrupted_run(tmp_path) -> None:
    folder = StateFolder(tmp_path, SPEC.name)
    folder.path.mkdir(parents=True)
    folder.file(1, ".pickle").write_bytes(zlib.decompress(base64.b64decode(OLD_SNAPSHOT)))
    state, next_generation = folder.load(SPEC.fingerprint, committed=1)
    assert state is not None and next_generation == 2
    assert type(state["outbox"]) is Outbox and type(state["counters"]) is Counters
    assert {type(window) for window in state["open"].values()} == {OpenWindow}
    assert (state["offsets"], state["counters"].events_in, len(state["outbox"].rows)) == ({0: 16}, 16, 3)

    records = _records()
    whole = WindowEngine(SPEC, [0], now_s=0.0)
    whole.process(0, records, 1.0)
    whole.advance(1_000.0)
    restored = WindowEngine(SPEC, [0], now_s=50.0)
    restored.restore(state)
    restored.process(0, records[restored.offsets[0] :], 51.0)
    restored.advance(1_000.0)
    assert restored.outbox.rows == whole.outbox.rows
    assert restored.counters == whole.counters
    # and what the split engine writes now loads the same way
    folder.save_pending(2, restored.snapshot())
    folder.confirm(2)
    again, _ = folder.load(SPEC.fingerprint, committed=2)
    assert again is not None and again["counters"] == whole.counters
