"""MemoryBroker: the shared broker contract, and what is particular to one process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

# The shared contract's asserts get pytest's introspection too.
pytest.register_assert_rewrite("tests.broker_contract")

from sse_sync import SSE, MemoryBroker  # noqa: E402

from .broker_contract import BrokerContract, MakeBroker, made_by, take  # noqa: E402


@pytest.fixture
def make_broker() -> Iterator[MakeBroker]:
    """A factory of MemoryBrokers, closed afterwards."""
    yield from made_by(
        lambda history, max_pending, **options: MemoryBroker(
            history, max_pending=max_pending, **options
        )
    )


class TestMemoryBroker(BrokerContract):
    """The contract, in memory."""


def test_ids_carry_a_per_broker_epoch() -> None:
    """Ids are '<epoch>:<seq>'; another broker's id (another worker) is unknown there."""
    one, two = MemoryBroker(), MemoryBroker()
    first = one.publish("x", 1)
    epoch, _, seq = first.partition(":")
    assert seq == "1" and len(epoch) == 8
    assert one.publish("y", 2).endswith(":2")  # one sequence across channels
    two.publish("x", 1)
    with two.subscribe("x", last_event_id=first) as sub:
        assert take(sub, 1)[0].data["reason"] == "unknown"


def test_id_from_the_future_is_unknown() -> None:
    """An id with this broker's epoch but a sequence not issued yet is unknown."""
    broker = MemoryBroker()
    epoch = broker.publish("x", 1).partition(":")[0]
    with broker.subscribe("x", last_event_id=f"{epoch}:99") as sub:
        assert take(sub, 1)[0].data["reason"] == "unknown"


def test_history_is_kept_per_channel() -> None:
    """Each channel keeps its own `history` events, whatever other channels publish."""
    broker = MemoryBroker(history=3, max_pending=1)
    first = broker.publish("quiet", 0)
    for i in range(50):
        broker.publish("busy", i)
    broker.publish("quiet", 1)
    with broker.subscribe("quiet", last_event_id=first) as sub:
        assert [e.data for e in take(sub, 1)] == [1]


@pytest.mark.parametrize(
    ("history", "max_pending", "match"),
    [
        (0, None, "history"),
        (True, None, "history"),
        (10, 11, "max_pending <= history"),
        (10, 0, "max_pending"),
    ],
)
def test_bad_sizes_raise(history: Any, max_pending: Any, match: str) -> None:
    """history must be >= 1 and max_pending between 1 and history."""
    with pytest.raises(ValueError, match=match):
        MemoryBroker(history, max_pending=max_pending)


