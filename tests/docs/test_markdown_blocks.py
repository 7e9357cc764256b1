"""The rules that decide which blocks of the docs run and how their output is compared."""

from __future__ import annotations

import pytest

from tests.docs.markdown_blocks import Block, note_before, output_matches, parse_session


def test_a_session_splits_into_commands_with_continuations_heredocs_and_their_output() -> None:
    source = (
        '$ tidelake sink run --topic t \\\n    --max-idle 2 --json\n{"records_in": 5}\n'
        "$ python - <<'PY'\nprint(1)\nPY\n1\n$ tidelake stream run x          # Ctrl-C when it has caught up\n"
        "$ tidelake stream run --source s \\\n    --json  # Ctrl-C when it has caught up\n"
    )
    commands = parse_session(source, first_line=10)
    assert [c.text for c in commands] == [
        "tidelake sink run --topic t \\\n    --max-idle 2 --json",
        "python - <<'PY'\nprint(1)\nPY",
        "tidelake stream run x          # Ctrl-C when it has caught up",
        "tidelake stream run --source s \\\n    --json  # Ctrl-C when it has caught up",
    ]
    assert [c.expected for c in commands] == [('{"records_in": 5}',), ("1",), (), ()]
    assert [c.line for c in commands] == [10, 13, 17, 18]
    assert [c.interrupted for c in commands] == [False, False, True, True]


def test_which_blocks_are_commands() -> None:
    assert Block("console", "$ ls\n", 1).kind == "shell"
    assert Block("", "$ ls\nout\n", 1).kind == "shell"
    assert Block("python", "print(1)\n", 1).kind == "python"
    assert Block("", "make demo   # the demo\n", 1).kind == "commands"
    assert Block("", "tidelake sink run NAME   # synopsis\n", 1).kind == "text"
    assert Block("toml", 'name = "x"\n', 1).kind == "text"


def test_a_skip_note_must_give_a_reason_and_is_the_only_note() -> None:
    text = "Intro.\n\n<!-- docs-test: skip, needs Docker; tests/unit/test_compose.py -->\n```\nmake up\n```\n"
    note = note_before(text, text.index("```"))
    assert Block("", "make up\n", 4, note).skip_reason == "needs Docker; tests/unit/test_compose.py"
    assert note_before("<!-- docs-test: skip, x -->\nA paragraph.\n```", 40) is None
    with pytest.raises(ValueError, match="unknown note"):
        _ = Block("", "make up\n", 4, "maybe later").skip_reason


@pytest.mark.parametrize(
    ("doc", "run", "matches"),
    [
        # what the clock decides
        (
            ["replay: sent 10,000 events, 0.57 s, 17,614 events/s"],
            ["replay: sent 10,000 events, 12.1 s, 826 events/s"],
            True,
        ),
        (
            ["Kafka is ready (pid 3382, ready in 2.3 s)."],
            ["Kafka is ready (pid 16220, ready in 65.9 s)."],
            True,
        ),
        (
            ['{"sent": 10000, "seconds": 1.189, "rate": 8408.8}'],
            ['{"sent": 10000, "seconds": 9.1, "rate": 1098.9}'],
            True,
        ),
        # the counts are not
        (["replay: sent 10,000 events, 0.57 s"], ["replay: sent 9,999 events, 0.57 s"], False),
        # table padding and rules
        (["│ records/s │ 1688.2    │", "┏━━━━┓"], ["│ records/s │ 12.5 │", "┏━━┓"], True),
        # ellipses: within a line, and whole lines
        (["data: …/broker"], ["data: /tmp/x/broker"], True),
        (["first", "...", "last"], ["first", "a", "b", "last"], True),
        (["first", "...", "last"], ["first", "last"], True),
        (["first", "last"], ["first", "extra", "last"], False),
        # line breaks, the terminal's or the doc's
        (
            ["replay: sent 10,000 events (in clickstream.events.dlq), 0.57 s"],
            ["replay: sent 10,000 events (in", "clickstream.events.dlq), 7.2 s"],
            True,
        ),
        (
            ["error: dataset 'x' belongs to", "delivery stream 'y'"],
            ["error: dataset 'x'", "belongs to delivery stream 'y'"],
            True,
        ),
        (["a", "b"], ["b", "a"], False),
        # home folders
        (["data: /root/.local/share/tidelake"], ["data: ~/.local/share/tidelake"], True),
    ],
)
def test_output_rules(doc: list[str], run: list[str], matches: bool) -> None:
    assert output_matches(doc, run) is matches
