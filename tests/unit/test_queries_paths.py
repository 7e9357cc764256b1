"""No query leaves the lake, however the path is spelled or linked (issue 14, item 1).

DuckDB's `allowed_directories` removes `..` from a path as text while the kernel follows a link
first, so `<lake>/r/../etc/passwd` with `r -> /` passed it. tidelake's policy: queries read tables
by name, never files by path, and the catalog reads only regular files found without following
links. Every spelling below is refused before DuckDB opens anything, or is simply not part of a
table; each test also checks that nothing of the outside file came back.
"""

import os
from pathlib import Path

import pytest

from core.errors import QueryRefused
from queries.engine import Engine
from tests.unit.queries_lake import event, write_events, write_rows

SECRET = "tidelake-outside-secret"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the lake with a text file and a Parquet file nobody may read through it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.csv").write_text(f"word\n{SECRET}\n")
    write_rows(folder / "dt=2026-11-23" / "hour=07" / "stolen.parquet", [{"word": SECRET}])
    return folder


@pytest.fixture
def lake(tmp_path: Path, outside: Path) -> Path:
    root = tmp_path / "lake"
    write_events(root, [event("2026-11-23T07:10:00", "v1", "/a"), event("2026-11-23T08:10:00", "v2", "/b")])
    os.symlink("/", root / "r")  # the issue's `mkdir L && ln -s / L/r`
    os.symlink(outside, root / "clickstream_events" / "linked")  # a link to a folder
    os.symlink(outside / "secret.csv", root / "clickstream_events" / "secret.csv")  # to a file
    os.symlink(root / "clickstream_events" / "linked", root / "hop")  # a link to a link
    os.symlink(
        outside / "dt=2026-11-23" / "hour=07" / "stolen.parquet",
        root / "clickstream_events" / "dt=2026-11-23" / "hour=07" / "stolen.parquet",
    )
    return root


@pytest.fixture
def engine(lake: Path) -> Engine:
    with Engine(lake) as opened:
        yield opened


def _spellings(lake: Path, tmp_path: Path) -> dict[str, str]:
    relative = os.path.relpath(lake, tmp_path)
    return {
        "dot-dot after a link": f"SELECT count(*) FROM read_csv('{lake}/r/../etc/passwd', header=false, sep=':')",
        "environ after a link": f"SELECT * FROM read_text('{lake}/r/../proc/self/environ')",
        "relative path": f"SELECT * FROM read_csv('{relative}/r/../etc/passwd', header=false, sep=':')",
        "relative bare path": f"SELECT * FROM '{relative}/hop/secret.csv'",
        "link to a link": f"SELECT * FROM read_csv('{lake}/hop/secret.csv')",
        "link to a file": f"SELECT * FROM read_csv('{lake}/clickstream_events/secret.csv')",
        "link to a folder": f"SELECT * FROM read_parquet('{lake}/clickstream_events/linked/**/*.parquet')",
        "glob over a linked folder": f"SELECT * FROM glob('{lake}/*/*')",
        "bare path": f"SELECT * FROM '{lake}/r/../etc/passwd'",
        "describe a path": f"DESCRIBE '{lake}/hop/secret.csv'",
        "summarize a path": f"SUMMARIZE '{lake}/hop/secret.csv'",
        "path built by an expression": f"SELECT * FROM read_csv('{lake}/r/..' || '/etc/passwd')",
        "path in a subquery": f"SELECT (SELECT count(*) FROM read_text('{lake}/r/../etc/passwd')) AS n",
        "path in explain analyze": f"EXPLAIN ANALYZE SELECT * FROM read_text('{lake}/r/../etc/passwd')",
        "query_table": f"SELECT * FROM query_table('{lake}/hop/secret.csv')",
        "query text": f"SELECT * FROM query('SELECT * FROM read_text(''{lake}/r/../etc/passwd'')')",
        "table macro over a path": f"SELECT * FROM histogram('{lake}/hop/secret.csv', word)",
        "parquet metadata": f"SELECT * FROM parquet_metadata('{lake}/clickstream_events/linked/**/*.parquet')",
        "home folder": "SELECT * FROM read_text('~/.bashrc')",
    }


