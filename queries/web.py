"""The web console: its static files and the few endpoints only it needs.

    GET /                  the console (queries/console/index.html)
    GET /console/*         its scripts and styles, shipped in the package: nothing loads from the network
    GET /api/tables        tables with columns, types, partition keys, rows, bytes and the entries
                           the catalog skipped with why (the sidebar)
    GET /api/library       the shipped named queries: text (with `$name` placeholders) and parameters
                           (name, type, default, help, an example value)
    POST /api/library/{name}/run
                           {"params": {name: text or null}, "workgroup"} -> {"id"}: runs the named
                           query; DuckDB binds the typed values to its placeholders (never pasted
                           into the text); 400 names a bad value, 404 an unknown query
    GET /api/pipeline      the pipeline's status, if the server was given a way to read it

The pipeline status comes from the composition root (`tidelake serve`), which knows Kafka and the
status board; the queries role only passes it through.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from core.errors import ConfigError, TableNotFound
from queries import named
from queries.engine import Engine

CONSOLE_DIR = Path(__file__).with_name("console")

PipelineReader = Callable[[], dict[str, Any]]
#: Starts an execution (QueryService.start): (query text, workgroup, client token, typed
#: parameters for DuckDB to bind) -> its id.
Starter = Callable[..., str]


class NamedRun(BaseModel):
    """A named query's parameters as typed in the console's form (null or "" = not set)."""

    params: dict[str, str | None] = Field(default_factory=dict)
    workgroup: str = Field(default="primary", min_length=1, max_length=128)


def table_details(engine: Engine) -> list[dict[str, Any]]:
    """Each table of the catalog with its columns as the engine types them."""
    details = []
    for name, table in sorted(engine.refresh().items()):
        readable = name in engine.table_names()
        if not readable and not table.skipped:
            continue  # a folder with no files and no declared schema is not a table yet
        described = engine.run(f'DESCRIBE "{name}"').table.to_pylist() if readable else []
        partition_keys = set(table.partitions)
        details.append(
            {
                "table": name,
                "files": len(table.files),
                "partitions": table.partition_count,
                "rows": table.row_count(),
                "bytes": table.total_bytes,
                "columns": [
                    {
                        "name": c["column_name"],
                        "type": c["column_type"],
                        "partition": c["column_name"] in partition_keys,
                    }
                    for c in described
                ],
                "warnings": table.warnings(),
            }
        )
    return details


def library() -> list[dict[str, Any]]:
    """The shipped named queries: their text as written (`$name` placeholders) and their parameters."""
    return [
        {
            "name": name,
            "question": query.question,
            "reads": list(query.reads),
            "params": [
                {
                    "name": p.name,
                    "type": p.type,
                    "default": None if (p.default or "NULL").upper() == "NULL" else p.default,
                    "help": p.help,
                    "example": named.example(p.type),
                }
                for p in query.params
            ],
            "sql": query.sql,
        }
        for name, query in named.load_all().items()
    ]


def start_named(engine: Engine, start: Starter, name: str, run: NamedRun) -> str:
    """Start shipped query `name` with `run.params` bound by DuckDB; HTTPException 404/400 says why not."""
    query = named.load_all().get(name)
    if query is None:
        raise HTTPException(status_code=404, detail=f"no shipped named query {name!r}")
    given = {k: (v if v is None or v.strip() else None) for k, v in run.params.items()}
    try:
        values = query.bind(given)
        named.check_inputs(query, engine)
    except (ConfigError, TableNotFound) as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return start(query.sql, run.workgroup, None, values)


def mount_console(
    app: FastAPI, engine: Engine, start: Starter, pipeline: PipelineReader | None, guard: list[Any]
) -> None:
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR), name="console")

    @app.get("/", include_in_schema=False)
    def home() -> FileResponse:
        return FileResponse(CONSOLE_DIR / "index.html")

    @app.get("/api/tables", dependencies=guard)
    def tables() -> list[dict[str, Any]]:
        return table_details(engine)

    @app.get("/api/library", dependencies=guard)
    def shipped_queries() -> list[dict[str, Any]]:
        return library()

    @app.post("/api/library/{name}/run", dependencies=guard)
    def run_named(name: str, body: NamedRun) -> dict[str, str]:
        return {"id": start_named(engine, start, name, body)}

    @app.get("/api/pipeline", dependencies=guard)
    def pipeline_status() -> dict[str, Any]:
        if pipeline is None:
            raise HTTPException(
                status_code=404,
                detail="this server was started without pipeline status (use `tidelake serve`)",
            )
        return pipeline()
