"""`tidelake up` / `down` bookkeeping: a recorded PID is signalled only while it is the same process
(its start time matches), and every port is checked before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.errors import ConfigError
from core.settings import load_settings
from tidelake.cli import app
from tidelake.stack import (
    PortNeed,
    Stack,
    StackProcess,
    StackRecord,
    check_ports,
    running_stream_runtime,
    start_ticks,
)


def _stack(tmp_path: Path) -> Stack:
    settings = load_settings(lake={"root": tmp_path / "lake"}, runtime={"state_dir": tmp_path / "state"})
    return Stack(settings, broker_configured=True)


def test_start_ticks_tell_a_process_from_a_reused_pid() -> None:
    me = start_ticks(os.getpid())
    assert isinstance(me, int)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert start_ticks(child.pid) is None  # reaped: gone


def test_down_never_signals_a_pid_whose_start_time_differs(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        ticks = start_ticks(sleeper.pid)
        assert ticks is not None
        stack = _stack(tmp_path)
        record = StackRecord("127.0.0.1:9", str(tmp_path / "lake"), 8080)
        # the recorded process started one tick earlier: the PID now belongs to another process
        record.processes = [StackProcess("sink-x", ["sink", "run", "x"], sleeper.pid, ticks - 1, "x.log")]
        stack.save(record)
        report = stack.down()
        assert report.reused == [f"sink-x (pid {sleeper.pid})"]
        assert (report.stopped, report.killed) == ([], [])
        assert sleeper.poll() is None  # still running: never signalled
        assert not stack.file.exists()

        # recorded with its own start time, it is stopped
        record.processes = [StackProcess("sink-x", ["sink", "run", "x"], sleeper.pid, ticks, "x.log")]
        stack.save(record)
        assert stack.down().stopped == ["sink-x"]
        assert start_ticks(sleeper.pid) is None  # gone (and reaped by `down`: it was our child)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_a_taken_port_is_named_with_its_holder_and_the_flag_that_moves_it() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            check_ports([PortNeed(port, "the query API and console", "--console-port")])
    me = Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()[:80]
    assert str(caught.value) == (
        f"port {port} (the query API and console) is already in use by pid {os.getpid()} ({me}); "
        "stop it, or choose another port with --console-port"
    )
    assert caught.value.exit_code == 2


def test_two_needs_on_one_port_are_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigError, match=f"port {port} is wanted by both a and b; change --console-port"):
        check_ports([PortNeed(port, "a", "--broker-port"), PortNeed(port, "b", "--console-port")])


def test_up_and_demo_check_every_port_before_starting_anything(tmp_path: Path) -> None:
    """Issue 13: with 8080 busy the demo failed only after starting Kafka and 11 processes."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {
            "TIDELAKE_RUNTIME__STATE_DIR": str(tmp_path / "state"),
            "TIDELAKE_BROKER__DATA_DIR": str(tmp_path / "broker"),
            "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": None,
        }
        for command in ("up", "demo"):
            args = [
                command,
                "--broker-port",
                str(port - 1),
                "--console-port",
                str(port + 5),
                "--lake",
                str(tmp_path / "lake"),
            ]
            handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
            try:
                done = CliRunner().invoke(app, args, env=env)
            finally:  # the demo turns these into KeyboardInterrupt: not in this test process
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
            assert isinstance(done.exception, ConfigError), done.output
            assert done.exception.exit_code == 2
            assert str(done.exception).startswith(
                f"port {port} (the local broker's KRaft controller, --broker-port + 1) is already in use by pid "
                f"{os.getpid()} "
            )
            assert "choose another port with --broker-port" in str(done.exception)
            assert done.output == ""
    assert not (tmp_path / "state").exists()  # no stack recorded
    assert not (tmp_path / "broker").exists()  # no broker started


def test_status_describes_the_running_stacks_kafka_and_lake_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidelake.commands.status import of_running_stack

    monkeypatch.delenv("TIDELAKE_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("TIDELAKE_LAKE__ROOT", raising=False)
    stack = _stack(tmp_path)
    settings = stack.settings
    record = StackRecord("127.0.0.1:19092", str(tmp_path / "demo-lake"), 18080)
    stack.save(record)
    # nothing of the stack runs: the settings stand
    assert of_running_stack(settings, bootstrap_given=False, lake_given=False) is settings

    record.processes = [StackProcess("serve", ["serve"], os.getpid(), start_ticks(os.getpid()), "serve.log")]
    stack.save(record)
    found = of_running_stack(settings, bootstrap_given=False, lake_given=False)
    assert (found.kafka.bootstrap_servers, found.lake.root) == ("127.0.0.1:19092", tmp_path / "demo-lake")
    # a flag, or the environment, wins
    given = of_running_stack(settings, bootstrap_given=True, lake_given=True)
    assert (given.kafka.bootstrap_servers, given.lake.root) == (
        settings.kafka.bootstrap_servers,
        settings.lake.root,
    )
    monkeypatch.setenv("TIDELAKE_LAKE__ROOT", str(tmp_path / "mine"))
    assert of_running_stack(settings, bootstrap_given=False, lake_given=False).lake.root == settings.lake.root


def test_the_stack_runs_its_stream_apps_on_aiokafka_unless_asked_for_faust(tmp_path: Path) -> None:
    settings = load_settings(lake={"root": tmp_path / "lake"}, runtime={"state_dir": tmp_path / "state"})
    streams = [args for name, args in _stack(tmp_path).wanted() if name.startswith("stream-")]
    assert streams[0] == ["stream", "run", "page-views-1m", "--runtime", "aiokafka"]
    assert {tuple(args[3:]) for args in streams} == {("--runtime", "aiokafka")}
    assert len(streams) == 6
    on_faust = Stack(settings, broker_configured=True, stream_runtime="faust")
    assert [a for n, a in on_faust.wanted() if n == "stream-error-rate-1m"] == [
        ["stream", "run", "error-rate-1m", "--runtime", "faust"]
    ]
    with pytest.raises(ConfigError, match="stream runtime 'flink' is unknown; use one of aiokafka, faust"):
        Stack(settings, broker_configured=True, stream_runtime="flink")


def test_a_running_stack_on_another_stream_runtime_is_named_before_anything_starts(tmp_path: Path) -> None:
    """A stack started before --runtime existed has none in its stream apps' arguments: they run on
    aiokafka, and `up --runtime faust` must not start a second set beside them."""
    settings = load_settings(lake={"root": tmp_path / "lake"}, runtime={"state_dir": tmp_path / "state"})
    stack = Stack(settings, broker_configured=True, stream_runtime="faust")
    me, ticks = os.getpid(), start_ticks(os.getpid())
    record = StackRecord("127.0.0.1:9092", str((tmp_path / "lake").resolve()), 8080)
    record.processes = [
        StackProcess("stream-page-views-1m", ["stream", "run", "page-views-1m"], me, ticks, "s.log"),
        StackProcess("serve", ["serve"], me, ticks, "serve.log"),
    ]
    stack.save(record)
    with pytest.raises(ConfigError, match=r"with stream runtime aiokafka \(asked: faust\): stop it first"):
        stack.preflight()
    assert running_stream_runtime(record.processes) == "aiokafka"
    record.processes[0] = StackProcess(
        "stream-page-views-1m", ["stream", "run", "page-views-1m", "--runtime", "faust"], me, ticks, "s.log"
    )
    assert running_stream_runtime(record.processes) == "faust"
    assert running_stream_runtime(record.processes[1:]) is None
