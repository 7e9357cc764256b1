"""`python -m bench [NAME ...] [--scale X]`: run benchmarks and record their figures."""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

from bench.harness import BenchContext, Comparison, append_results, bench_broker, console, print_comparisons

#: In the order `make bench` runs them; a module that does not exist yet is reported and skipped.
BENCHMARKS = ["replay", "stream", "flink", "sink", "query", "compaction", "kinesis", "firehose", "stack"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every benchmark's event count")
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks.md")
    args = parser.parse_args(argv)
    names = args.names or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {BENCHMARKS}")

    rows: list[Comparison] = []
    with (
        tempfile.TemporaryDirectory(prefix="tidelake-bench-") as scratch,
        bench_broker(Path(scratch)) as bootstrap,
    ):
        for name in names:
            try:
                module = importlib.import_module(f"bench.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"bench.{name}":
                    raise
                console.print(f"[yellow]bench {name}: not written yet[/]")
                continue
            console.rule(f"bench {name}")
            context = BenchContext(bootstrap, Path(scratch) / name, args.scale)
            context.scratch.mkdir(parents=True, exist_ok=True)
            found = module.run(context)
            print_comparisons(found)
            rows.extend(found)
    if rows:
        console.rule("all benchmarks")
        print_comparisons(rows)
        if not args.no_record:
            append_results(rows)
            console.print("appended to docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
