"""Athena's prepared statements: a named SELECT with `?` parameters, kept per workgroup, run by `EXECUTE`.

    CreatePreparedStatement(StatementName="by_status", WorkGroup="primary",
                            QueryStatement="SELECT * FROM clickstream_events WHERE status = ?")
    StartQueryExecution(QueryString="EXECUTE by_status USING 404", WorkGroup="primary")

Rules from Athena's "SQL syntax for prepared statements" (`PREPARE statement_name FROM statement`,
`EXECUTE statement_name [USING value1 [, value2, ...]]`, `DEALLOCATE PREPARE statement_name`, each
run by StartQueryExecution in the statement's workgroup) and botocore's model (StatementName `[a-zA-Z_][a-zA-Z0-9_@:]{1,256}`):
a statement belongs to one workgroup and is found only from it; its name is unique there. The
values of `USING` are literals (see `queries.athena_params`); a `?` among them takes the next of the
execution's ExecutionParameters, and `EXECUTE name` with no `USING` takes the ExecutionParameters
for the statement's own `?`s.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from queries.athena_params import ParameterError, split_values

_EXECUTE = re.compile(
    r"^\s*EXECUTE\s+(?P<name>[A-Za-z_][A-Za-z0-9_@:]*)(\s+USING\s+(?P<using>.+?))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class PreparedStatement:
    name: str
    workgroup: str
    query: str
    description: str = ""
    modified_ms: int = field(default_factory=_now_ms)


_PREPARE = re.compile(
    r"^\s*PREPARE\s+(?P<name>[A-Za-z_][A-Za-z0-9_@:]*)\s+FROM\s+(?P<statement>.+?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_DEALLOCATE = re.compile(
    r"^\s*DEALLOCATE\s+PREPARE\s+(?P<name>[A-Za-z_][A-Za-z0-9_@:]*)\s*;?\s*$", re.IGNORECASE
)


def parse_prepare(sql: str) -> tuple[str, str] | None:
    """(name, statement) of `PREPARE name FROM statement`; None for any other statement."""
    found = _PREPARE.match(sql)
    return (found["name"], found["statement"]) if found else None


def parse_deallocate(sql: str) -> str | None:
    """The name of `DEALLOCATE PREPARE name`; None for any other statement."""
    found = _DEALLOCATE.match(sql)
    return found["name"] if found else None


def parse_execute(sql: str) -> tuple[str, list[str] | None] | None:
    """(statement name, the USING values as written or None) of an `EXECUTE` statement; None for any other."""
    found = _EXECUTE.match(sql)
    if not found:
        return None
    using = found["using"]
    return found["name"], split_values(using) if using is not None else None


def execute_values(using: list[str] | None, execution_parameters: list[str]) -> list[str]:
    """The literal texts for a prepared statement's `?`s: USING's, each `?` there taking the next
    execution parameter; without USING, the execution parameters themselves."""
    if using is None:
        return list(execution_parameters)
    given = iter(execution_parameters)
    values = []
    for value in using:
        if value == "?":
            try:
                value = next(given)
            except StopIteration:
                msg = f"Incorrect number of parameters: expected {using.count('?')} but found {len(execution_parameters)}"
                raise ParameterError(msg) from None
        values.append(value)
    if next(given, None) is not None:
        msg = f"Incorrect number of parameters: expected {using.count('?')} but found {len(execution_parameters)}"
        raise ParameterError(msg)
    return values
