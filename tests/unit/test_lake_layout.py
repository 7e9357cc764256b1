from pathlib import Path

import pytest

from core.lake import check_dataset_name, dataset_dir, dataset_for_topic, error_dir, is_visible_file


@pytest.mark.parametrize(
    ("topic", "dataset"),
    [
        ("clickstream.events", "clickstream_events"),
        ("analytics.page-views-1m", "page_views_1m"),
        ("analytics.late-events", "late_events"),
        ("clickstream.events.dlq", "clickstream_events_dlq"),
    ],
)
def test_dataset_for_topic(topic: str, dataset: str) -> None:
    assert dataset_for_topic(topic) == dataset


@pytest.mark.parametrize("bad", ["", "../etc", "Page", "a/b", "_errors", "1abc", "x" * 64])
def test_bad_dataset_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        check_dataset_name(bad)


def test_paths() -> None:
    root = Path("/lake")
    assert dataset_dir(root, "page_views") == Path("/lake/page_views")
    assert error_dir(root, "page_views", "format-conversion-failed") == Path(
        "/lake/_errors/page_views/format-conversion-failed"
    )
    assert is_visible_file(Path("/lake/x/part-0.parquet"))
    assert not is_visible_file(Path("/lake/x/.part-0.parquet.tmp"))
