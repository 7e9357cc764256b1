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
        ("2019.logs", "t_2019_logs"),
        ("__-.", "t"),
        ("x" * 63, "x" * 63),
    ],
)
def test_dataset_for_topic(topic: str, dataset: str) -> None:
    assert dataset_for_topic(topic) == dataset


def test_every_long_topic_name_gets_its_own_valid_dataset() -> None:
    """A dead-letter stream subscribed by pattern met a 70-character topic and crashed the demo."""
    topics = [
        "test.test_late_and_bad_events_are_routed_and_counted[aiokafka]-c0507922.dlq",
        "test.test_late_and_bad_events_are_routed_and_counted[faust]-c0507922.dlq",
        "Q" * 249,
    ]
    datasets = [dataset_for_topic(t) for t in topics]
    assert [len(d) for d in datasets] == [63, 63, 63]
    assert datasets[0].startswith("test_test_late_and_bad_events_are_routed_and_counted_a_")
    assert len(set(datasets)) == 3
    assert all(check_dataset_name(d) == d for d in datasets)
    assert dataset_for_topic(topics[0]) == datasets[0]  # stable across runs


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
