"""The `tidelake` commands for query, catalog, serve (the Athena part)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table as RichTable

from core.errors import ConfigError
from core.settings import Settings
from tidelake.commands.options import (
    BootstrapOption,
    JsonOption,
    LakeOption,
    console,
    err_console,
    print_json,
    settings_from,
)

_FORMATS = ("table", "csv", "json")
_SHOWN_ROWS = 200


def _engine(settings: Settings, sessions: int = 1) -> Any:
    from queries.engine import Engine, Limits

    q = settings.query
    limits = Limits(
        q.timeout_s, q.memory_limit, q.threads, q.max_result_rows, q.max_result_bytes, q.max_spill
    )
    return Engine(settings.lake.root, limits, sessions=sessions)


def _glue_reader(settings: Settings) -> Any:
    """Glue's catalog as serve keeps it (`<runtime.state_dir>/glue/`), opened read-only, so tables made
    by CREATE EXTERNAL TABLE or Glue's CreateTable answer `tidelake query` as they answer Athena."""
    from queries.glue_api import GlueService

    return GlueService.from_settings(settings, read_only=True)


def query(
    sql: Annotated[str | None, typer.Argument(help="SQL, or the name of a named query (see --list).")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", metavar="FILE.sql", help="Run the SQL in this file.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="NAME=VALUE", help="A named query's parameter (repeatable)."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="table|csv|json", help="How to print the result.")
    ] = "table",
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE.parquet", help="Also write the result to this Parquet file."),
    ] = None,
    list_named: Annotated[
        bool, typer.Option("--list", help="List the named queries and their parameters.")
    ] = False,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            metavar="NAME",
            show_default="default, the lake",
            help="Where bare table names are looked up first, like Athena's QueryExecutionContext.Database. "
            "Glue tables made through serve are read from its state folder.",
        ),
    ] = None,
    lake: LakeOption = None,
) -> None:
    """Run one read-only SQL statement over the lake (like Athena), with bytes scanned and its cost."""
    from queries import named
    from queries.billing import athena_bill

    catalog = named.load_all()
    if list_named:
        _print_named(catalog)
        return
    if fmt not in _FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(_FORMATS)}, got {fmt!r}")
    chosen = _choose(sql, file, catalog)
    params = named.parse_params(param or [])
    if params and chosen is None:
        raise ConfigError(
            "--param applies to named queries (or -f files with `-- param:` headers); see --list"
        )
    settings = settings_from(lake=lake)
    glue = _glue_reader(settings)
    try:
        with _engine(settings) as engine:
            engine.attach_glue(glue.stored_sources)
            if chosen is not None:
                named.check_inputs(chosen, engine)
                result = engine.run(chosen.sql, chosen.bind(params), database=database)
            else:
                result = engine.run(sql or "", database=database)
    finally:
        glue.close()
    bill = athena_bill(result.bytes_scanned)
    table = result.table
    if out is not None:
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    if fmt == "json":
        rows = table.to_pylist()
        print_json(
            {
                "columns": table.column_names,
                "rows": rows,
                "row_count": table.num_rows,
                "bytes_scanned": bill.bytes_scanned,
                "billed_mb": bill.billed_mb,
                "cost_usd": bill.usd,
                "engine_ms": result.engine_ms,
            }
        )
        return
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
        sys.stdout.flush()
        err_console.print(
            f"{table.num_rows:,} row{_s(table.num_rows)}; {bill.describe()}; {result.engine_ms} ms"
        )
        return
    _print_table(table)
    shown = (
        "" if table.num_rows <= _SHOWN_ROWS else f" (first {_SHOWN_ROWS} shown; use --format csv or --out)"
    )
    console.print(
        f"{table.num_rows:,} row{_s(table.num_rows)}{shown}; {bill.describe()}; {result.engine_ms} ms"
    )
    if out is not None:
        console.print(f"written to {out}")


def _choose(sql: str | None, file: Path | None, catalog: dict[str, Any]) -> Any:
    from queries import named

    if file is not None:
        if sql:
            raise ConfigError("give either SQL or -f FILE, not both")
        try:
            text = file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read {file}: {exc.strerror}") from exc
        return (
            named.parse(file.stem, text) if "-- question:" in text else named.NamedQuery(file.stem, "", text)
        )
    if not sql:
        raise ConfigError('give SQL, -f FILE or a named query: tidelake query "SELECT ..." (see --list)')
    return catalog.get(sql.strip())