def test_default_max_pending_is_half_the_history() -> None:
    """max_pending defaults to half the history, at most 1000."""
    assert MemoryBroker(100).max_pending == 50
    assert MemoryBroker(10_000).max_pending == 1000
    assert MemoryBroker(1).max_pending == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_process_has_its_own_broker() -> None:
    """After a fork (gunicorn workers of a preloaded app) the child starts a fresh epoch."""
    code = textwrap.dedent(
        """
        import os, sys
        from sse_sync import MemoryBroker
        broker = MemoryBroker()
        parent_id = broker.publish("x", 1)
        pid = os.fork()
        if pid == 0:
            child_id = broker.publish("x", 2)
            ok = child_id.split(":")[0] != parent_id.split(":")[0] and child_id.endswith(":1")
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.gevent
def test_thousand_subscribers_under_gevent_in_one_process() -> None:
    """Under gevent monkey-patching, 1,000 greenlet subscribers get 100 events in order."""
    code = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        import gevent, time
        from sse_sync import MemoryBroker
        broker = MemoryBroker(history=1000)
        subs = [broker.subscribe("c") for _ in range(1000)]
        got = [[] for _ in subs]
        def reader(i):
            while len(got[i]) < 100:
                events = subs[i].read_events(10)
                if not events:
                    return
                got[i].extend(e.data for e in events)
        readers = [gevent.spawn(reader, i) for i in range(1000)]
        for n in range(100):
            broker.publish("c", n)
            if n % 10 == 0:
                gevent.sleep(0)
        gevent.joinall(readers, timeout=30)
        assert all(g == list(range(100)) for g in got), [len(g) for g in got][:10]
        assert broker.stats()["overflows"] == 0
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_several_channels_replay_in_publish_order() -> None:
    """In memory, a multi-channel replay interleaves channels exactly in publish order."""
    broker = MemoryBroker()
    with broker.subscribe(["a", "b"]) as sub:
        start = sub.read_frames(0)
        assert start is None
        cursor = sub.cursor
    order = ["a1", "b1", "a2", "b2", "b3", "a3"]
    for data in order:
        broker.publish(data[0], data)
    with broker.subscribe(["a", "b"], last_event_id=cursor) as resumed:
        assert [e.data for e in take(resumed, 6)] == order


def test_several_channels_replay_in_publish_order_beyond_a_batch() -> None:
    """A multi-channel replay longer than one read batch still keeps the global publish order."""
    broker = MemoryBroker(history=1000)
    with broker.subscribe(["a", "b"]) as sub:
        assert sub.read_frames(0) is None
        cursor = sub.cursor
    order = [f"a{i}" for i in range(300)] + [f"b{i}" for i in range(300)]
    order += [f"{c}{i}" for i in range(300, 600) for c in "ba"]
    for data in order:
        broker.publish(data[0], data)
    with broker.subscribe(["a", "b"], last_event_id=cursor) as resumed:
        assert [e.data for e in take(resumed, len(order))] == order


def test_unread_subscriptions_keep_no_channel() -> None:
    """Subscribing (even a HEAD request's never-read subscription) creates no channel."""
    broker = MemoryBroker()
    for i in range(1000):
        broker.subscribe(f"rand{i}").close()
    broker.subscribe("never-read")
    assert broker.stats()["channels"] == 0
    broker.publish("kept", 1)
    with broker.subscribe("kept", last_event_id=None) as sub:
        assert sub.read_frames(0) is None
    assert broker.stats()["channels"] == 1  # a channel with history stays, for replay


def test_a_wake_up_that_brings_nothing_does_not_end_a_timed_read_early() -> None:
    """read_events(timeout) woken with nothing new waits on: it returns what comes later."""
    broker = MemoryBroker()
    with broker.subscribe("c") as sub:
        assert sub.read_events(0) is None  # registered, nothing yet
        got: list[Any] = []
        reader = threading.Thread(target=lambda: got.append(sub.read_events(60)))
        reader.start()
        for _ in range(100):  # wake-ups with no event behind them, while the read waits
            sub.notify(0)
            reader.join(0.001)  # a read that ended early ends the loop, and the test fails
        broker.publish("c", "after")
        reader.join(10)
        assert [[e.data for e in events] for events in got] == [["after"]]


def test_sse_max_event_size_configures_the_extension() -> None:
    """SSE_MAX_EVENT_SIZE is the extension's broker's max_event_size; a bigger event raises."""
    app = Flask(__name__)
    app.config["SSE_MAX_EVENT_SIZE"] = 100
    sse = SSE(app)
    with app.app_context():
        sse.publish("small", "x" * 50)
        with pytest.raises(ValueError, match="at most 100 bytes"):
            sse.publish("small", "x" * 100)
    assert SSE(Flask(__name__)).broker.max_event_size == 1024 * 1024
    redis_app = Flask(__name__)
    redis_app.config.update(SSE_BROKER_URL="redis://localhost:1/0", SSE_MAX_EVENT_SIZE=10)
    redis_sse = SSE(redis_app)  # creating a RedisBroker does no I/O
    assert redis_sse.broker.max_event_size == 10
    redis_sse.broker.close()
