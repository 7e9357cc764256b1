"""The `tidelake` commands for replay, generate, agent (producers: how events enter, like Kinesis producers)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from core.topics import CLICKSTREAM_EVENTS
from producers.agent import Agent, AgentCounts
from producers.generator import Generator, GeneratorOptions
from producers.pacing import Pace
from producers.parsing import FORMATS
from producers.records import BAD_TIME, MISSING_KEY
from producers.replay import Replayer, ReplayOptions, ReplaySummary, ensure_topics
from tidelake.commands.options import (
    BootstrapOption,
    JsonOption,
    console,
    err_console,
    print_json,
    settings_from,
)

TopicOption = Annotated[
    str, typer.Option("--topic", "-t", metavar="TOPIC", help="Topic (like a Kinesis stream) to write to.")
]
FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        metavar="FORMAT",
        help=f"Input format: {', '.join(FORMATS)} (auto: by extension, then content).",
    ),
]
TimeFieldOption = Annotated[
    str | None,
    typer.Option(
        "--time-field",
        metavar="FIELD",
        help="CSV/JSONL: field holding the event time.",
        show_default="the first of event_time, timestamp, @timestamp, time, ts, datetime, date",
    ),
]
KeyFieldOption = Annotated[
    str | None,
    typer.Option(
        "--key-field",
        metavar="FIELD",
        help="CSV/JSONL: field used as the key (partition key).",
        show_default="none: Kafka spreads the records",
    ),
]


def _progress(disabled: bool, total: int | None, what: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{what}[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(
            "sent {task.completed:,.0f}  rejected {task.fields[rejected]:,}  {task.fields[rate]:,.0f}/s"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=disabled or not err_console.is_terminal,
        transient=False,
    )


def _progress_callback(progress: Progress, task: TaskID) -> Callable[[int, int], None]:
    """Updates the bar with sent, rejected and the average rate so far."""
    started = time.monotonic()

    def show(sent: int, rejected: int) -> None:
        elapsed = time.monotonic() - started
        progress.update(task, completed=sent, rejected=rejected, rate=sent / elapsed if elapsed else 0.0)

    return show


def _run_until_interrupted(job: Callable[[asyncio.Event], Awaitable[ReplaySummary]]) -> ReplaySummary:
    """Run `job(stop)`; Ctrl-C (SIGINT) or SIGTERM sets `stop`, so the job flushes and returns its summary."""

    async def main() -> ReplaySummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            return await job(stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return asyncio.run(main())


def _report(summary: ReplaySummary, json_out: bool, what: str) -> None:
    if json_out:
        print_json(summary.to_json())
    else:
        stopped = " (interrupted)" if summary.interrupted else ""
        resumed = f" from pass {summary.first_pass}" if summary.first_pass is not None else ""
        console.print(
            f"{what}{stopped}{resumed}: sent {_count(summary.sent, 'event')} to {summary.topic}, rejected "
            f"{summary.rejected:,} (in {summary.topic}.dlq), {summary.seconds:.2f} s, {summary.rate:,.0f} events/s",
            soft_wrap=True,
        )
    if summary.interrupted:
        raise typer.Exit(130)
    if summary.sent == 0 and summary.rejected > 0:
        err_console.print(_all_rejected_hint(summary), markup=False, soft_wrap=True)
        raise typer.Exit(1)


def _count(n: int, noun: str) -> str:
    """`1 event`, `2 events`, `10,000 events`."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


#: The flag to look at when every line was rejected for this reason (records.py's error types).
_FLAG_OF_ERROR = {BAD_TIME: "--time-field", MISSING_KEY: "--key-field"}


def _all_rejected_hint(summary: ReplaySummary) -> str:
    """The error when nothing was sent: the first reject's reason, and the flag it points at."""
    reject = summary.first_reject
    if reject is None:
        return f"error: every line was rejected; see {summary.topic}.dlq and check --format"
    flag = _FLAG_OF_ERROR.get(reject.error_type, "--format")
    return (
        f"error: every line was rejected; the first, line {reject.line_no} ({reject.error_type}): "
        f"{reject.message}. Check {flag}; every rejected line is in {summary.topic}.dlq."
    )


def _count_lines(path: Path) -> int | None:
    try:
        if path.stat().st_size > 512 * 1024 * 1024:
            return None
        with open(path, "rb") as handle:
            return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return None


def replay(
    path: Annotated[Path, typer.Argument(help="Log, CSV or JSONL file to replay (samples in data/).")],
    fmt: FormatOption = "auto",
    time_field: TimeFieldOption = None,
    key_field: KeyFieldOption = None,
    topic: TopicOption = CLICKSTREAM_EVENTS,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", metavar="X", help="Original gaps divided by X.", show_default="1, the original pace"
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", metavar="N", help="Events per second.", show_default=False)
    ] = None,
    max_speed: Annotated[bool, typer.Option("--max-speed", help="As fast as the broker takes them.")] = False,
    loop: Annotated[
        bool, typer.Option("--loop", help="Start again at the end, event time moving on.")
    ] = False,
    rebase_time: Annotated[
        bool, typer.Option("--rebase-time", help="Shift event times so the first is now.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue after what the topic already holds of this file: start at the first pass "
            "whose events are all later than the latest there (new event ids and times), pass 0 if it "
            "holds none, so running again never sends an event twice. Reads the whole file first.",
        ),
    ] = False,
    count: Annotated[
        int | None,
        typer.Option("--count", metavar="N", min=1, help="Stop after this many events.", show_default=False),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            metavar="NAME",
            help="Dataset name in the events' `source` field.",
            show_default="the folder holding SOURCE.md, else the file name",
        ),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    json_out: JsonOption = False,
) -> None:
    """Replay a file into a topic; bad lines go to <topic>.dlq. Ctrl-C flushes and prints the summary."""
    settings = settings_from(bootstrap_servers=bootstrap_servers)
    options = ReplayOptions(
        path,
        topic,
        Pace.from_flags(speed, rate, max_speed),
        fmt,
        time_field,
        key_field,
        loop,
        rebase_time,
        count,
        source,
        resume,
    )
    total = count if count is not None else (None if loop else _count_lines(path))

    async def job(stop: asyncio.Event) -> ReplaySummary:
        with _progress(json_out, total, f"replay {path.name} → {topic}") as progress:
            show = _progress_callback(
                progress, progress.add_task("replay", total=total, rejected=0, rate=0.0)
            )
            return await Replayer(settings, options, on_progress=show, stop=stop).run()

    _report(_run_until_interrupted(job), json_out, "replay")


