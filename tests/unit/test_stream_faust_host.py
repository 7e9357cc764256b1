"""The Faust host's own logic that needs no broker."""

from types import SimpleNamespace

from stream_apps.faust_windows import bootstrap_of, unread


def test_faust_host_passes_each_unread_offset_once() -> None:
    offsets = [3, 4, 5, 5, 6, 4, 7]  # a re-fetch after a seek can repeat records, even in one batch
    messages = [SimpleNamespace(offset=o) for o in offsets]
    assert [m.offset for m in unread(messages, 4)] == [4, 5, 6, 7]
    assert [m.offset for m in unread(messages, 0)] == [3, 4, 5, 6, 7]


def test_faust_host_reads_the_bootstrap_servers_from_the_apps_broker_setting() -> None:
    import faust

    app = faust.App("bootstrap-test", broker="kafka://10.0.0.1:9093;kafka://10.0.0.2", web_enabled=False)
    assert bootstrap_of(app) == "10.0.0.1:9093,10.0.0.2:9092"