def _print_table(table: Any) -> None:
    from queries.results import as_text

    view = RichTable(*table.column_names, show_lines=False)
    for row in table.slice(0, _SHOWN_ROWS).to_pylist():
        view.add_row(*("NULL" if v is None else str(as_text(v)) for v in row.values()))
    console.print(view)


def _print_named(catalog: dict[str, Any]) -> None:
    view = RichTable("name", "question", "reads", "parameters")
    for query_ in catalog.values():
        params = "\n".join(f"{p.name} {p.type} = {p.default or 'NULL'}" for p in query_.params)
        view.add_row(query_.name, query_.question, ", ".join(query_.reads), params)
    console.print(view)


def catalog(
    lake: LakeOption = None,
    emit_ddl: Annotated[
        str | None,
        typer.Option(
            "--emit-ddl", metavar="athena", help="Print CREATE EXTERNAL TABLE DDL for Athena (or Trino)."
        ),
    ] = None,
    location: Annotated[
        str, typer.Option("--location", metavar="S3_URL", help="Where the lake's copy lives, for --emit-ddl.")
    ] = ("s3://my-bucket/lake"),
    as_json: JsonOption = False,
) -> None:
    """List the lake's tables with columns, partitions, rows and bytes (like the Glue Data Catalog)."""
    from queries.catalog import athena_ddl, discover

    settings = settings_from(lake=lake)
    if emit_ddl is not None:
        if emit_ddl != "athena":
            raise ConfigError(f"--emit-ddl supports 'athena' (also valid for Trino), got {emit_ddl!r}")
        for table in discover(settings.lake.root):
            print(athena_ddl(table, location) + "\n")
        return
    with _engine(settings) as engine:
        tables = engine.refresh()
        described = []
        for name, table in tables.items():
            columns = []
            if name in engine.table_names():
                columns = [
                    (r["column_name"], r["column_type"])
                    for r in engine.run(f'DESCRIBE "{name}"').table.to_pylist()
                ]
            described.append(
                {
                    "table": name,
                    "columns": columns,
                    "partition_keys": table.partition_types,
                    "partitions": table.partition_count,
                    "files": len(table.files),
                    "rows": table.row_count(),
                    "bytes": table.total_bytes,
                    "warnings": table.warnings(),
                }
            )
    if as_json:
        print_json({"lake": str(settings.lake.root), "tables": described})
        return
    if not described:
        console.print(
            f"the lake at {settings.lake.root} has no datasets yet; fill it with `tidelake demo` or a sink"
        )
        return
    view = RichTable("table", "columns", "partitions", "files", "rows", "bytes")
    for d in described:
        cols = ", ".join(f"{c} {t}" for c, t in d["columns"]) or (
            "(no readable files: see the warnings)" if d["warnings"] else "(no files yet)"
        )
        view.add_row(
            d["table"], cols, str(d["partitions"]), str(d["files"]), f"{d['rows']:,}", f"{d['bytes']:,}"
        )
    console.print(view)
    for d in described:
        for line in d["warnings"]:
            err_console.print(f"warning: skipped {line}", markup=False, soft_wrap=True)


