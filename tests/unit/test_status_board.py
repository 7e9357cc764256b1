import json
import os
from pathlib import Path

from core.status_board import StatusPublisher, read_board


def test_published_counters_are_read_back(tmp_path: Path) -> None:
    publisher = StatusPublisher(tmp_path, "sink", "clickstream-events")
    publisher.publish({"records_in": 10, "rows_written": 9}, force=True)
    (entry,) = read_board(tmp_path)
    assert (entry.kind, entry.name, entry.pid) == ("sink", "clickstream-events", os.getpid())
    assert entry.metrics == {"records_in": 10, "rows_written": 9}
    assert entry.alive is True


class FakeClock:
    """A monotonic clock that starts where a freshly booted machine's does: near zero."""

    def __init__(self, now: float = 0.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_publish_is_throttled_unless_forced(tmp_path: Path) -> None:
    clock = FakeClock()
    publisher = StatusPublisher(tmp_path, "stream", "page-views-1m", interval_s=3600, clock=clock)
    publisher.publish({"n": 1})
    publisher.publish({"n": 2})
    assert read_board(tmp_path)[0].metrics == {"n": 1}
    publisher.publish({"n": 3}, force=True)
    assert read_board(tmp_path)[0].metrics == {"n": 3}


def test_first_publish_writes_while_the_clock_is_near_zero(tmp_path: Path) -> None:
    """time.monotonic() counts from boot: a machine up for less than interval_s must still publish."""
    clock = FakeClock(0.0)
    publisher = StatusPublisher(tmp_path, "sink", "s", interval_s=3600, clock=clock)
    publisher.publish({"n": 1})
    assert read_board(tmp_path)[0].metrics == {"n": 1}


def test_publish_writes_again_once_the_interval_has_passed(tmp_path: Path) -> None:
    clock = FakeClock(5.0)
    publisher = StatusPublisher(tmp_path, "sink", "s", interval_s=2.0, clock=clock)
    publisher.publish({"n": 1})
    clock.now = 6.999
    publisher.publish({"n": 2})
    assert read_board(tmp_path)[0].metrics == {"n": 1}
    clock.now = 7.0
    publisher.publish({"n": 3})
    assert read_board(tmp_path)[0].metrics == {"n": 3}
    publisher.publish({"n": 4}, force=True)  # forcing restarts the interval
    clock.now = 8.5
    publisher.publish({"n": 5})
    assert read_board(tmp_path)[0].metrics == {"n": 4}


def test_a_change_of_state_is_published_at_once(tmp_path: Path) -> None:
    """A stream app entering its outage retry must not look idle and settled for a second."""
    publisher = StatusPublisher(tmp_path, "stream", "page-views-1m", interval_s=3600, clock=FakeClock())
    publisher.publish({"n": 1, "state": "running"})
    publisher.publish({"n": 2, "state": "running"})
    assert read_board(tmp_path)[0].metrics == {"n": 1, "state": "running"}
    publisher.publish({"n": 3, "state": "retrying"})
    assert read_board(tmp_path)[0].metrics == {"n": 3, "state": "retrying"}
    publisher.publish({"n": 4, "state": "retrying"})
    assert read_board(tmp_path)[0].metrics == {"n": 3, "state": "retrying"}


def test_entries_of_dead_processes_stay_visible_as_not_alive(tmp_path: Path) -> None:
    entry = {
        "kind": "sink",
        "name": "old",
        "pid": 2**22 + 12345,
        "started_at": 1.0,
        "updated_at": 2.0,
        "metrics": {},
    }
    (tmp_path / "sink.old.json").write_text(json.dumps(entry))
    (tmp_path / "sink.broken.json").write_text("{not json")
    (board,) = read_board(tmp_path)
    assert board.name == "old"
    assert board.alive is False


def test_names_cannot_escape_the_board(tmp_path: Path) -> None:
    publisher = StatusPublisher(tmp_path, "sink", "../../etc/passwd")
    publisher.publish({}, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["sink..._.._etc_passwd.json"]
