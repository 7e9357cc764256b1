"""The agent against the real broker: growth, rotation, truncation, restart from the checkpoint."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from core.admin import describe_topics
from core.settings import load_settings
from producers.agent import Agent
from producers.checkpoint import Checkpoint
from tests.integration.test_producers_replay import consume

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "tidelake.cli"]


def _line(n: int, second: int = 0) -> bytes:
    return (
        f"198.51.100.{n % 200 + 1} - - [01/Feb/2024:10:{second // 60 % 60:02d}:{second % 60:02d} +0000] "
        f'"GET /page/{n} HTTP/1.1" 200 {100 + n} "-" "Mozilla/5.0 (X11; Linux)"\n'
    ).encode()


def _append(path: Path, numbers: range) -> None:
    with open(path, "ab") as out:
        for n in numbers:
            out.write(_line(n, n))


def _pages(bootstrap: str, topic: str, expected: int) -> list[int]:
    records = consume(bootstrap, topic, expected, timeout_s=30)
    return [int(orjson.loads(r.value)["page"].rsplit("/", 1)[1]) for r in records]


async def _poll(settings, log: Path, topic: str, checkpoint: Path, steps) -> Agent:
    """Run one agent through `steps`: callables (file changes) and the string 'poll'."""
    async with Agent(settings, log, topic, checkpoint) as agent:
        for step in steps:
            if step == "poll":
                await agent.poll()
            else:
                step()
    return agent


@pytest.fixture
def settings(kafka_bootstrap: str):
    return load_settings(kafka={"bootstrap_servers": kafka_bootstrap})


def test_agent_sends_new_complete_lines_and_waits_for_a_partial_one(
    settings, kafka_bootstrap, make_topic, tmp_path
):
    topic = make_topic(partitions=2)
    log = tmp_path / "access.log"
    _append(log, range(0, 5))

    def add_partial() -> None:
        _append(log, range(5, 8))
        with open(log, "ab") as out:
            out.write(_line(8)[:30])  # no newline yet

    def finish_partial() -> None:
        with open(log, "ab") as out:
            out.write(_line(8)[30:])

    agent = asyncio.run(
        _poll(
            settings, log, topic, tmp_path / "cp.json", ["poll", add_partial, "poll", finish_partial, "poll"]
        )
    )
    assert (agent.counts.sent, agent.counts.rejected) == (9, 0)
    assert sorted(_pages(kafka_bootstrap, topic, 9)) == list(range(9))
    position = Checkpoint(tmp_path / "cp.json").load()
    assert (position.offset, position.line_no) == (log.stat().st_size, 9)


def test_agent_follows_rotation_without_losing_the_old_files_last_lines(
    settings, kafka_bootstrap, make_topic, tmp_path
):
    topic = make_topic(partitions=1)
    log = tmp_path / "access.log"
    _append(log, range(0, 10))

    def rotate() -> None:
        _append(log, range(10, 13))  # written just before the rename, not yet read
        log.rename(tmp_path / "access.log.1")
        _append(log, range(13, 20))

    agent = asyncio.run(_poll(settings, log, topic, tmp_path / "cp.json", ["poll", rotate, "poll", "poll"]))
    assert agent.counts.rotations == 1
    assert _pages(kafka_bootstrap, topic, 20) == list(range(20))


def test_agent_restarts_a_truncated_file_from_its_beginning(settings, kafka_bootstrap, make_topic, tmp_path):
    topic = make_topic(partitions=1)
    log = tmp_path / "access.log"
    _append(log, range(0, 10))

    def truncate_and_write() -> None:
        log.write_bytes(b"")
        _append(log, range(100, 103))

    agent = asyncio.run(
        _poll(settings, log, topic, tmp_path / "cp.json", ["poll", truncate_and_write, "poll"])
    )
    assert agent.counts.truncations == 1
    assert _pages(kafka_bootstrap, topic, 13) == [*range(10), 100, 101, 102]


def test_restart_resumes_from_the_checkpoint_with_nothing_lost_or_sent_twice(
    settings, kafka_bootstrap, make_topic, tmp_path
):
    topic = make_topic(partitions=3)
    log = tmp_path / "access.log"
    checkpoint = tmp_path / "state" / "cp.json"
    _append(log, range(0, 40))
    asyncio.run(_poll(settings, log, topic, checkpoint, ["poll"]))
    _append(log, range(40, 55))  # written while the agent is down
    asyncio.run(_poll(settings, log, topic, checkpoint, ["poll"]))
    _append(log, range(55, 60))
    asyncio.run(_poll(settings, log, topic, checkpoint, ["poll"]))
    pages = _pages(kafka_bootstrap, topic, 60)
    assert collections.Counter(pages) == collections.Counter(range(60))


def test_restart_after_a_rotation_while_stopped_finishes_the_rotated_file_first(
    settings, kafka_bootstrap, make_topic, tmp_path
):
    topic = make_topic(partitions=1)
    log = tmp_path / "access.log"
    checkpoint = tmp_path / "cp.json"
    _append(log, range(0, 10))
    asyncio.run(_poll(settings, log, topic, checkpoint, ["poll"]))
    _append(log, range(10, 15))
    log.rename(tmp_path / "access.log.1")
    _append(log, range(15, 25))
    agent = asyncio.run(_poll(settings, log, topic, checkpoint, ["poll"]))
    assert agent.counts.rotations == 1
    assert _pages(kafka_bootstrap, topic, 25) == list(range(25))


def test_agent_run_stops_on_its_event(settings, kafka_bootstrap, make_topic, tmp_path):
    topic = make_topic(partitions=1)
    log = tmp_path / "access.log"
    _append(log, range(0, 3))

    async def main() -> int:
        stop = asyncio.Event()
        polls = []

        def on_poll(counts) -> None:
            polls.append(counts.sent)
            if counts.sent >= 3:
                stop.set()

        async with Agent(settings, log, topic, tmp_path / "cp.json", poll_interval_s=0.01) as agent:
            await asyncio.wait_for(agent.run(stop, on_poll), timeout=30)
        return polls[-1]

    assert asyncio.run(main()) == 3
    assert _pages(kafka_bootstrap, topic, 3) == [0, 1, 2]


def test_cli_agent_follows_until_interrupted_and_reports_json(kafka_bootstrap, make_topic, tmp_path):
    topic = make_topic(partitions=1)
    log = tmp_path / "access.log"
    _append(log, range(0, 4))
    env = {**os.environ, "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap}
    command = [*CLI, "agent", str(log), "--topic", topic, "--checkpoint", str(tmp_path / "cp.json"), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for_records(kafka_bootstrap, topic, 4, process)
        _append(log, range(4, 9))
        _wait_for_records(kafka_bootstrap, topic, 9, process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary == {"sent": 9, "rejected": 0, "rotations": 0, "truncations": 0, "topic": topic}
    assert _pages(kafka_bootstrap, topic, 9) == list(range(9))


def _wait_for_records(bootstrap: str, topic: str, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while describe_topics(bootstrap, [topic])[0].records < count:
        assert process.poll() is None, process.stderr.read() if process.stderr else "agent exited"
        assert time.monotonic() < deadline, f"the agent did not send {count} records within 60 s"
        time.sleep(0.1)
