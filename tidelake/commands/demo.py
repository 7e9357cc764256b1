"""`tidelake demo`: `tidelake up`, a replay of the shipped clickstream, then the answers; the stack
keeps running for the console until `tidelake down` (or `--stop`)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from tidelake.commands.options import (
    BootstrapOption,
    JsonOption,
    LakeOption,
    console,
    print_json,
)
from tidelake.commands.stack import (
    DEFAULT_RUNTIME,
    BrokerPortOption,
    StreamRuntimeOption,
    stack_settings,
    summary_lines,
)
from tidelake.demo import DEFAULT_SAMPLE, DEFAULT_SPEED, Answer, Demo, DemoOptions, ReplayPlan, plan_replay
from tidelake.status import PipelineStatus


def _progress_line(status: PipelineStatus, phase: str, began: float) -> str:
    info = status.to_dict()
    lag = sum(g["lag"] for g in info["groups"] if g["group"].startswith("tidelake"))
    return (
        f"[bold]{phase}[/] {time.monotonic() - began:5.1f} s │ events in {info['events_in']:,} │ rejected "
        f"{info['rejected']:,} │ windows closed {info['windows_closed']:,} │ late {info['late_events']:,} │ "
        f"files {info['lake_files']:,} │ lag {lag:,}"
    )


def _answers_table(answer: Answer) -> Table | str:
    title = f"[bold]{answer.name}[/]: {answer.question}"
    if answer.note:
        return f"{title}\n  no rows: {answer.note}"
    table = Table(*answer.columns, title=title, title_justify="left")
    for row in answer.rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    if not answer.rows:
        table.add_row(*(["(no rows)"] + [""] * (len(answer.columns) - 1)))
    return table


def _stop_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP all interrupt the demo the same way: through its `finally`, which
    stops what it started (a background job may inherit SIGINT ignored, and SIGTERM would otherwise
    end the demo at once and orphan its replay)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        speed: Annotated[
            float, typer.Option("--speed", min=0.01, help="Replay at the sample's pace divided by this.")
        ] = DEFAULT_SPEED,
        max_speed: Annotated[
            bool, typer.Option("--max-speed", help="Replay as fast as Kafka takes it.")
        ] = False,
        loop: Annotated[
            bool,
            typer.Option(
                "--loop",
                help="Keep replaying, after what clickstream.events already holds (new event ids, event "
                "time moving on); the answers come after the first pass; the replay keeps going in the "
                "background until `tidelake down`.",
            ),
        ] = False,
        stop: Annotated[
            bool,
            typer.Option(
                "--stop",
                help="Stop everything (`tidelake down`) after the answers instead of leaving it running.",
            ),
        ] = False,
        fresh: Annotated[
            bool,
            typer.Option(
                "--fresh",
                help="Start from nothing: empty lake, empty topics, no app state (a running stack is restarted).",
            ),
        ] = False,
        sample: Annotated[Path, typer.Option("--sample", help="The access log to replay.")] = DEFAULT_SAMPLE,
        console_port: Annotated[
            int,
            typer.Option(
                "--console-port", min=1, max=65535, help="Port of the Athena API and the web console."
            ),
        ] = 8080,
        port: Annotated[
            int | None,
            typer.Option("--port", min=1, max=65535, hidden=True, help="Old name of --console-port."),
        ] = None,
        broker_port: BrokerPortOption = None,
        bootstrap_servers: BootstrapOption = None,
        lake: LakeOption = None,
        runtime: StreamRuntimeOption = DEFAULT_RUNTIME,
        json_out: JsonOption = False,
    ) -> None:
        """Run the whole pipeline on a real clickstream: start it as `tidelake up` does (Kafka, the
        stream apps, the delivery streams, the query server), replay the sample, print the named
        queries' answers, and leave it running for the console, boto3 and `tidelake status`;
        `tidelake down` stops it."""
        _stop_on_signals()
        settings, configured = stack_settings(bootstrap_servers, lake, broker_port)
        options = DemoOptions(
            sample=sample, speed=None if max_speed else speed, loop=loop, fresh=fresh,
            serve_port=port if port is not None else console_port, stream_runtime=runtime.value,
        )  # fmt: skip
        demo = Demo(settings, options, broker_configured=configured)
        say = (lambda *_: None) if json_out else console.print
        answered = False
        try:
            running = demo.preflight()  # a taken port: exit 2 before anything starts
            if fresh and running:
                for line in demo.stack.down(keep_broker=True).lines():
                    say(f"--fresh: {line}")
            say(demo.start_broker())
            if fresh:
                demo.reset()
                say("reset: empty lake, topics and app state")
            looping = demo.looping_replay()
            previous = demo.events_already_in()
            plan = plan_replay(previous, demo.events_in_lake(), loop, demo.settings.lake.root)
            if looping is not None:
                plan = ReplayPlan(
                    False, False,
                    f"a looping replay already runs (pid {looping.pid}, started by an earlier demo --loop): "
                    "not starting another; the answers are the lake's as it is now.",
                    0,
                )  # fmt: skip
            if plan.message:
                say(plan.message)
            if plan.redeliver:
                if demo.stack.running():  # the delivery streams must not run while their groups go
                    demo.stack.down(keep_broker=True)
                demo.redeliver()

            def start_replay() -> None:
                if plan.replay:
                    demo.start_replay()
                    pace = "at full speed" if options.speed is None else f"at {options.speed:g}x"
                    say(f"replaying {sample.name} {pace} into clickstream.events ...")

            demo.start_pipeline(say, before_wait=start_replay)
            say(f"{len(demo.stack.pipeline())} processes running (logs in {demo.stack.log_dir})")
            began = demo.began
            summary: dict = {}
            final = None
            with Live(console=console, refresh_per_second=4) if not json_out else nullcontext() as live:

                def show(phase: str) -> Callable[[PipelineStatus], None]:
                    if live is None:
                        return lambda status: None
                    return lambda status: live.update(_progress_line(status, phase, began))

                if looping is not None:
                    pass  # a loop never drains: the answers are the lake's now
                elif loop and plan.replay:
                    # a looping replay never ends: answer once its first pass is in the lake
                    lines = demo.sample_lines()
                    final = demo.watch(
                        lambda s: s.events_in >= previous + lines - s.rejected
                        and demo.raw_rows(s) >= plan.lake_base + lines - s.rejected,
                        options.drain_timeout_s + 3600, show("first pass"),
                    )  # fmt: skip
                else:
                    if plan.replay:
                        demo.watch(lambda s: demo.replay_summary() is not None, 3600 * 24, show("replaying"))
                        summary = demo.replay_summary() or {}
                    expected = plan.lake_base + summary.get("sent", 0)
                    final = demo.watch(demo.drained(expected), options.drain_timeout_s, show("draining"))
            if not json_out:
                console.line()
            answers = demo.answers()
            seconds = time.monotonic() - began
            url = f"http://127.0.0.1:{options.serve_port}/"
            answered = True
            if json_out:
                counts = final.to_dict() if final is not None else {}
                print_json({
                    "replay": summary, "seconds_to_answers": round(seconds, 1), "console": url,
                    "stack": "stopped" if stop else "running",
                    "status": {k: v for k, v in counts.items() if k in ("events_in", "rejected", "windows_closed", "late_events", "lake_files")},
                    "answers": {a.name: [list(map(str, r)) for r in a.rows] for a in answers},
                })  # fmt: skip
            else:
                if summary:
                    first_pass = summary.get("first_pass", 0)
                    resumed = f" (from pass {first_pass}: new event ids and times)" if first_pass else ""
                    say(
                        f"replay: {summary.get('sent', 0):,} sent, {summary.get('rejected', 0):,} rejected in {summary.get('seconds', 0):.1f} s{resumed}"
                    )
                for answer in answers:
                    console.print(_answers_table(answer))
                say(f"answers after {seconds:.0f} s")
        finally:
            if stop or not answered:
                report = demo.stop() if stop else demo.stop_started()
                if report.killed and not json_out:
                    console.print(f"[yellow]had to kill: {', '.join(report.killed)}[/]")
                if stop:
                    say("stopped everything (as `tidelake down` does)")
                elif report.stopped or report.broker:
                    say("stopped what this demo started")
        if not stop:
            if loop:
                say("the replay keeps looping in the background")
            say("the pipeline keeps running:")
            for line in summary_lines(demo.stack):
                say(line)
