"""The documents as tests: every command block of README.md and docs/*.md runs against a real broker,
its output compared where the doc shows it (rules: tests/docs/markdown_blocks.py and README.md here).

Sybil (https://sybil.readthedocs.io) reads the Markdown and makes one pytest item per block, in
document order, with one namespace per document; the blocks are evaluated here. The documents live
outside `tests/`, so `documents.txt` in this folder is what pytest collects: it names them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sybil import Document, Example, Region, Sybil
from sybil.integration.pytest import SybilFile
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

from core.settings import load_settings
from sinks.config import parse_config
from sinks.stream import DeliveryStream
from tests.docs.markdown_blocks import Block, Command, note_before, output_matches, parse_session
from tests.docs.sandbox import ROOT, Sandbox

#: Documents whose queries read a lake they do not fill themselves get a copy of the sample lake.
SAMPLE_LAKE_DOCUMENTS = frozenset({"README.md", "docs/queries.md"})
INFO_LINE = re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE)
#: An untagged fence right after a Python block's closing fence (no line between) is its output.
OUTPUT_FENCE = re.compile(r"\n```[ \t]*\n(?P<output>.*?)\n```", re.DOTALL)


def _regions(document: Document) -> Iterator[Region]:
    lexer = RawFencedCodeBlockLexer(info_pattern=INFO_LINE)
    for region in lexer(document):
        language = region.lexemes["info"].strip().split(" ")[0]
        source = str(region.lexemes["source"])
        line = document.text.count("\n", 0, region.start) + 1
        block = Block(language, source, line, note_before(document.text, region.start))
        if block.kind == "text":
            continue
        if block.kind == "shell":
            block = Block(language, source, line, block.note, parse_session(source, line + 1))
        if block.kind == "python" and (shown := OUTPUT_FENCE.match(document.text, region.end)):
            block = Block(
                language, source, line, block.note, (Command("", tuple(shown["output"].splitlines()), line),)
            )
        yield Region(region.start, region.end, block, _evaluate)


def _evaluate(example: Example) -> str | None:
    block: Block = example.parsed
    reason = block.skip_reason
    if reason is not None:
        for path in re.findall(r"tests/[\w/]+\.py", reason):
            assert (ROOT / path).is_file(), f"line {block.line}: the note names {path}, which does not exist"
        return None
    if block.kind == "commands":
        return (
            f"line {block.line}: this block holds commands a reader runs, written without `$`; write them "
            "as a `$` session that the suite runs, or put <!-- docs-test: skip, <why, and which test "
            "covers it> --> right before it"
        )
    sandbox: Sandbox = example.namespace["docs_sandbox"]
    if block.kind == "python":
        return _run_python(sandbox, block)
    failures = [failure for command in block.commands if (failure := _run_command(sandbox, command))]
    return "\n\n".join(failures) or None


def _run_python(sandbox: Sandbox, block: Block) -> str | None:
    code = sandbox.prepare(block.source)
    result = subprocess.run(
        [sys.executable, "-"], input=code, cwd=sandbox.work, env=sandbox.env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return f"line {block.line}: the Python block failed (exit {result.returncode}):\n{result.stdout}"
    shown = sandbox.to_doc(result.stdout).splitlines()
    if block.commands and not output_matches(block.commands[0].expected, shown):
        return (
            f"line {block.line}: the Python block printed other output than the doc shows after it.\n"
            "--- the doc\n" + "\n".join(block.commands[0].expected) + "\n--- the run\n" + "\n".join(shown)
        )
    return None


def _run_command(sandbox: Sandbox, command: Command) -> str | None:
    text = sandbox.prepare(command.text)
    if "$?" in text:  # each command is its own bash: give it the exit status of the one before
        text = f"(exit {sandbox.last_status}); {text}"
    if command.interrupted:
        returncode, output = sandbox.run_until_caught_up(text)
        ok_codes = {0, 130}
    else:
        result = sandbox.run(text)
        returncode, output = result.returncode, result.stdout
        ok_codes = {0}
    sandbox.last_status = returncode
    shown = sandbox.to_doc(output).splitlines()
    wants_error = bool(command.expected) and command.expected[0].startswith("error:")
    if wants_error == (returncode in ok_codes):
        return (
            f"line {command.line}: `{command.text}` exited {returncode}"
            f"{' (the doc shows an error)' if wants_error else ''}:\n" + "\n".join(shown)
        )
    if command.expected and not output_matches(command.expected, shown):
        return (
            f"line {command.line}: `{command.text}` printed other output than the doc shows.\n"
            "--- the doc\n" + "\n".join(command.expected) + "\n--- the run\n" + "\n".join(shown)
        )
    return None


DOCS_SYBIL = Sybil(parsers=[_regions], fixtures=["docs_sandbox"])


class DocumentsFile(pytest.File):
    """`documents.txt`: collects the Markdown files it names (globs relative to the checkout)."""

    def collect(self) -> Iterator[pytest.Collector]:
        names = [line.strip() for line in self.path.read_text().splitlines()]
        for pattern in (name for name in names if name and not name.startswith("#")):
            matches = sorted(ROOT.glob(pattern))
            assert matches, f"{self.path.name}: {pattern} names no file"
            for path in matches:
                yield SybilFile.from_parent(self, path=path, sybils=[DOCS_SYBIL])


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name == "documents.txt" and file_path.parent == Path(__file__).parent:
        return DocumentsFile.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session")
def docs_sample_lake(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of the shipped sample (10,000 events of data/zanbil-access-10k) for the documents that
    query one: replayed into a topic of the session's broker and delivered by a real delivery stream
    (one flush of all 10,000 records: the 8 files of docs/sinks.md's run)."""
    lake = tmp_path_factory.mktemp("docs-sample") / "lake"
    topic = f"docs.sample.{uuid.uuid4().hex[:8]}"
    tidelake = str(Path(sys.executable).parent / "tidelake")
    replay = subprocess.run(
        [tidelake, "replay", "data/zanbil-access-10k/access-10k.log", "--max-speed", "--topic", topic,
         "-b", kafka_bootstrap, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    config = parse_config(
        {"name": "docs-sample", "topics": [topic], "dataset": "clickstream_events", "schema": "clickstream",
         "group_id": f"docs-sample-{topic}", "buffer": {"records": 10_000}},
        "docs sample lake",
    )  # fmt: skip
    settings = load_settings(kafka={"bootstrap_servers": kafka_bootstrap}, lake={"root": lake})
    summary = DeliveryStream(config, settings).run(max_records=10_000, max_idle_s=120)
    assert (summary.records_in, summary.rows_written, summary.error_count) == (10_000, 10_000, 0), (
        summary.as_dict()
    )
    return lake


@pytest.fixture(scope="module")
def docs_sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The sandbox of one document (Sybil's pytest items take module-scoped fixtures per document)."""
    document = Path(request.node.path).resolve().relative_to(ROOT).as_posix()
    lake = request.getfixturevalue("docs_sample_lake") if document in SAMPLE_LAKE_DOCUMENTS else None
    # a short root: rich wraps output at 80 columns, and the doc's paths (~/.local/share/...) are short
    root = Path(tempfile.mkdtemp(prefix="tld-"))
    try:
        sandbox = Sandbox(root / "s", document, lake)
        yield sandbox
        sandbox.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
