"""The pumps of a program as a graph from `SOURCE_SQL_STREAM_001` to its one output stream.

Pumps may share an input stream (fan-out) and insert into one stream (fan-in, KDA's "several pumps
into one stream": the stream carries the rows of all of them). The graph must have one output
stream (the stream no pump reads: one `--sink-topic` / `--output` today), no cycle, every pump fed
from the source, and at most one windowed pump, reached by one path (each stream before it is
filled by one pump), so that an event gives its window at most one row. A program outside this
shape is refused at the pump that breaks it.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_apps.kda_sql.inputs import SOURCE_STREAM
from stream_apps.kda_sql.plans import PumpPlan
from stream_apps.kda_sql.refusals import SourceText


@dataclass(frozen=True)
class PumpGraph:
    """`readers[stream]`: the pumps reading it, in program order; `output`: the output stream."""

    readers: dict[str, list[PumpPlan]]
    output: str
    grouped: PumpPlan | None
    #: How many pumps the walk from the source followed: each pump once (no path is walked twice).
    visits: int = 0


def build_graph(source: SourceText, plans: list[PumpPlan]) -> PumpGraph:
    readers: dict[str, list[PumpPlan]] = {}
    writers: dict[str, list[PumpPlan]] = {}
    for plan in plans:
        readers.setdefault(plan.from_stream, []).append(plan)
        writers.setdefault(plan.statement.target, []).append(plan)
    if SOURCE_STREAM not in readers:
        raise source.refuse(
            plans[0].statement.offset,
            f"no pump reads {SOURCE_STREAM}",
            f'read the input: FROM "{SOURCE_STREAM}"',
        )
    reached, order, visits = _walk(source, readers)
    unreached = [p for p in plans if p.statement.name not in reached]
    if unreached:
        plan = unreached[0]
        raise source.refuse(plan.statement.offset, f"pump {plan.statement.name} reads {plan.from_stream}, which nothing from {SOURCE_STREAM} fills",
                            "feed every pump from the input stream")  # fmt: skip
    outputs = [s for s in order if s not in readers]
    if len(outputs) > 1:
        second = writers[outputs[1]][0]
        raise source.refuse(second.statement.offset, f"the program has {len(outputs)} output streams ({', '.join(outputs)})",
                            "one output stream per app today: run one app per output (each with its --output)")  # fmt: skip
    grouped = [p for p in plans if p.window is not None]
    if len(grouped) > 1:
        raise source.refuse(grouped[1].statement.offset, "a second windowed pump in one program is not supported yet",
                            "run it as a second app reading the first app's output topic")  # fmt: skip
    if grouped:
        stream = grouped[0].from_stream
        while stream != SOURCE_STREAM:
            if len(writers[stream]) > 1:
                raise source.refuse(grouped[0].statement.offset, f"the windowed pump {grouped[0].statement.name} reads {stream}, which several pumps fill",
                                    "give the window one path from the input (one pump into each stream before it)")  # fmt: skip
            stream = writers[stream][0].from_stream
    return PumpGraph(readers, outputs[0], grouped[0] if grouped else None, visits)


def _walk(source: SourceText, readers: dict[str, list[PumpPlan]]) -> tuple[set[str], list[str], int]:
    """Depth-first from the source, each stream entered once (a stack, no recursion): the pumps
    reached, the streams in the order first reached, and how many pumps were followed. A pump
    into a stream still on the current path (or into the source) closes a cycle and is refused;
    a stream already finished cannot lead back to the path, or the cycle would have been found
    from it, so skipping it refuses exactly what following every path did."""
    reached: set[str] = set()
    order: list[str] = []
    finished: set[str] = set()
    on_path = {SOURCE_STREAM}
    stack = [(SOURCE_STREAM, iter(readers.get(SOURCE_STREAM, [])))]
    visits = 0
    while stack:
        stream, pending = stack[-1]
        plan = next(pending, None)
        if plan is None:
            stack.pop()
            on_path.discard(stream)
            finished.add(stream)
            continue
        visits += 1
        target = plan.statement.target
        if target in on_path or target == SOURCE_STREAM:
            raise source.refuse(plan.statement.offset, f"pump {plan.statement.name} closes a cycle through {target}",
                                "pumps flow from the input stream to an output stream, never back")  # fmt: skip
        reached.add(plan.statement.name)
        if target in finished:
            continue
        order.append(target)
        on_path.add(target)
        stack.append((target, iter(readers.get(target, []))))
    return reached, order, visits
