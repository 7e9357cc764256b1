"""A query stopped half way by a result limit leaves its session usable (DuckDB 2 refuses a new query
on a connection whose last result is still open)."""

from pathlib import Path

import pytest

from core.errors import QueryError
from queries.engine import Engine, Limits


def test_every_session_answers_after_a_result_limit_stopped_a_fetch(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    limits = Limits(max_result_rows=100_000, threads=1)
    with Engine(lake, limits) as engine:
        kept = []  # a caller that keeps the error keeps its traceback, and the frames in it, alive
        for _ in range(limits.threads + 2):  # more than there are sessions: each one is reused
            with pytest.raises(QueryError, match="more than 100,000 rows") as caught:
                engine.run("SELECT range AS n FROM range(1000000)")
            kept.append(caught.value)
            result = engine.run("SELECT 41 + 1 AS answer")
            assert result.table.to_pylist() == [{"answer": 42}]
