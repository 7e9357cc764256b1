"""The engine: a sandboxed, in-memory DuckDB over the lake's catalog (the Athena engine).

How the sandbox is built, in this order, on one DuckDB database:
1. no extension is installed or loaded automatically, community extensions are off;
2. `allowed_directories` = the lake folder, then `enable_external_access = false`: DuckDB refuses
   every file, URL, ATTACH or extension outside the lake;
3. one session (a DuckDB connection) per concurrent query, each with the profiler on and UTC time;
4. `lock_configuration = true`: no statement can change any of the above.
Statements are checked by `queries.sandbox` before they reach DuckDB; each runs under a time limit
(DuckDB's interrupt), a memory limit and a result-row limit.

A query whose lake files vanish under it is run once more, by itself: a compaction
(`tidelake sink compact`) swaps a partition folder's small files for one merged file, and a query
that listed the old files before the swap and opens one after it would fail with DuckDB's "No files
found" IO error, or would see the folder as if it held no file. The second run lists the lake again
(the swap is atomic: it sees the old files or the merged one) and its rows are exact.

Glue's own tables (CreateTable, `CREATE EXTERNAL TABLE`) are views too once `attach_glue` is given
the catalog: `uploads.sales` over the CSV, JSON or Parquet files of its lake folder, built by the
engine itself (`queries.glue_views`), never by a user's statement.

A Glue table with partition projection (`queries.glue_projection`) is a view per query: before a
statement runs, its WHERE terms on the projected keys (`queries.projection_filters`) pick the
partitions, only their folders are listed, and the table's view reads just those, under the
table's lock until the statement ends (then it is empty again). The engine's `clock` is "now" for
`NOW` in a date range; tests pass their own.

`run(..., database=name)` is Athena's QueryExecutionContext.Database: a bare table name is looked up
in that database first (DuckDB's `USE` for the query's session), then in `default`.

Bytes scanned are what DuckDB itself read from the lake's files for the query: the profiler's
`io.total_bytes_read` (Parquet footers plus the column chunks of the row groups it touched), with
DuckDB's external file cache off so that a repeated query is measured, and billed, again.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from core.aws_json import AwsError
from core.errors import QueryCancelled, QueryError, QueryRefused, TableNotFound
from queries.catalog import Table, discover
from queries.glue_projection import ProjectionError
from queries.glue_views import GlueViewError, glue_view_sql, quote_ident
from queries.projection_filters import ProjectionParseError, projection_filters
from queries.sandbox import check_statement, describe_parser_error

_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist", re.IGNORECASE)
#: Runs of a query after the first when lake files it listed vanished (see the module docstring).
VANISHED_FILE_RETRIES = 1
log = logging.getLogger(__name__)


class _FilesVanished(Exception):
    """Files listed for this run of a query were gone when they were read (a compaction swap)."""

    def __init__(self, paths: list[Path], cause: BaseException | None = None) -> None:
        super().__init__(", ".join(str(p) for p in paths[:3]))
        self.paths = paths
        self.cause = cause


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 60.0
    memory_limit: str = "2GB"
    threads: int = 2
    max_result_rows: int = 1_000_000
    #: Arrow bytes of one result; the API keeps results as text, a few times this, so it is bounded too.
    max_result_bytes: int = 256 * 1024 * 1024
    #: DuckDB's max_temp_directory_size: what a query may spill to disk beyond memory_limit.
    max_spill: str = "8GB"


@dataclass
class QueryResult:
    table: pa.Table
    bytes_scanned: int
    engine_ms: int
    #: rows DuckDB's scans read (the profiler's `total_rows_scanned`) and its planning time, in ms
    rows_scanned: int = 0
    planning_ms: int = 0


@dataclass
class RunControl:
    """Lets another thread stop a running query (StopQueryExecution, the time limit).

    A watchdog interrupts the session every `tick_s` while a stop is pending, because DuckDB's
    interrupt only reaches a statement that has already started.
    """

    reason: str = ""
    tick_s: float = 0.05
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def stop(self, reason: str = "Query cancelled by user") -> None:
        if not self.reason:
            self.reason = reason

    def _watch(
        self, session: duckdb.DuckDBPyConnection, deadline: float, timeout_s: float
    ) -> threading.Thread:
        self._done.clear()

        def watch() -> None:
            while not self._done.wait(self.tick_s):
                if not self.reason and time.monotonic() >= deadline:
                    self.reason = f"time limit of {timeout_s:g} s"
                if self.reason:
                    session.interrupt()

        watcher = threading.Thread(target=watch, name="tidelake-query-watchdog", daemon=True)
        watcher.start()
        return watcher


class Engine:
    """DuckDB locked to one lake folder. Open it in the entry point; close it when done."""

    def __init__(
        self,
        lake: Path,
        limits: Limits | None = None,
        *,
        sessions: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.lake = lake.resolve()
        self.limits = limits or Limits()
        self.clock = clock
        #: (database, name) -> the TableSource of a Glue table with partition projection, and its lock
        self._projected: dict[tuple[str, str], Any] = {}
        self._projected_locks: dict[tuple[str, str], threading.Lock] = {}
        self._catalog_lock = threading.Lock()
        #: view name -> (fingerprint of its files, files whose footer was found bad when it was built)
        self._views: dict[str, tuple[tuple[Any, ...], dict[Path, str]]] = {}
        self._tables: dict[str, Table] = {}
        #: Glue tables made by CreateTable or CREATE EXTERNAL TABLE: () -> their
        #: `queries.glue_api.TableSource`s and what could not be resolved (see `attach_glue`)
        self._glue_tables: Callable[[], tuple[list[Any], list[str]]] | None = None
        #: (schema, view) -> stamp of the Glue views built, and the lines of the last refresh's skips
        self._glue_views: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._glue_warnings: list[str] = []
        #: the Glue tables' `TableSource`s as the last refresh found them (see `glue_sources`)
        self._glue_sources: list[Any] = []
        #: names mirrored as `"default".name` (see `_alias_default`)
        self._aliases: set[str] = set()
        self._spill = tempfile.TemporaryDirectory(prefix="tidelake-duckdb-")
        self._db = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "allow_community_extensions": False,
                "enable_external_file_cache": False,
                "memory_limit": self.limits.memory_limit,
                "threads": self.limits.threads,
                "temp_directory": self._spill.name,
                "max_temp_directory_size": self.limits.max_spill,
                # a table name must never resolve to a variable of the calling Python frame
                "python_enable_replacements": False,
            },
        )
        self._db.execute("SET allowed_directories = $dirs", {"dirs": [str(self.lake) + "/"]})
        self._db.execute("SET enable_external_access = false")
        self._sessions: queue.Queue[duckdb.DuckDBPyConnection] = queue.Queue()
        for _ in range(sessions):
            session = self._db.cursor()
            session.execute("SET enable_profiling = 'no_output'")
            session.execute("SET TimeZone = 'UTC'")  # hour partitions and date_trunc agree on UTC
            self._sessions.put(session)
        self._db.execute("SET lock_configuration = true")

    def close(self) -> None:
        while not self._sessions.empty():
            self._sessions.get_nowait().close()
        self._db.close()
        self._spill.cleanup()
        # drop the closed connection too: one still referenced at interpreter exit (e.g. by a test
        # framework's cache) makes DuckDB's bindings report leaked objects
        del self._db

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- catalog -----------------------------------------------------------------------------
    def attach_glue(self, tables: Callable[[], tuple[list[Any], list[str]]]) -> None:
        """Make Glue's own tables readable by name: `tables()` gives (TableSources, warnings), e.g.
        `GlueService.stored_sources`. Database `default` becomes DuckDB's main schema (a table there
        wins over a lake dataset of the same name, as in Glue), any other database a schema of its
        name: `SELECT * FROM uploads.sales`. Each view is rebuilt when its files change (`queries.glue_views`)."""
        self._glue_tables = tables

    def _refresh_glue(self) -> None:
        """Build, rebuild or drop the Glue views; one that cannot be built is left out, with a warning."""
        if self._glue_tables is None:
            return
        sources, warnings = self._glue_tables()
        self._glue_sources = list(sources)
        wanted: dict[tuple[str, str], Any] = {}
        projected: dict[tuple[str, str], Any] = {}
        for source in sources:
            schema = "main" if source.database == "default" else source.database
            if getattr(source, "projection", None) is not None:
                projected[(source.database, source.name)] = source
                source = replace(source, partitions=[])  # read per query, see `_project`
            wanted[(schema, source.name)] = source
        self._projected = projected
        for key in projected:
            self._projected_locks.setdefault(key, threading.Lock())
        for key in set(self._glue_views) - set(wanted):
            self._db.execute(f"DROP VIEW IF EXISTS {quote_ident(key[0])}.{quote_ident(key[1])}")
            del self._glue_views[key]
            if key[0] == "main":
                self._views.pop(key[1], None)  # a lake dataset of that name is rebuilt next refresh
        for (schema, name), source in sorted(wanted.items()):
            try:
                sql, stamp = glue_view_sql(source, schema)
                if self._glue_views.get((schema, name)) == stamp:
                    continue
                self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                self._db.execute(sql)
            except (GlueViewError, duckdb.Error) as exc:
                self._db.execute(f"DROP VIEW IF EXISTS {quote_ident(schema)}.{quote_ident(name)}")
                self._glue_views.pop((schema, name), None)
                text = describe_parser_error(exc) if isinstance(exc, duckdb.Error) else str(exc)
                warnings.append(f"{source.database}.{name}: not readable now: {text}")
                continue
            self._glue_views[(schema, name)] = stamp
            if schema == "main":
                self._views.pop(name, None)  # the Glue table replaced the lake's view of that name
        self._glue_warnings = warnings

    def refresh(self, deadline: float | None = None) -> dict[str, Table]:
        """Rebuild the views whose files changed; called before every query, so it is always fresh.

        A dataset DuckDB cannot read loses its view and says why in `warnings()`; the other tables
        are untouched. `deadline` (monotonic) bounds the listing by the query's time limit.
        """
        with self._catalog_lock:
            found = {t.name: t for t in discover(self.lake, deadline)}
            for name in set(self._views) - set(found):
                self._db.execute(f'DROP VIEW IF EXISTS "{name}"')
                del self._views[name]
            for name, table in found.items():
                if ("main", name) in self._glue_views:
                    continue  # a Glue table of this name in `default` is what the name reads
                stamp = table.fingerprint()
                built = self._views.get(name)
                if built is not None and built[0] == stamp:
                    for path, reason in built[1].items():
                        table.skip(path, reason)  # footers found bad when the view was built
                    continue
                listed = dict(table.skipped)
                sql = table.view_sql()
                if sql is None:
                    self._db.execute(f'DROP VIEW IF EXISTS "{name}"')
                    self._views.pop(name, None)
                    continue
                try:
                    self._db.execute(sql)
                except duckdb.Error as exc:
                    self._db.execute(f'DROP VIEW IF EXISTS "{name}"')
                    self._views.pop(name, None)
                    table.skip(
                        table.location,
                        f"DuckDB cannot read this dataset, so it is not a table now: {describe_parser_error(exc)}",
                    )
                    continue
                self._views[name] = (stamp, {p: r for p, r in table.skipped.items() if p not in listed})
            self._tables = found
            self._refresh_glue()
            self._alias_default()
            return dict(found)

    def _alias_default(self) -> None:
        """Mirror every table of database `default` (DuckDB's main schema) as `"default".name`, the
        spelling Athena's clients send (PyAthena's SQLAlchemy dialect, awswrangler); the aliases
        read the main views at query time, so they follow every rebuild."""
        names = set(self._views) | {name for schema, name in self._glue_views if schema == "main"}
        if names and not self._aliases:
            self._db.execute('CREATE SCHEMA IF NOT EXISTS "default"')
        for name in self._aliases - names:
            self._db.execute(f'DROP VIEW IF EXISTS "default".{quote_ident(name)}')
        for name in names - self._aliases:
            self._db.execute(f'CREATE OR REPLACE VIEW "default".{quote_ident(name)} AS SELECT * FROM main.{quote_ident(name)}')  # fmt: skip
        self._aliases = names

    def glue_sources(self) -> list[Any]:
        """The Glue tables (`queries.glue_api.TableSource`: database, name, columns, partition keys,
        location) as a refresh finds them now; [] without `attach_glue`."""
        self.refresh()
        return list(self._glue_sources)

    def warnings(self) -> list[str]:
        """What the last refresh left out of the catalog and why (links, FIFOs, files that are not Parquet)."""
        lake = [line for table in self._tables.values() for line in table.warnings()]
        return [*lake, *self._glue_warnings]

    @property
    def tables(self) -> dict[str, Table]:
        return dict(self._tables)

    def table_names(self) -> list[str]:
        glue = [name if schema == "main" else f"{schema}.{name}" for schema, name in self._glue_views]
        return sorted({*self._views, *glue})

    # -- running -----------------------------------------------------------------------------
    def run(
        self,
        sql: str,
        params: dict[str, Any] | list[Any] | None = None,
        control: RunControl | None = None,
        *,
        database: str | None = None,
    ) -> QueryResult:
        """Check, run and measure one statement. Raises QueryRefused, TableNotFound, QueryCancelled or QueryError.

        `database` (Athena's QueryExecutionContext.Database, default `default`) is where a bare table
        name is looked up first. Run once more when lake files it listed vanished meanwhile (a
        compaction swap), within the same time limit; see the module docstring."""
        control = control or RunControl()
        database = (database or "default").lower()
        with self._session() as session:
            text = check_statement(sql, parser=session)
            deadline = time.monotonic() + self.limits.timeout_s
            for attempt in range(VANISHED_FILE_RETRIES + 1):
                try:
                    return self._run_once(session, text, params or {}, control, deadline, database)
                except _FilesVanished as exc:
                    if attempt == VANISHED_FILE_RETRIES:
                        msg = (
                            f"lake files vanished while the query read them, in {attempt + 1} runs in a row "
                            f"({exc}): the lake is being rewritten (compaction); run the query again"
                        )
                        raise QueryError(msg) from exc.cause
                    log.info("lake files vanished under a query (%s); running it again", exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_once(
        self,
        session: duckdb.DuckDBPyConnection,
        text: str,
        params: dict[str, Any] | list[Any],
        control: RunControl,
        deadline: float,
        database: str = "default",
    ) -> QueryResult:
        try:
            self.refresh(deadline)
        except QueryCancelled as exc:
            control.reason = control.reason or f"time limit of {self.limits.timeout_s:g} s"
            raise QueryCancelled(f"query cancelled: {control.reason} (listing the lake)") from exc
        with self._in_database(session, database), self._project(text, params, database):
            return self._measured(session, text, params, control, deadline)

    def _measured(
        self,
        session: duckdb.DuckDBPyConnection,
        text: str,
        params: dict[str, Any] | list[Any],
        control: RunControl,
        deadline: float,
    ) -> QueryResult:
        gone = self._vanished(all_files=False)
        if gone:  # listed, then gone before its footer was read: the view would miss its rows
            raise _FilesVanished(gone)
        watcher = control._watch(session, deadline, self.limits.timeout_s)
        started = time.perf_counter()
        try:
            table = self._fetch(session, text, params)
            bytes_scanned, rows_scanned, planning_ms = _profile(session)
        except duckdb.InterruptException as exc:
            msg = f"query cancelled: {control.reason or 'interrupted'}"
            raise QueryCancelled(msg) from exc
        except duckdb.IOException as exc:
            gone = self._vanished(all_files=True)
            if gone:
                raise _FilesVanished(gone, exc) from exc
            raise self._translate(exc) from exc
        except duckdb.Error as exc:
            raise self._translate(exc) from exc
        finally:
            control._done.set()
            watcher.join()
        engine_ms = round((time.perf_counter() - started) * 1000)
        return QueryResult(table, bytes_scanned, engine_ms, rows_scanned, planning_ms)

    def _vanished(self, *, all_files: bool) -> list[Path]:
        """Paths the last refresh listed that are gone now: of every table when `all_files`, else
        the entries it skipped and the files of tables whose view could not be built."""
        gone: list[Path] = []
        for table in self._tables.values():
            failed = table.location in table.skipped
            paths = [*table.files, *table.skipped] if all_files or failed else list(table.skipped)
            gone.extend(path for path in paths if not os.path.lexists(path))
        return gone

    @contextmanager
    def _in_database(self, session: duckdb.DuckDBPyConnection, database: str) -> Iterator[None]:
        """Look bare names up in `database`'s schema for this session (when it has tables here)."""
        schema = "main" if database == "default" else database
        known = {schema for (schema, _) in self._glue_views}
        if schema == "main" or schema not in known:
            yield
            return
        session.execute(f"USE {quote_ident(schema)}")
        try:
            yield
        finally:
            session.execute("USE main")

    @contextmanager
    def _project(self, text: str, params: Any, database: str) -> Iterator[None]:
        """Point each projected table the statement reads at the partitions its WHERE selects, for
        as long as the statement runs (see the module docstring)."""
        projected = dict(self._projected)  # as the refresh before this statement found them
        if not projected:
            yield
            return
        try:
            uses = projection_filters(
                text, set(projected), database, params if isinstance(params, list) else None
            )
        except ProjectionParseError as exc:
            lowered = text.lower()
            if any(name in lowered for _, name in projected):
                msg = f"tidelake could not read this statement's WHERE to project the partitions of a projected table: {exc}"
                raise ProjectionError(msg) from exc
            uses = {}
        with ExitStack() as stack:
            for key in sorted(uses):
                stack.enter_context(self._projected_locks[key])
                self._build_projected(projected[key], uses[key])
                stack.callback(self._build_projected, projected[key], None)
            yield

    def _build_projected(self, source: Any, uses: list[dict[str, Any]] | None) -> None:
        """(Re)build a projected table's view over the partitions `uses` select; empty when None."""
        folders: dict[tuple[Path, tuple[str, ...]], None] = {}
        if uses is not None:
            projection = source.projection
            if isinstance(projection, ProjectionError):
                raise projection
            now = self.clock()
            for constraints in uses:
                for partition in projection.partitions(constraints, now):
                    uri = projection.location(source.location_uri, partition)
                    try:
                        folder = source.resolve(uri)
                    except AwsError as exc:
                        msg = f"projected partition {partition.path_values} of {source.database}.{source.name}: {exc.text}"
                        raise ProjectionError(msg) from exc
                    folders[(folder, tuple(partition.column_values))] = None
        schema = "main" if source.database == "default" else source.database
        chosen = replace(source, partitions=[(list(values), folder) for folder, values in folders])
        try:
            sql, _ = glue_view_sql(chosen, schema)
            with self._catalog_lock:
                self._db.execute(sql)
        except (GlueViewError, duckdb.Error) as exc:
            text = describe_parser_error(exc) if isinstance(exc, duckdb.Error) else str(exc)
            raise QueryError(f"{source.database}.{source.name} cannot be read: {text}") from exc

    @contextmanager
    def _session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        session = self._sessions.get()
        try:
            yield session
        finally:
            self._sessions.put(session)

    def _fetch(
        self, session: duckdb.DuckDBPyConnection, text: str, params: dict[str, Any] | list[Any]
    ) -> pa.Table:
        relation = session.sql(text, params=params or None)
        if relation is None:
            return pa.table({})
        limit, max_bytes = self.limits.max_result_rows, self.limits.max_result_bytes
        # DuckDB 2 refuses the session's next query while a result is open: close the reader even
        # when a limit stops the fetch half way
        with relation.to_arrow_reader(batch_size=65_536) as reader:
            return self._read_within_limits(reader, limit, max_bytes)

    @staticmethod
    def _read_within_limits(reader: pa.RecordBatchReader, limit: int, max_bytes: int) -> pa.Table:
        batches, rows, size = [], 0, 0
        for batch in reader:
            rows += batch.num_rows
            size += batch.nbytes
            if rows > limit:
                msg = (
                    f"the result has more than {limit:,} rows (the result-row limit, "
                    "TIDELAKE_QUERY__MAX_RESULT_ROWS); add a LIMIT or aggregate"
                )
                raise QueryError(msg)
            if size > max_bytes:
                msg = (
                    f"the result is larger than {max_bytes:,} bytes (the result-size limit) after "
                    f"{rows:,} rows; select fewer or narrower columns, add a LIMIT or aggregate"
                )
                raise QueryError(msg)
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)

    def _translate(self, exc: duckdb.Error) -> QueryError:
        text = describe_parser_error(exc)
        if isinstance(exc, duckdb.PermissionException):
            return QueryRefused(
                f"refused: {text.removeprefix('Permission Error: ')}; tidelake reads only files under "
                f"{self.lake} (query its tables by name, see `tidelake catalog`). Nothing was run or written."
            )
        missing = _MISSING_TABLE.search(text)
        if isinstance(exc, duckdb.CatalogException) and missing and "/" in missing.group(1):
            return QueryRefused(
                f"refused: {missing.group(1)} is a file path; tidelake reads only the lake's tables "
                f"(see `tidelake catalog`), not files by path. Nothing was run or written."
            )
        if isinstance(exc, duckdb.CatalogException) and missing:
            return TableNotFound(self.describe_missing(missing.group(1).strip('"')))
        if isinstance(exc, duckdb.OutOfMemoryException) or "max_temp_directory_size" in text:
            return QueryError(
                f"{text}; the memory limit is {self.limits.memory_limit} (TIDELAKE_QUERY__MEMORY_LIMIT) "
                f"and a query may spill at most {self.limits.max_spill} to disk"
            )
        return QueryError(text)

    def describe_missing(self, name: str) -> str:
        """Why table `name` is not there and what to do, for TableNotFound messages."""
        known = self.table_names()
        table = self._tables.get(name)
        if table is not None and not table.files and table.skipped:
            return (
                f"table {name!r} has no readable Parquet files under {table.location}; skipped: "
                + "; ".join(table.warnings()[:3])
            )
        if table is not None and not table.files:
            return (
                f"table {name!r} has no Parquet files yet under {table.location}; "
                "start its sink (tidelake sink run, or tidelake demo) and query again"
            )
        if not known:
            return (
                f"table {name!r} does not exist: the lake at {self.lake} has no datasets yet; "
                "fill it with `tidelake demo` or a sink (`tidelake sink run`), or point --lake at another folder"
            )
        return f"table {name!r} does not exist in the lake at {self.lake}; known tables: {', '.join(known)}"


def _profile(session: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(bytes read, rows scanned, planning ms) of the session's last query, from DuckDB's profiler."""
    try:
        profile = json.loads(session.get_profiling_information(format="json"))
    except (duckdb.Error, ValueError):
        return 0, 0, 0
    io = profile.get("io") or {}
    query = profile.get("query") or {}
    planner = profile.get("planner") or {}
    return (
        int(io.get("total_bytes_read") or 0),
        int(query.get("total_rows_scanned") or 0),
        round(float(planner.get("total_time") or 0) * 1000),
    )
