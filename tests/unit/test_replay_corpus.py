"""Each file of the replay corpus (tests/data/replay/, see its README.md) parses into exactly the events
and rejects in the JSON file beside it (`<file>.expected.json`).

The expected files were written by the parser and then read line by line against the rules in
docs/producers.md; a change of parsing shows up here as a diff to review, never as a silent update.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from producers.parsing import ParsedFile, parse_file

CORPUS = Path(__file__).resolve().parents[1] / "data" / "replay"
EXPECTED_SUFFIX = ".expected.json"
#: Parse options of the corpus files that need them (the others use the defaults).
OPTIONS: dict[str, dict[str, Any]] = {
    "sensors-bom.csv": {"time_field": "ts", "key_field": "sensor"},
    "pandas-index.csv": {"time_field": "timestamp", "key_field": "item_id"},
    "excel-semicolon.csv": {"time_field": "Datum", "key_field": "Kunde"},
    "readings.tsv": {"key_field": "device"},
    "quoted-multiline.csv": {"time_field": "ts", "key_field": "user"},
    "events.jsonl": {"time_field": "ts", "key_field": "user"},
}


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and p.suffix not in (".json", ".md"))


def as_json(parsed: ParsedFile) -> dict[str, object]:
    """What a parse yields, as plain JSON: records as published (key and value), rejects with why."""
    return {
        "format": parsed.format,
        "source": parsed.source,
        "records": [{"line": r.line_no, "key": r.key, "value": r.payload()} for r in parsed.records],
        "rejects": [
            {
                "line": r.line_no,
                "error_type": r.error_type,
                "message": r.message,
                "raw": r.raw.decode("utf-8", "backslashreplace"),
            }
            for r in parsed.rejects
        ],
    }


def parse_corpus_file(path: Path) -> dict[str, object]:
    return as_json(parse_file(path, **OPTIONS.get(path.name, {})))


def test_every_corpus_file_has_its_expected_events_and_the_readme_names_it() -> None:
    files = corpus_files()
    assert len(files) == 9
    expected = {p.name.removesuffix(EXPECTED_SUFFIX) for p in CORPUS.glob(f"*{EXPECTED_SUFFIX}")}
    assert expected == {p.name for p in files}
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in files if f"`{p.name}`" not in readme] == []
    assert set(OPTIONS) <= {p.name for p in files}


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_file_parses_into_exactly_its_expected_events(path: Path) -> None:
    expected = orjson.loads(path.with_name(path.name + EXPECTED_SUFFIX).read_bytes())
    assert parse_corpus_file(path) == expected


if __name__ == "__main__":  # write the expected files again, then review `git diff` line by line
    for corpus_path in corpus_files():
        written = orjson.dumps(parse_corpus_file(corpus_path), option=orjson.OPT_INDENT_2) + b"\n"
        corpus_path.with_name(corpus_path.name + EXPECTED_SUFFIX).write_bytes(written)
