"""`tidelake status`'s windows closed: the apps' own counters, and for an app on Flink (whose
windows live inside Flink) the records of its output topic."""

from __future__ import annotations

from core.admin import TopicInfo
from core.status_board import ProcessStatus
from tidelake.status import PipelineStatus


def _status(*processes: ProcessStatus) -> PipelineStatus:
    topics = [
        TopicInfo("analytics.page-views-1m", 2, (30, 12)),
        TopicInfo("analytics.error-rate-1m", 1, (7,)),
        TopicInfo("analytics.late-events", 1, (5,)),
    ]
    return PipelineStatus("127.0.0.1:9092", "lake", 0.0, True, topics=topics, processes=list(processes))


def test_windows_closed_adds_the_counters_and_a_flink_apps_output_records() -> None:
    engine = ProcessStatus("stream", "error-rate-1m", 1, 0.0, 0.0, {"windows_closed": 4})
    flink = ProcessStatus("stream", "page-views-1m", 2, 0.0, 0.0, {"runtime": "flink", "windows_closed": 0})
    sink = ProcessStatus("sink", "analytics", 3, 0.0, 0.0, {"windows_closed": 99})
    assert _status(engine, flink, sink).windows_closed == 4 + 42
    assert _status(engine).windows_closed == 4
    assert _status().windows_closed == 42 + 7  # no app running: every app's output topic