def serve(
    port: Annotated[
        int | None,
        typer.Option(
            "--port", metavar="PORT", help="TCP port. Env: TIDELAKE_QUERY__PORT.", show_default="8080"
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="ADDRESS",
            help="Address to bind. Env: TIDELAKE_QUERY__HOST.",
            show_default="127.0.0.1",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            show_default="none on loopback",
            help="Require this bearer token. Off loopback one is required; if none is given, one is generated and printed.",
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            metavar="NAME",
            help="Also serve requests whose Host is this name (repeatable), e.g. a compose service name. "
            "Always: 127.0.0.1, localhost, [::1] and the --host address.",
        ),
    ] = None,
    shard_quotas: Annotated[
        bool,
        typer.Option(
            "--shard-quotas",
            help="Enforce Kinesis Data Streams' per-shard quotas (writes 1 MiB/s or 1,000 records/s, reads "
            "2 MiB/s and 5 calls/s) with ProvisionedThroughputExceededException, to test retry code. "
            "Env: TIDELAKE_QUERY__SHARD_QUOTAS.",
        ),
    ] = False,
    firehose_hook_module: Annotated[
        list[str] | None,
        typer.Option(
            "--firehose-hook-module",
            metavar="MODULE",
            show_default="none",
            help="Let Firehose streams made through the API name transform hooks (LambdaArn "
            "'package.module:function') in this module or package (repeatable). Default: none, so no API "
            "caller can make serve import code. Env: TIDELAKE_QUERY__FIREHOSE_HOOK_MODULES.",
        ),
    ] = None,
    test_routes: Annotated[
        bool,
        typer.Option(
            "--test-routes",
            help="Answer POST /_tidelake/reset (empty every stream, delivery stream, Glue table and the whole "
            "lake) and /_tidelake/flush, for tests (docs/testing.md; the pytest plugin turns them on). "
            "Default: off, so no caller can wipe a demo.",
        ),
    ] = False,
    lake: LakeOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Serve AWS's APIs on one endpoint (Athena; Kinesis Data Streams over Kafka; Firehose, whose
    delivery streams run inside serve and come back when it restarts; Glue's Data Catalog; S3 over
    the lake: boto3 and the AWS CLI work against it) and the web console."""
    import secrets

    import uvicorn

    from core.lake import LAKE_BUCKET
    from queries.api import create_app, is_loopback, known_hosts
    from queries.results import ResultStore
    from queries.s3_api import RESULTS_BUCKET, s3_app, s3_in_front
    from queries.service import QueryService
    from tidelake.aws_endpoint import aws_endpoint
    from tidelake.aws_services import aws_services, connect_athena
    from tidelake.cross_site import CrossSiteWriteGuard
    from tidelake.status import collect_status

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "port": port,
            "host": host,
            "api_token": token,
            "shard_quotas": shard_quotas,
            "firehose_hook_modules": firehose_hook_module,
        }.items()
        if v
    }
    settings = settings_from(lake=lake, bootstrap_servers=bootstrap_servers, query=overrides)
    q = settings.query
    results_dir = settings.query_results_dir()
    api_token = q.api_token
    generated = api_token is None and not is_loopback(q.host)
    if generated:
        # Off loopback, anyone on the network could run queries; like Jupyter, make a token and say it.
        api_token = secrets.token_urlsafe(24)
    hosts = known_hosts(q.host, [*q.allowed_hosts, *(allowed_host or [])])
    with _engine(settings, sessions=q.concurrency) as engine:
        service = QueryService(
            engine,
            ResultStore(results_dir, max_cached_bytes=q.max_cached_result_bytes),
            q.concurrency,
            results_uri=f"s3://{RESULTS_BUCKET}/",  # served by the S3 face below, for PandasCursor and awswrangler
        )
        s3_line = (
            f"S3 (REST; AWS_ENDPOINT_URL_S3=http://{q.host}:{q.port}): buckets {LAKE_BUCKET} (the lake) "
            f"and {RESULTS_BUCKET} (query results, read-only)"
        )
        with aws_services(settings, shard_quotas=q.shard_quotas) as aws:
            connect_athena(aws.glue, engine, service)
            try:
                err_console.print(
                    f"tidelake serve: http://{q.host}:{q.port} (lake {engine.lake}, results {results_dir}); "
                    f"serving Host names: {', '.join(hosts)}\n  " + "\n  ".join([*aws.describe(), s3_line]),
                    soft_wrap=True,
                    markup=False,
                )
                if generated:
                    err_console.print(
                        f"--host {q.host} is reachable from other machines, so the API needs a token; none was "
                        "given (--token or TIDELAKE_QUERY__API_TOKEN), so this run generated one:\n"
                        f"  token:   {api_token}\n"
                        f"  console: http://localhost:{q.port}/?token={api_token}\n"
                        f"  API:     Authorization: Bearer {api_token} (boto3, PyAthena: aws_access_key_id={api_token})",
                        soft_wrap=True,
                        markup=False,
                        highlight=False,
                    )
                # A browser's write from another site is refused first (tidelake.cross_site); then
                # S3 (REST), so that virtual-hosted bucket names reach it; then the JSON services by
                # X-Amz-Target; then Athena, the REST API and the console.
                app = CrossSiteWriteGuard(
                    s3_in_front(
                        s3_app(settings, api_token, hosts),
                        aws_endpoint(
                            create_app(
                                service,
                                api_token,
                                pipeline=lambda: collect_status(settings).to_dict(),
                                allowed_hosts=hosts,
                            ),
                            aws.tables,
                            token=api_token,
                            allowed_hosts=hosts,
                            admin=aws.admin_routes(
                                service, enabled=test_routes
                            ),  # POST /_tidelake/reset and /flush, for tests
                        ),
                    )
                )
                uvicorn.run(app, host=q.host, port=q.port, log_level="warning")
            finally:
                service.close()


def register(app: typer.Typer) -> None:
    """Add `query`, `catalog` and `serve` to the root `tidelake` app."""
    app.command("query")(query)
    app.command("catalog")(catalog)
    app.command("serve")(serve)


def _s(count: int) -> str:
    return "" if count == 1 else "s"
