"""What `tidelake demo` does about the events, from the topic and from the lake it will query: it
never replays what the topic holds, and a lake that lacks the topic's events still gets them."""

from __future__ import annotations

import pytest

from tidelake.demo import ReplayPlan, plan_replay


@pytest.mark.parametrize("loop", [False, True])
def test_a_first_demo_replays_the_sample(loop: bool) -> None:
    assert plan_replay(0, 0, loop) == ReplayPlan(replay=True, redeliver=False, message="", lake_base=0)


def test_a_second_demo_on_the_same_lake_replays_nothing() -> None:
    plan = plan_replay(10_000, 10_000, False, "lake")
    assert (plan.replay, plan.redeliver, plan.lake_base) == (False, False, 10_000)
    assert plan.message == (
        "clickstream.events already holds 10,000 events from an earlier demo and lake holds 10,000. "
        "Not replaying again (the lake keeps them). Use --fresh to start from nothing."
    )


def test_a_second_demo_with_loop_continues_after_what_the_topic_holds() -> None:
    plan = plan_replay(10_000, 10_000, True, "lake")
    assert (plan.replay, plan.redeliver, plan.lake_base) == (True, False, 10_000)
    assert plan.message.endswith("--loop: replaying after them, with new event ids and later event times.")


def test_a_new_lake_gets_the_topics_delivered_again_not_replayed() -> None:
    """A second checkout on the same machine: the broker (per user) held 10,000 events, this
    checkout's lake none; the demo said 'the lake keeps them' and every query had no rows."""
    plan = plan_replay(10_000, 0, False, "/home/me/other/lake")
    assert (plan.replay, plan.redeliver, plan.lake_base) == (False, True, 10_000)
    assert plan.message == (
        "clickstream.events already holds 10,000 events from an earlier demo but /home/me/other/lake holds "
        "none of them: the delivery streams deliver the topics again from their start into this lake. "
        "Not replaying again. Use --fresh to start from nothing."
    )


def test_a_new_lake_with_loop_gets_the_topics_and_the_next_passes() -> None:
    plan = plan_replay(30_000, 0, True, "lake")
    assert (plan.replay, plan.redeliver, plan.lake_base) == (True, True, 30_000)


@pytest.mark.parametrize("loop", [False, True])
def test_a_lake_whose_events_the_broker_lost_is_not_replayed_into_twice(loop: bool) -> None:
    plan = plan_replay(0, 10_000, loop, "lake")
    assert (plan.replay, plan.redeliver, plan.lake_base) == (False, False, 10_000)
    assert plan.message == (
        "lake holds 10,000 events but clickstream.events is empty (a new broker?): not replaying, which "
        "would put them in the lake twice; the answers are the lake's. Use --fresh to start from nothing."
    )
