"""The web console: its static files and the few endpoints only it needs.

    GET /                  the console (queries/console/index.html)
    GET /console/*         its scripts and styles, shipped in the package: nothing loads from the network
    GET /api/tables        tables with columns, types, partition keys, rows, bytes and the entries
                           the catalog skipped with why (the sidebar)
    GET /api/library       the shipped named queries with their parameters filled by defaults
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

from queries import named
from queries.engine import Engine

CONSOLE_DIR = Path(__file__).with_name("console")

PipelineReader = Callable[[], dict[str, Any]]


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
    """The shipped named queries, ready to paste: parameters filled with their defaults."""
    return [
        {
            "name": name,
            "question": query.question,
            "reads": list(query.reads),
            "params": [
                {"name": p.name, "type": p.type, "default": p.default, "help": p.help} for p in query.params
            ],
            "sql": named.inline_params(query),
        }
        for name, query in named.load_all().items()
    ]


def mount_console(app: FastAPI, engine: Engine, pipeline: PipelineReader | None, guard: list[Any]) -> None:
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

    @app.get("/api/pipeline", dependencies=guard)
    def pipeline_status() -> dict[str, Any]:
        if pipeline is None:
            raise HTTPException(
                status_code=404,
                detail="this server was started without pipeline status (use `tidelake serve`)",
            )
        return pipeline()
