"""Which snapshot a restarted stream worker resumes from, given the generation Kafka holds as
committed (stream_apps/checkpoint.py): the one that generation wrote, never a newer or older one."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from core.errors import ConfigError
from stream_apps.checkpoint import LEGACY_FILE, StateFolder, choose


def test_the_committed_generation_wins_over_a_newer_uncommitted_snapshot() -> None:
    # crash after the snapshot of 8, before its commit: Kafka still holds 7
    assert choose(7, pending={8}, confirmed={7}) == 7


def test_a_committed_generation_still_pending_is_used() -> None:
    # crash after the commit of 8, before the rename: Kafka holds 8
    assert choose(8, pending={8}, confirmed={7}) == 8


def test_a_folder_that_started_over_after_the_committed_generation_starts_from_the_beginning() -> None:
    assert choose(8, pending=set(), confirmed=set()) is None  # --reset, or the folder was deleted
    assert choose(8, pending={9}, confirmed=set()) is None  # ... and crashed before its first commit


def test_a_folder_without_the_committed_generation_but_older_ones_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"checkpoint 8 .* no snapshot of it"):
        choose(8, pending=set(), confirmed={6})


def test_without_a_committed_generation_only_a_confirmed_snapshot_counts() -> None:
    assert choose(None, pending={1}, confirmed=set()) is None  # the first transaction never committed
    assert choose(None, pending={5}, confirmed={3, 4}) == 4


def _state(mark: str) -> dict:
    return {"fingerprint": "f1", "mark": mark}


def test_state_folder_loads_the_committed_snapshot_and_removes_the_others(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path, "app")
    folder.lock()
    folder.save_pending(1, _state("one"))
    folder.confirm(1)
    folder.save_pending(2, _state("two"))
    folder.confirm(2)
    folder.save_pending(3, _state("three"))  # its transaction never committed
    assert sorted(p.name for p in folder.path.glob("snapshot-*")) == [
        "snapshot-000000000002.pickle",
        "snapshot-000000000003.pending",
    ]
    state, next_generation = folder.load("f1", committed=2)
    assert state == _state("two")
    assert next_generation == 4  # never reuses the aborted generation's number
    assert sorted(p.name for p in folder.path.glob("snapshot-*")) == ["snapshot-000000000002.pickle"]
    folder.unlock()


def test_state_folder_refuses_a_snapshot_of_another_spec(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path, "app")
    folder.lock()
    folder.save_pending(1, _state("one"))
    with pytest.raises(ConfigError, match="different spec"):
        folder.load("f2", committed=1)
    folder.unlock()


def test_a_snapshot_from_before_transactions_is_a_confirmed_generation_zero(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path, "app")
    folder.lock()
    (folder.path / LEGACY_FILE).write_bytes(pickle.dumps(_state("legacy")))
    assert folder.load("f1", committed=None) == (_state("legacy"), 1)
    folder.save_pending(1, _state("one"))
    folder.confirm(1)
    assert not (folder.path / LEGACY_FILE).exists()
    folder.reset()
    assert list(folder.path.glob("snapshot*")) == []
    assert folder.load("f1", committed=1) == (None, 2)
    folder.unlock()
