"""Athena on DuckDB: the catalog, the sandboxed engine, billing, named queries and the HTTP API."""