def generate(
    count: Annotated[
        int, typer.Option("--count", "-n", metavar="N", min=1, help="Events to generate.")
    ] = 10_000,
    rate: Annotated[
        float | None,
        typer.Option("--rate", metavar="N", help="Events per second.", show_default="as fast as possible"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Same seed, same events.")] = 0,
    topic: TopicOption = CLICKSTREAM_EVENTS,
    visitors: Annotated[
        int, typer.Option("--visitors", metavar="N", min=1, help="Distinct human visitors.")
    ] = 1_000,
    bot_share: Annotated[
        float, typer.Option("--bot-share", metavar="SHARE", min=0, max=1, help="Share of visits by crawlers.")
    ] = 0.04,
    hot_key_share: Annotated[
        float,
        typer.Option(
            "--hot-key-share",
            metavar="SHARE",
            min=0,
            max=1,
            help="Share of events from one hot visitor (skew).",
        ),
    ] = 0.0,
    bootstrap_servers: BootstrapOption = None,
    json_out: JsonOption = False,
) -> None:
    """Generate a seeded synthetic clickstream (sessions, dwell times, bots), like the Kinesis Data Generator."""
    settings = settings_from(bootstrap_servers=bootstrap_servers)
    pace = Pace.from_flags(rate=rate, max_speed=rate is None)
    generator = Generator(
        GeneratorOptions(count, seed, visitors=visitors, bot_share=bot_share, hot_key_share=hot_key_share)
    )

    async def job(stop: asyncio.Event) -> ReplaySummary:
        with _progress(json_out, count, f"generate seed {seed} → {topic}") as progress:
            show = _progress_callback(
                progress, progress.add_task("generate", total=count, rejected=0, rate=0.0)
            )
            options = ReplayOptions(None, topic, pace)
            return await Replayer(settings, options, on_progress=show, stop=stop).run(iter(generator))

    _report(_run_until_interrupted(job), json_out, "generate")


def agent(
    path: Annotated[Path, typer.Argument(help="Log file to follow (like the Kinesis Agent's filePattern).")],
    topic: TopicOption = CLICKSTREAM_EVENTS,
    checkpoint: Annotated[
        Path,
        typer.Option("--checkpoint", metavar="FILE", help="JSON file remembering how far the file was sent."),
    ] = Path(".tidelake-agent.checkpoint.json"),
    fmt: FormatOption = "auto",
    time_field: TimeFieldOption = None,
    key_field: KeyFieldOption = None,
    from_end: Annotated[
        bool, typer.Option("--from-end", help="Without a checkpoint, skip what the file holds already.")
    ] = False,
    poll_ms: Annotated[
        int,
        typer.Option("--poll-ms", metavar="MILLISECONDS", min=10, help="How often to look for new lines."),
    ] = 100,
    bootstrap_servers: BootstrapOption = None,
    json_out: JsonOption = False,
) -> None:
    """Follow a growing log like `tail -F` (rotation, truncation) and resume from the checkpoint."""
    settings = settings_from(bootstrap_servers=bootstrap_servers)
    ensure_topics(settings, topic)

    async def job(stop: asyncio.Event) -> AgentCounts:
        shown = [0, 0]

        def show(counts: AgentCounts) -> None:
            if not json_out and (counts.sent, counts.rejected) != tuple(shown):
                err_console.print(f"agent: sent {counts.sent:,}, rejected {counts.rejected:,}")
                shown[:] = [counts.sent, counts.rejected]

        async with Agent(
            settings,
            path,
            topic,
            checkpoint,
            fmt=fmt,
            from_end=from_end,
            poll_interval_s=poll_ms / 1000,
            time_field=time_field,
            key_field=key_field,
        ) as follower:
            return await follower.run(stop, on_poll=show)

    async def main() -> AgentCounts:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await job(stop)

    if not json_out:
        err_console.print(f"following {path} → {topic} (checkpoint {checkpoint}); Ctrl-C to stop")
    counts = asyncio.run(main())
    if json_out:
        print_json(
            {
                "sent": counts.sent,
                "rejected": counts.rejected,
                "rotations": counts.rotations,
                "truncations": counts.truncations,
                "topic": topic,
            }
        )
    else:
        console.print(
            f"agent stopped: sent {_count(counts.sent, 'event')}, rejected {counts.rejected:,}, "
            f"{_count(counts.rotations, 'rotation')}, {_count(counts.truncations, 'truncation')}"
        )


def register(app: typer.Typer) -> None:
    """Add replay, generate and agent to the root `tidelake` app."""
    app.command(rich_help_panel="Producers")(replay)
    app.command(rich_help_panel="Producers")(generate)
    app.command(rich_help_panel="Producers")(agent)


__all__ = ["register"]
