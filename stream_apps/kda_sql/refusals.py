"""Where in a KDA SQL program something is, and the error that refuses it.

Every refusal names the file, the 1-based line and column, what is not supported, and what to write
instead, e.g. `app.sql:4:12: JOIN is not supported; run one app per input stream`. It is a
ConfigError (exit code 2): nothing runs until the whole program is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError


class SqlRefused(ConfigError):
    """A construct outside the supported subset, a syntax error or a type error, with its position."""

    def __init__(self, where: str, line: int, col: int, what: str, instead: str = "") -> None:
        self.line, self.col = line, col
        text = f"{where}:{line}:{col}: {what}"
        if instead:
            text += f"; {instead}"
        super().__init__(text)


@dataclass(frozen=True)
class SourceText:
    """The program's text and its name (a path, or `<sql>`), for positions in refusals."""

    text: str
    name: str = "<sql>"

    def line_col(self, offset: int) -> tuple[int, int]:
        """Character offset (0-based) -> (line, column), both 1-based."""
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return line, col

    def refuse(self, offset: int, what: str, instead: str = "") -> SqlRefused:
        line, col = self.line_col(offset)
        return SqlRefused(self.name, line, col, what, instead)
