import json
import os
import threading
from pathlib import Path

import pytest

from core.status_board import (
    HEARTBEAT_S,
    PRUNE_AFTER_S,
    RECENT_S,
    STALE_AFTER_HEARTBEATS,
    ProcessStatus,
    StatusPublisher,
    read_board,
    this_host,
)
from tidelake.commands.options import console
from tidelake.commands.status import render
from tidelake.status import PipelineStatus, board_processes


def test_published_counters_are_read_back(tmp_path: Path) -> None:
    publisher = StatusPublisher(tmp_path, "sink", "clickstream-events")
    publisher.publish({"records_in": 10, "rows_written": 9}, force=True)
    (entry,) = read_board(tmp_path)
    assert (entry.kind, entry.name, entry.pid) == ("sink", "clickstream-events", os.getpid())
    assert entry.metrics == {"records_in": 10, "rows_written": 9}
    assert entry.alive_at(entry.updated_at) is True  # fresh, and its PID (this process) exists


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
    (board,) = read_board(tmp_path, now=100.0)
    assert board.name == "old"
    assert board.alive_at(100.0) is False  # its last heartbeat is long past


def test_names_cannot_escape_the_board(tmp_path: Path) -> None:
    publisher = StatusPublisher(tmp_path, "sink", "../../etc/passwd")
    publisher.publish({}, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["sink..._.._etc_passwd.json"]


# Liveness across containers: from the entry's heartbeat, the PID only where it means something.
T0 = 1_700_000_000.0  # a wall-clock second the tests choose
STALE_S = STALE_AFTER_HEARTBEATS * HEARTBEAT_S
OTHER_HOST = ("3f2a9c0d11e7", "pid:[4026532301]")  # another container: its own hostname and PID namespace


def entry(
    pid: int, updated_at: float = T0, host: tuple[str, str] = OTHER_HOST, **more: object
) -> ProcessStatus:
    return ProcessStatus("stream", "page-views-1m", pid, T0 - 60, updated_at, {}, host[0], host[1], **more)  # type: ignore[arg-type]


def dead_pid() -> int:
    return 2**22 + 12345  # above Linux's pid_max: no such process


def test_an_entry_from_another_container_is_alive_while_its_heartbeat_is_fresh() -> None:
    """PID 1 in a container means nothing here: the heartbeat alone decides."""
    for pid in (1, dead_pid()):
        process = entry(pid)
        assert process.alive_at(T0) is True
        assert process.alive_at(T0 + STALE_S) is True
        assert process.alive_at(T0 + STALE_S + 0.001) is False


def test_an_entry_from_this_host_also_needs_its_pid() -> None:
    here = this_host()
    assert entry(os.getpid(), host=here).alive_at(T0 + 1) is True
    assert entry(dead_pid(), host=here).alive_at(T0 + 1) is False  # died: stopped at once
    # a live PID does not make a stale entry alive (the PID may have been reused since)
    assert entry(os.getpid(), host=here).alive_at(T0 + STALE_S + 1) is False
    # same hostname, another PID namespace (a container with the host's name): the PID is not asked
    assert entry(dead_pid(), host=(here[0], "pid:[1]")).alive_at(T0 + 1) is True


def test_an_entry_marked_stopped_is_not_alive_even_when_fresh() -> None:
    assert entry(1, stopped_at=T0).alive_at(T0) is False


def test_recent_means_alive_or_stopped_within_ten_minutes() -> None:
    assert entry(1).recent_at(T0 + RECENT_S) is True
    assert entry(1).recent_at(T0 + RECENT_S + 1) is False
    assert entry(1, updated_at=T0 - 5, stopped_at=T0).recent_at(T0 + RECENT_S) is True
    assert entry(1, updated_at=T0 - 5, stopped_at=T0).recent_at(T0 + RECENT_S + 1) is False


class WallClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def quiet_publisher(tmp_path: Path, wall: WallClock, clock: FakeClock) -> StatusPublisher:
    """A publisher whose heartbeat the test calls itself (no thread)."""
    return StatusPublisher(tmp_path, "sink", "s", interval_s=3600, clock=clock, wall_clock=wall,
                           beat_in_background=False)  # fmt: skip


def test_the_entry_records_its_host_heartbeat_and_wall_clock_times(tmp_path: Path) -> None:
    wall, clock = WallClock(), FakeClock()
    publisher = quiet_publisher(tmp_path, wall, clock)
    wall.now = T0 + 5
    publisher.publish({"n": 1})
    (process,) = read_board(tmp_path, now=T0 + 5)
    assert (process.host, process.pid_namespace) == this_host()
    assert (process.started_at, process.updated_at, process.heartbeat_s) == (T0, T0 + 5, HEARTBEAT_S)
    assert process.stopped_at is None


def test_a_heartbeat_rewrites_the_entry_only_when_a_heartbeat_has_passed(tmp_path: Path) -> None:
    wall, clock = WallClock(), FakeClock()
    publisher = quiet_publisher(tmp_path, wall, clock)
    assert publisher.beat() is False  # nothing published yet: nothing to beat for
    publisher.publish({"n": 1})
    clock.now += HEARTBEAT_S - 0.01
    wall.now += HEARTBEAT_S - 0.01
    assert publisher.beat() is False
    clock.now += 0.01
    wall.now += 0.01
    assert publisher.beat() is True
    (process,) = read_board(tmp_path, now=wall.now)
    assert (process.updated_at, process.metrics) == (T0 + HEARTBEAT_S, {"n": 1})  # same counters, fresh


def test_close_marks_the_entry_stopped_and_ends_the_heartbeat(tmp_path: Path) -> None:
    wall, clock = WallClock(), FakeClock()
    with quiet_publisher(tmp_path, wall, clock) as publisher:
        publisher.publish({"n": 1})
        wall.now = T0 + 1
    (process,) = read_board(tmp_path, now=T0 + 1)
    assert process.stopped_at == T0 + 1
    assert process.alive_at(T0 + 1) is False
    clock.now += 10 * HEARTBEAT_S
    assert publisher.beat() is False


def test_the_heartbeat_thread_beats_while_the_process_does_nothing(tmp_path: Path) -> None:
    """The thread, not the caller's loop, keeps the entry fresh (a process blocked in a retry beats)."""
    wall = WallClock()
    publisher = StatusPublisher(tmp_path, "sink", "s", interval_s=3600, heartbeat_s=0.02, wall_clock=wall)
    publisher.publish({"n": 1})
    wall.now = T0 + 7
    deadline = 200  # polls of 0.05 s: the thread wakes every 0.01 s
    while read_board(tmp_path, now=wall.now)[0].updated_at != T0 + 7 and deadline:
        deadline -= 1
        threading.Event().wait(0.05)
    assert read_board(tmp_path, now=wall.now)[0].updated_at == T0 + 7
    publisher.close()
    assert read_board(tmp_path, now=wall.now)[0].stopped_at == T0 + 7


def test_a_collected_publisher_stops_its_heartbeat(tmp_path: Path) -> None:
    publisher = StatusPublisher(tmp_path, "sink", "s", heartbeat_s=0.02)
    publisher.publish({"n": 1})
    (thread,) = [t for t in threading.enumerate() if t.name == "status-heartbeat-sink.s"]
    del publisher  # nothing else holds it (the thread and the exit hook hold weak references)
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_entries_older_than_a_day_are_pruned_when_the_board_is_read_or_written(tmp_path: Path) -> None:
    def old_entry(name: str, updated_at: float) -> None:
        data = {
            "kind": "sink",
            "name": name,
            "pid": 1,
            "started_at": 0.0,
            "updated_at": updated_at,
            "metrics": {},
        }
        (tmp_path / f"sink.{name}.json").write_text(json.dumps(data))

    old_entry("yesterday", T0 - PRUNE_AFTER_S - 1)
    old_entry("today", T0 - PRUNE_AFTER_S)
    assert [p.name for p in read_board(tmp_path, now=T0)] == ["today"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sink.today.json"]

    old_entry("yesterday", T0 - PRUNE_AFTER_S - 1)
    publisher = quiet_publisher(tmp_path, WallClock(T0), FakeClock())
    publisher.publish({})  # its first write prunes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sink.s.json", "sink.today.json"]


def test_a_heartbeat_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="heartbeat"):
        StatusPublisher(tmp_path, "sink", "s", heartbeat_s=0)


# What `tidelake status` lists: processes alive or stopped in the last 10 minutes (--all: every one).
def board_entry(folder: Path, name: str, updated_at: float, **more: object) -> None:
    data = {"kind": "sink", "name": name, "pid": 1, "started_at": T0 - 3600, "updated_at": updated_at,
            "metrics": {"records_in": 7}, "host": OTHER_HOST[0], "pid_namespace": OTHER_HOST[1], **more}  # fmt: skip
    (folder / f"sink.{name}.json").write_text(json.dumps(data))


def test_status_lists_processes_alive_or_stopped_recently_and_counts_the_others(tmp_path: Path) -> None:
    board_entry(tmp_path, "beating", T0 - 1)
    board_entry(tmp_path, "stopped-5-min-ago", T0 - 300, stopped_at=T0 - 300)
    board_entry(tmp_path, "killed-9-min-ago", T0 - 540)
    board_entry(tmp_path, "stopped-11-min-ago", T0 - 660, stopped_at=T0 - 660)
    board_entry(tmp_path, "two-days-old", T0 - 2 * PRUNE_AFTER_S)
    shown, hidden = board_processes(tmp_path, T0)
    assert [(p.name, p.alive_at(T0)) for p in shown] == [
        ("beating", True),
        ("killed-9-min-ago", False),
        ("stopped-5-min-ago", False),
    ]
    assert hidden == 1
    everything, hidden = board_processes(tmp_path, T0, all_processes=True)
    assert [p.name for p in everything] == [
        "beating",
        "killed-9-min-ago",
        "stopped-11-min-ago",
        "stopped-5-min-ago",
    ]
    assert hidden == 0
    assert not (tmp_path / "sink.two-days-old.json").exists()  # pruned on reading


def test_status_shows_stopped_processes_and_says_how_many_it_hides(tmp_path: Path) -> None:
    board_entry(tmp_path, "beating", T0 - 1)
    board_entry(tmp_path, "gone", T0 - 100)
    processes, hidden = board_processes(tmp_path, T0)
    status = PipelineStatus("127.0.0.1:1", "lake", T0, broker_up=True, processes=processes,
                            hidden_processes=hidden + 38)  # fmt: skip
    with console.capture() as captured:
        render(status)
    text = captured.get()
    assert text.endswith("\n38 processes stopped more than 10 min ago are not shown (--all lists them)\n")
    cells = [
        [c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│ sink")
    ]
    rows = {name: state for _, name, state, *_ in cells}
    assert rows == {"beating": "running", "gone": "stopped"}
    by_name = {p["name"]: p["alive"] for p in status.to_dict()["processes"]}
    assert by_name == {"beating": True, "gone": False}
    assert status.to_dict()["hidden_processes"] == 38
