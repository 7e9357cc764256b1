"""The SQLite state of the Athena API: records survive a new store, and a new QueryService, on the same folder."""

from pathlib import Path

import pytest

from queries.athena_state import FILE_NAME, AthenaState
from queries.engine import Engine, Limits
from queries.results import ResultStore
from queries.service import STOPPED_REASON, Execution, QueryService


def test_records_keep_their_first_order_and_survive_reopening(tmp_path: Path) -> None:
    state = AthenaState(tmp_path)
    state.put("workgroups", "b", {"name": "b"})
    state.put("workgroups", "a", {"name": "a"})
    state.put("workgroups", "b", {"name": "b", "description": "replaced"})
    state.delete("workgroups", "missing")
    state.close()
    again = AthenaState(tmp_path)
    try:
        assert again.all("workgroups") == [
            ("b", {"name": "b", "description": "replaced"}),
            ("a", {"name": "a"}),
        ]
        again.delete("workgroups", "b")
        assert again.all("workgroups") == [("a", {"name": "a"})]
        assert (tmp_path / FILE_NAME).is_file()
        with pytest.raises(ValueError, match="unknown record kind"):
            again.all("sqlite_master")
    finally:
        again.close()


def test_a_query_left_running_by_a_stopped_server_is_cancelled_when_the_next_starts(tmp_path: Path) -> None:
    state = AthenaState(tmp_path / "results")
    running = Execution("q1", "SELECT 1", "primary", state="RUNNING", execution_parameters=["'a'"])
    state.put("executions", "q1", running.record())
    state.close()
    with Engine(tmp_path / "lake", Limits(timeout_s=5)) as engine:
        service = QueryService(engine, ResultStore(tmp_path / "results"))
        try:
            found = service.get("q1")
            assert (found.state, found.reason, found.execution_parameters) == (
                "CANCELLED",
                STOPPED_REASON,
                ["'a'"],
            )
        finally:
            service.close()
