"""What a fenced block of README.md or docs/*.md is, how a shell session in one reads, and how its
shown output is compared with a real run. Pure functions: no process, no Kafka.

Which blocks run (the rule the docs follow; tests/docs/README.md says it for writers):

- ```` ```python ```` runs as a script; an untagged block right after it is its output.
- ```` ```console ```` (or ``shell``, ``sh``, ``bash``), or any block with a line starting with
  ``$ ``, is a shell session: each ``$ `` line is a command (``\\`` continues it on the next line, a
  ``<<'END'`` here-document runs to its ``END`` line), and the lines up to the next ``$ `` are its
  output.
- A block with a line starting with ``make `` or ``docker `` holds commands too, written without
  ``$``: it cannot run in the suite and must say so (below).
- Every other block (diagrams, synopses, configs, sample records, SQL fragments) is not a command
  and is not run.

A command block that cannot run in the suite carries, right before its fence,
``<!-- docs-test: skip, <why, and which test covers it instead> -->``. A command block without a
form that runs and without that note fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SHELL_LANGUAGES = frozenset({"console", "shell", "sh", "bash"})
COMMAND_WORDS = ("make ", "docker ")
ANNOTATION = re.compile(r"<!--\s*docs-test:\s*(?P<text>.*?)\s*-->\s*\Z", re.DOTALL)
HEREDOC = re.compile(r"<<-?\s*['\"]?(?P<word>[A-Za-z_][A-Za-z0-9_]*)['\"]?")


@dataclass(frozen=True)
class Command:
    """One ``$`` command of a shell session and the output the doc shows for it (may be empty)."""

    text: str
    expected: tuple[str, ...]
    line: int  # 1-based line of the `$` in the document

    @property
    def interrupted(self) -> bool:
        """The doc says to stop it with Ctrl-C: it runs until it has caught up, then gets SIGINT."""
        return any("Ctrl-C" in line.partition(" #")[2] for line in self.text.splitlines())


@dataclass(frozen=True)
class Block:
    """A fenced block: its language (the fence's info word), source and the note before it."""

    language: str
    source: str
    line: int  # 1-based line of the opening fence
    note: str | None = None  # the text of a `<!-- docs-test: ... -->` right before the fence
    commands: tuple[Command, ...] = field(default=())

    @property
    def kind(self) -> str:
        """'python', 'shell', 'commands' (commands that cannot run as written) or 'text'."""
        lines = self.source.splitlines()
        if self.language == "python":
            return "python"
        if self.language in SHELL_LANGUAGES or any(line.startswith("$ ") for line in lines):
            return "shell"
        if any(line.startswith(COMMAND_WORDS) for line in lines):
            return "commands"
        return "text"

    @property
    def skip_reason(self) -> str | None:
        """The reason of a `docs-test: skip, REASON` note, or None."""
        if self.note is None:
            return None
        match = re.fullmatch(r"skip,\s*(?P<reason>\S.*)", self.note, re.DOTALL)
        if match is None:
            raise ValueError(
                f"line {self.line}: unknown note <!-- docs-test: {self.note} -->; "
                "the one note is <!-- docs-test: skip, <why, and which test covers it> -->"
            )
        return " ".join(match.group("reason").split())


def note_before(text: str, fence_start: int) -> str | None:
    """The `docs-test` note that ends right before the fence at `fence_start` (blank lines allowed)."""
    match = ANNOTATION.search(text[:fence_start])
    return match.group("text") if match else None


def parse_session(source: str, first_line: int) -> tuple[Command, ...]:
    """The commands of a shell session. `first_line` is the document line of the source's first line."""
    lines = source.splitlines()
    commands: list[Command] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("$ "):
            if commands or not line.strip():
                index += 1
                continue
            raise ValueError(f"line {first_line + index}: output before any `$` command: {line!r}")
        start = index
        text = [line[2:]]
        index += 1
        while text[-1].endswith("\\") and index < len(lines):
            text.append(lines[index])
            index += 1
        heredoc = HEREDOC.search(text[0])
        if heredoc:
            while index < len(lines) and lines[index] != heredoc.group("word"):
                text.append(lines[index])
                index += 1
            text.append(lines[index] if index < len(lines) else heredoc.group("word"))
            index += 1
        expected: list[str] = []
        while index < len(lines) and not lines[index].startswith("$ "):
            expected.append(lines[index])
            index += 1
        while expected and not expected[-1].strip():
            expected.pop()
        commands.append(Command("\n".join(text), tuple(expected), first_line + start))
    return tuple(commands)


# ---- comparing output -------------------------------------------------------------------------
#
# The rules, all of them (both the doc's lines and the real output go through them):
#  1. an ellipsis (`...` or `…`) in a doc line matches any text; a doc line that is only an
#     ellipsis matches any number of lines, none included;
#  2. what the clock decides reads as `<t>`: durations (`0.57 s`, `45 ms`, `up 4 s`), rates
#     (`17,614 events/s`, the `records/s` row) and the JSON keys `seconds`, `rate`, `elapsed_s`,
#     `records_per_s`, `engine_ms`, `queue_ms`, `total_ms`;
#  3. process ids read as `pid <pid>`;
#  4. table layout: runs of spaces, and of a box's horizontal rules, count as one; trailing space
#     is dropped;
#  5. the sandbox's own folders and ports read as the defaults the doc shows (done by the sandbox
#     before comparing: its data home is `~/.local/share`, its broker port 9092, its query server
#     port 8080); a home folder in the doc (`/root`, `/home/NAME`) reads as `~`;
#  6. a line break counts as a space: the terminal wraps at 80 columns, the doc wherever it reads
#     best, and neither changes what was printed.
# Everything else is compared exactly: counts, offsets, file names, rows and bytes.

_CLOCK = [
    (re.compile(r"\d[\d,]*(?:\.\d+)?(?= ?(?:s|ms)\b)"), "<t>"),
    (re.compile(r"\d[\d,]*(?:\.\d+)?(?= events/s\b)"), "<t>"),
    (re.compile(r"(records/s\s*│\s*)\d[\d,]*(?:\.\d+)?"), r"\1<t>"),
    (
        re.compile(r'("(?:seconds|rate|elapsed_s|records_per_s|engine_ms|queue_ms|total_ms)":\s*)[\d.]+'),
        r"\1<t>",
    ),
    (re.compile(r"\bpid \d+"), "pid <pid>"),
    (re.compile(r"(?:/root|/home/[^/\s]+)(?=/|\b)"), "~"),
]
_RULES = re.compile(r"([━─═])\1+")
_SPACES = re.compile(r"[ \t]+")
ELLIPSIS = re.compile(r"\.\.\.|…")


def normalise(line: str) -> str:
    for pattern, replacement in _CLOCK:
        line = pattern.sub(replacement, line)
    line = _RULES.sub(r"\1", line)
    return _SPACES.sub(" ", line).rstrip()


def output_matches(expected: list[str] | tuple[str, ...], actual: list[str]) -> bool:
    """Whether the real output lines match the doc's lines under the rules above."""
    got = " ".join(normalise(line).strip() for line in actual if line.strip())
    pieces = []
    for line in (line for line in expected if line.strip()):
        if line.strip() in ("...", "…"):
            pieces.append(".*?")
        else:
            pieces.append(".*?".join(re.escape(part) for part in ELLIPSIS.split(normalise(line).strip())))
    return re.fullmatch(" ?".join(pieces), got, re.DOTALL) is not None