SPELLINGS = list(_spellings(Path("/lake"), Path("/")))


@pytest.mark.parametrize("name", SPELLINGS)
def test_every_spelling_of_an_outside_path_is_refused(
    engine: Engine, lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths are relative to the process's folder
    with pytest.raises(QueryRefused, match=r"^refused: ") as caught:
        engine.run(_spellings(lake, tmp_path)[name])
    assert SECRET not in str(caught.value)
    assert "root:" not in str(caught.value)


def test_refusal_names_the_function_and_what_to_do(engine: Engine, lake: Path) -> None:
    with pytest.raises(QueryRefused) as caught:
        engine.run(f"SELECT * FROM glob('{lake}/*/*')")
    assert str(caught.value) == (
        "refused: table function glob() is not allowed: it reads files by path or runs SQL text; "
        "tidelake queries read the lake's tables by name (see `tidelake catalog`). Nothing was run or written."
    )


def test_links_are_not_part_of_a_table_and_are_named_in_the_warnings(engine: Engine, lake: Path) -> None:
    rows = engine.run("SELECT page FROM clickstream_events ORDER BY page").table.to_pylist()
    assert rows == [{"page": "/a"}, {"page": "/b"}]  # the linked stolen.parquet is not read
    table = engine.tables["clickstream_events"]
    link = "a symlink; tidelake reads only regular files in the lake (its sinks never write links)"
    assert engine.warnings() == [
        f"{lake}/clickstream_events/linked: {link}",
        f"{lake}/clickstream_events/dt=2026-11-23/hour=07/stolen.parquet: {link}",
        f"{lake}/hop: {link}",
        f"{lake}/r: {link}",
    ]
    assert [p.name for p in table.files] == ["part-0.parquet", "part-0.parquet"]
    assert engine.table_names() == ["clickstream_events"]  # `hop` and `r` are links, not tables


def test_a_link_created_after_the_engine_started_is_not_followed(tmp_path: Path, outside: Path) -> None:
    lake = tmp_path / "fresh"
    write_events(lake, [event("2026-11-23T07:10:00", "v1", "/a")])
    with Engine(lake) as engine:
        assert engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist() == [{"n": 1}]
        os.symlink("/", lake / "r")
        os.symlink(outside, lake / "clickstream_events" / "dt=2026-11-24")
        with pytest.raises(QueryRefused, match=r"^refused: table function read_csv\(\)"):
            engine.run(f"SELECT * FROM read_csv('{lake}/r/../etc/passwd', header=false, sep=':')")
        assert engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist() == [{"n": 1}]
        assert engine.warnings()[0].startswith(f"{lake}/clickstream_events/dt=2026-11-24: a symlink")


def test_a_lake_given_through_a_link_is_locked_to_its_real_folder(tmp_path: Path) -> None:
    real = tmp_path / "real-lake"
    write_events(real, [event("2026-11-23T07:10:00", "v1", "/a")])
    os.symlink(real, tmp_path / "lake-link")
    with Engine(tmp_path / "lake-link") as engine:
        allowed = engine.run(
            "SELECT value FROM duckdb_settings() WHERE name = 'allowed_directories'"
        ).table.to_pylist()
        rows = engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist()
    assert engine.lake == real
    # the lake's real folder, and the engine's private spill folder that DuckDB always adds
    assert allowed == [{"value": f"[{real}/, {engine._spill.name}/]"}]
    assert rows == [{"n": 1}]


SAFE = {
    "range": ("SELECT count(*) AS n FROM range(5)", [{"n": 5}]),
    "unnest": ("SELECT x FROM unnest([1, 2]) AS t(x)", [{"x": 1}, {"x": 2}]),
    "a cte named like nothing on disk": ("WITH a AS (SELECT 1 AS x) SELECT x FROM a", [{"x": 1}]),
    "schema-qualified table": ("SELECT count(*) AS n FROM main.clickstream_events", [{"n": 2}]),
}


@pytest.mark.parametrize("name", SAFE)
def test_table_functions_that_open_no_file_still_run(engine: Engine, name: str) -> None:
    sql, rows = SAFE[name]
    assert engine.run(sql).table.to_pylist() == rows
