"""The behaviour every broker shares, run against each one by subclassing ``BrokerContract``.

A test module defines a ``make_broker`` fixture (a factory taking ``history``,
``max_pending`` and the broker's other options; :func:`made_by` makes one) and a
``class TestX(BrokerContract)``.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sse_sync import ServerSentEvent, Subscription
from sse_sync._event import encode_data

from .conftest import wait_until

MakeBroker = Callable[..., Any]


def made_by(new: Callable[..., Any]) -> Iterator[MakeBroker]:
    """A ``make_broker`` fixture's body: ``new(history, max_pending, **options)``, each broker
    closed after the test."""
    made: list[Any] = []

    def make(history: int = 1000, max_pending: int | None = None, **options: Any) -> Any:
        broker = new(history, max_pending, **options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


def take(sub: Subscription, count: int, timeout: float = 10.0) -> list[ServerSentEvent]:
    """Read exactly ``count`` events (fail on timeout or end of stream)."""
    events: list[ServerSentEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {len(events)} of {count} events: {events!r}")
        got = sub.read_events(min(left, 0.5))
        if got == []:
            raise AssertionError(f"stream ended after {len(events)} of {count}: {events!r}")
        events.extend(got or [])
    assert len(events) == count, events
    return events


def quiet(sub: Subscription, seconds: float = 0.3) -> bool:
    """Whether nothing at all arrives for ``seconds``."""
    return sub.read_events(seconds) is None


def datas(events: list[ServerSentEvent]) -> list[Any]:
    return [e.data for e in events]


def _collect() -> None:
    """Collect garbage; sockets that earlier tests left to the collector are not ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class Point(BaseModel):
    x: int
    y: float


class BrokerContract:
    """Publish, replay, live delivery, cursors, resets, errors and slow subscribers."""

    def test_publish_returns_the_id_subscribers_see(self, make_broker: MakeBroker) -> None:
        """publish() returns the event's id, and a subscriber gets the event with that id."""
        broker = make_broker()
        with broker.subscribe("prices") as sub:
            first = broker.publish("prices", {"p": 1.5}, event="price")
            second = broker.publish("prices", raw_data="line 1\nline 2")
            events = take(sub, 2)
        assert [e.id for e in events] == [first, second]
        assert events[0].event == "price" and events[0].data == {"p": 1.5}
        assert events[1].raw_data == "line 1\nline 2"

    def test_frames_are_encoded_like_server_sent_event(self, make_broker: MakeBroker) -> None:
        """The wire frames equal ServerSentEvent(...).encode() with the published id."""
        broker = make_broker()
        with broker.subscribe("wire") as sub:
            sub.read_frames(0)  # start: everything below is live
            ids = [
                broker.publish("wire", {"a": [1, "\u2028"]}, event="x", retry=1500),
                broker.publish("wire", raw_data="two\r\nlines"),
                broker.publish("wire", raw_data="", event="empty"),
            ]
            body = b""
            deadline = time.monotonic() + 10
            while body.count(b"\n\n") < 3 and time.monotonic() < deadline:
                body += sub.read_frames(0.5) or b""
        expected = [
            ServerSentEvent(data={"a": [1, "\u2028"]}, event="x", retry=1500, id=ids[0]),
            ServerSentEvent(raw_data="two\r\nlines", id=ids[1]),
            ServerSentEvent(raw_data="", event="empty", id=ids[2]),
        ]
        assert body == b"".join(e.encode() for e in expected)

    def test_live_starts_at_subscribe(self, make_broker: MakeBroker) -> None:
        """Events published after subscribe() and before the first read are delivered."""
        broker = make_broker()
        broker.publish("news", "before")
        with broker.subscribe("news") as sub:
            broker.publish("news", "after")
            assert datas(take(sub, 1)) == ["after"]
            assert quiet(sub)

    def test_replay_after_last_event_id_then_live(self, make_broker: MakeBroker) -> None:
        """A subscriber resuming from an id gets exactly the later events, in order, then live."""
        broker = make_broker()
        ids = [broker.publish("log", i) for i in range(10)]
        with broker.subscribe("log", last_event_id=ids[3]) as sub:
            replayed = take(sub, 6)
            assert datas(replayed) == list(range(4, 10))
            assert [e.id for e in replayed] == ids[4:]
            live = broker.publish("log", 10)
            event = take(sub, 1)[0]
            assert (event.data, event.id) == (10, live)
            assert quiet(sub)

    def test_no_gap_or_duplicate_while_publishing_during_replay(
        self, make_broker: MakeBroker
    ) -> None:
        """Resuming while another thread publishes yields every number exactly once, in order."""
        broker = make_broker(history=5000, max_pending=2500)
        first = broker.publish("race", 0)
        stop = threading.Event()
        published: list[int] = []

        def publisher() -> None:
            n = 1
            while not stop.is_set() and n < 2000:
                broker.publish("race", n)
                published.append(n)
                n += 1
                if n % 50 == 0:
                    time.sleep(0.001)

        thread = threading.Thread(target=publisher)
        thread.start()
        try:
            with broker.subscribe("race", last_event_id=first) as sub:
                seen: list[int] = []
                deadline = time.monotonic() + 20
                while (thread.is_alive() or len(seen) < len(published)) and (
                    time.monotonic() < deadline
                ):
                    seen.extend(e.data for e in sub.read_events(0.2) or [])
        finally:
            stop.set()
            thread.join(10)
        assert seen == list(range(1, len(published) + 1))

    def test_several_channels_with_one_cursor(self, make_broker: MakeBroker) -> None:
        """One subscription to two channels; its ids are cursors that resume both channels."""
        broker = make_broker()
        events: list[ServerSentEvent] = []
        with broker.subscribe(["a", "b"]) as sub:
            sub.read_frames(0)
            for channel, data in [("a", "a1"), ("b", "b1"), ("a", "a2")]:
                broker.publish(channel, data)
                events += take(sub, 1)
        assert datas(events) == ["a1", "b1", "a2"]
        cursor = events[1].id
        assert cursor is not None and cursor.startswith("a=") and ",b=" in cursor
        assert sub.cursor == events[2].id
        broker.publish("b", "b2")
        broker.publish("a", "a3")
        with broker.subscribe(["b", "a"], last_event_id=cursor) as resumed:
            replayed = datas(take(resumed, 3))
            assert quiet(resumed)
        # In order per channel (across channels Redis orders by stream id: publish time in ms).
        assert [d for d in replayed if d[0] == "a"] == ["a2", "a3"]
        assert [d for d in replayed if d[0] == "b"] == ["b2"]

    def test_cursor_of_several_channels_resumes_one(self, make_broker: MakeBroker) -> None:
        """A single-channel subscription resumes from that channel's part of a cursor."""
        broker = make_broker()
        with broker.subscribe(["a", "b"]) as sub:
            broker.publish("a", 1)
            cursor = take(sub, 1)[0].id
        broker.publish("b", 2)
        broker.publish("a", 3)
        with broker.subscribe("a", last_event_id=cursor) as only_a:
            assert datas(take(only_a, 1)) == [3]
        with broker.subscribe(["a", "c"], last_event_id=cursor) as with_new:
            broker.publish("c", 4)  # "c" is not in the cursor: it starts live
            assert sorted(datas(take(with_new, 2))) == [3, 4]

    def test_expired_id_sends_reset_then_live(self, make_broker: MakeBroker) -> None:
        """An id older than the retained history gets a reset event (no id), then live events."""
        broker = make_broker(history=10, max_pending=5)
        old = broker.publish("feed", 0)
        for i in range(1, 400):
            broker.publish("feed", i)
        with broker.subscribe("feed", last_event_id=old) as sub:
            reset = take(sub, 1)[0]
            assert reset.event == "reset" and reset.id is None
            assert reset.data == {"channel": "feed", "reason": "expired", "lastEventId": old}
            assert quiet(sub)
            live = broker.publish("feed", "new")
            assert [(e.data, e.id) for e in take(sub, 1)] == [("new", live)]

    @pytest.mark.parametrize(
        "given",
        [
            "garbage",
            "1:2:3",
            "a=,b",
            "9999999999999-0",
            "0-99999999999999999999",  # passes a digits check; Redis rejects it
            "18446744073709551615-18446744073709551615",
            "feed=1,feed=2",
            "other=1",
            "bad name=1",
            "x:\u00b2",  # a digit to str.isdigit(), not to int()
        ],
    )
    def test_unknown_id_sends_reset(self, make_broker: MakeBroker, given: str) -> None:
        """An id this broker never issued gets a reset event with reason 'unknown'."""
        broker = make_broker()
        broker.publish("feed", 1)
        with broker.subscribe("feed", last_event_id=given) as sub:
            (reset,) = take(sub, 1)
            assert reset.event == "reset" and reset.data["reason"] == "unknown"
            assert quiet(sub)

    def test_plain_id_for_several_channels_resets_each(self, make_broker: MakeBroker) -> None:
        """A single-channel id cannot resume several channels: each gets a reset."""
        broker = make_broker()
        event_id = broker.publish("a", 1)
        with broker.subscribe(["a", "b"], last_event_id=event_id) as sub:
            resets = take(sub, 2)
        assert sorted(e.data["channel"] for e in resets) == ["a", "b"]

    def test_reset_frame_has_no_id(self, make_broker: MakeBroker) -> None:
        """The reset frame is exactly an 'event: reset' with JSON data and no id line."""
        broker = make_broker()
        with broker.subscribe("x", last_event_id="nope") as sub:
            frame = sub.read_frames(5)
        data = {"channel": "x", "reason": "unknown", "lastEventId": "nope"}
        assert frame == b"event: reset\ndata: " + encode_data(data) + b"\n\n"

    @pytest.mark.parametrize(
        ("args", "kwargs", "error", "match"),
        [
            (("ok", object()), {}, TypeError, "Cannot JSON-encode"),
            (("ok", 1), {"raw_data": "x"}, ValueError, "both"),
            (("ok",), {}, ValueError, "data= or raw_data="),
            (("ok",), {"event": "x"}, ValueError, "data= or raw_data="),
            (("ok",), {"retry": 10}, ValueError, "data= or raw_data="),
            (("ok", 1), {"event": "a\nb"}, ValueError, "CR or LF"),
            (("ok", 1), {"retry": -1}, ValueError, "retry"),
            (("bad name", 1), {}, ValueError, "channel name"),
            (("a,b", 1), {}, ValueError, "channel name"),
            ((b"bytes", 1), {}, TypeError, "channel name"),
        ],
    )
    def test_publish_errors_publish_nothing(
        self,
        make_broker: MakeBroker,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: type[Exception],
        match: str,
    ) -> None:
        """A bad event or channel raises to the publisher and nothing reaches subscribers."""
        broker = make_broker()
        with broker.subscribe("ok") as sub:
            sub.read_frames(0)
            with pytest.raises(error, match=match):
                broker.publish(*args, **kwargs)
            broker.publish("ok", "next")
            assert datas(take(sub, 1)) == ["next"]
            assert quiet(sub, 0.1)

    def test_bad_channel_on_subscribe_raises(self, make_broker: MakeBroker) -> None:
        """subscribe() rejects bad channel names and an empty channel list at once."""
        broker = make_broker()
        with pytest.raises(ValueError, match="channel name"):
            broker.subscribe("no spaces")
        with pytest.raises(ValueError, match="at least one channel"):
            broker.subscribe([])

    def test_concurrent_publishers_lose_nothing(self, make_broker: MakeBroker) -> None:
        """Four threads publishing at once: every subscriber gets all events, ids increasing."""
        broker = make_broker(history=2000, max_pending=1000)
        subs = [broker.subscribe("c") for _ in range(5)]

        def publish(worker: int) -> None:
            for i in range(100):
                broker.publish("c", [worker, i])

        threads = [threading.Thread(target=publish, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for sub in subs:
            events = take(sub, 400)
            for worker in range(4):
                assert [e.data[1] for e in events if e.data[0] == worker] == list(range(100))
            ids = [e.id for e in events]
            assert len(set(ids)) == 400
            sub.close()

    def test_slow_subscriber_is_cut_off_and_resumes(self, make_broker: MakeBroker) -> None:
        """A subscriber more than max_pending behind ends (counted); its cursor replays the rest."""
        broker = make_broker(history=100, max_pending=10)
        fast = broker.subscribe("s")
        slow = broker.subscribe("s")
        fast.read_frames(0)
        slow.read_frames(0)
        ids = [broker.publish("s", i) for i in range(3)]
        assert datas(take(slow, 3)) == [0, 1, 2]
        got_fast: list[Any] = []
        for i in range(3, 40):
            ids.append(broker.publish("s", i))
            got_fast.extend(e.data for e in fast.read_events(0.5) or [])
        while len(got_fast) < 40:
            got_fast.extend(e.data for e in fast.read_events(2) or [])
        assert got_fast == list(range(40))
        assert not fast.overflowed
        assert slow.read_frames(0.1) == b""
        assert slow.overflowed
        assert broker.stats()["overflows"] == 1
        with broker.subscribe("s", last_event_id=slow.cursor) as resumed:
            assert datas(take(resumed, 37)) == list(range(3, 40))
        fast.close()

    def test_timeout_end_and_close(self, make_broker: MakeBroker) -> None:
        """read_frames returns None on timeout and b'' after close(); close is idempotent."""
        broker = make_broker()
        sub = broker.subscribe("t")
        assert sub.read_frames(0.05) is None
        assert broker.stats()["subscribers"] == 1
        sub.close()
        sub.close()
        assert sub.read_frames(1) == b""
        assert sub.read_events(1) == []
        assert broker.stats()["subscribers"] == 0
        assert list(sub) == []

    def test_a_subscription_to_several_channels_counts_once(self, make_broker: MakeBroker) -> None:
        """stats() counts subscriptions, not channels: one stream of three channels is one."""
        broker = make_broker()
        with broker.subscribe(["a", "b", "c"]) as sub:
            sub.read_frames(0)
            assert broker.stats()["subscribers"] == 1
        assert broker.stats()["subscribers"] == 0

    def test_unread_subscription_registers_nothing(self, make_broker: MakeBroker) -> None:
        """A subscription that is never read costs nothing: it is not registered."""
        broker = make_broker()
        broker.subscribe("idle")
        broker.publish("idle", 1)
        assert broker.stats()["subscribers"] == 0

    def test_close_from_another_thread_wakes_reader(self, make_broker: MakeBroker) -> None:
        """close() from another thread ends a read waiting with no timeout."""
        broker = make_broker()
        sub = broker.subscribe("w")
        sub.read_frames(0)
        frames: list[bytes | None] = []

        def read() -> None:
            while True:
                frames.append(sub.read_frames(None))
                if not frames[-1]:
                    return

        reader = threading.Thread(target=read)
        reader.start()
        broker.publish("w", 1)
        wait_until(lambda: len(frames) == 1)  # read: it now waits for the next event
        sub.close()
        reader.join(5)
        assert not reader.is_alive() and frames[1:] == [b""]

    def test_iterating_yields_events_until_closed(self, make_broker: MakeBroker) -> None:
        """Iterating a subscription yields ServerSentEvent objects with their ids."""
        broker = make_broker()
        sub = broker.subscribe("it")
        sub.read_frames(0)
        broker.publish("it", {"n": 1}, event="e")
        event = next(iter(sub))
        assert isinstance(event, ServerSentEvent)
        assert (event.event, event.data) == ("e", {"n": 1})
        assert json.loads(event.encode().split(b"data: ")[1]) == {"n": 1}
        sub.close()
        with pytest.raises(StopIteration):
            next(sub)

    def test_broker_close_ends_subscriptions(self, make_broker: MakeBroker) -> None:
        """Closing the broker ends its subscriptions; publishing afterwards raises."""
        broker = make_broker()
        sub = broker.subscribe("z")
        sub.read_frames(0)
        broker.close()
        assert sub.read_frames(1) == b""
        with pytest.raises(RuntimeError, match="closed"):
            broker.publish("z", 1)

    def test_failing_subscriber_does_not_stop_delivery(
        self, make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A subscriber whose wake-up fails is skipped (logged): the others still get events."""
        broker = make_broker()

        class Broken(Subscription):
            def notify(self, behind: int) -> None:
                raise RuntimeError("boom")

        bad = Broken(broker, "f", None, broker.max_pending)
        good = broker.subscribe("f")
        bad.read_frames(0)
        good.read_frames(0)
        with caplog.at_level(logging.ERROR, logger="sse_sync"):
            for i in range(3):
                broker.publish("f", i)
                assert datas(take(good, 1)) == [i]
        assert "Waking a subscriber of f failed; skipping it" in caplog.text
        good.close()
        bad.close()

    def test_subscriptions_leave_no_channel_behind(self, make_broker: MakeBroker) -> None:
        """Subscriptions to channels nobody publishes on leave nothing behind once closed."""
        broker = make_broker()
        for i in range(200):
            broker.subscribe(f"never{i}").close()
        for i in range(50):
            with broker.subscribe([f"read{i}", f"too{i}"]) as sub:
                assert sub.read_frames(0) is None
        assert broker.stats()["channels"] == 0

    def test_subscribe_after_close_ends_at_once(self, make_broker: MakeBroker) -> None:
        """A subscription made after the broker was closed ends at its first read."""
        broker = make_broker()
        broker.close()
        sub = broker.subscribe("late")
        assert sub.read_events(1) == []
        assert sub.read_frames(1) == b""

    def test_event_data_is_decoded_from_the_wire(self, make_broker: MakeBroker) -> None:
        """Subscribers get the data decoded from the published JSON, as a client does."""
        broker = make_broker()
        with broker.subscribe("d") as single, broker.subscribe(["d", "e"]) as multi:
            single.read_frames(0)
            multi.read_frames(0)
            data = {"n": 1}
            broker.publish("d", data)
            data["n"] = 2
            broker.publish("d", Point(x=1, y=2.5))
            broker.publish("d", raw_data='{"n": 1}')
            for events in take(single, 3), take(multi, 3):
                assert datas(events) == [{"n": 1}, {"x": 1, "y": 2.5}, None]
                assert [e.raw_data for e in events] == [None, None, '{"n": 1}']
                assert events[0].data is not data

    def test_oversized_event_is_refused_before_anything_is_stored(
        self, make_broker: MakeBroker
    ) -> None:
        """An event whose frame exceeds max_event_size raises ValueError; nothing is stored."""
        broker = make_broker(max_event_size=64)
        fits = "x" * (64 - len(b'data: ""\n\n'))  # exactly 64 bytes encoded
        with broker.subscribe("big") as sub:
            sub.read_frames(0)
            with pytest.raises(ValueError, match=r"at most 64 bytes.*got 65 bytes"):
                broker.publish("big", fits + "x")
            with pytest.raises(ValueError, match="max_event_size"):
                broker.publish("big", raw_data="y" * 100, idempotency_key="k")
            event_id = broker.publish("big", fits)
            assert [(e.id, e.data) for e in take(sub, 1)] == [(event_id, fits)]
            assert quiet(sub, 0.1)
        assert broker.stats()["published"] == 1

    def test_default_size_limit_is_one_mib(self, make_broker: MakeBroker) -> None:
        """By default an event of 1 MiB (encoded) is accepted and one byte more is refused."""
        broker = make_broker()
        assert broker.max_event_size == 1024 * 1024
        broker.publish("big", raw_data="x" * (1024 * 1024 - len(b"data: \n\n")))
        with pytest.raises(ValueError, match="1048577 bytes"):
            broker.publish("big", raw_data="x" * (1024 * 1024 - len(b"data: \n\n") + 1))
        with pytest.raises(ValueError, match="max_event_size"):
            broker.publish("big", {"blob": "x" * 50_000_000})  # the trial's 50 MB event
        assert broker.stats()["published"] == 1

    def test_a_retained_event_costs_about_twice_its_size(self, make_broker: MakeBroker) -> None:
        """Each retained event holds its frame and its text once: about 2x its size, not 4x."""
        broker = make_broker(history=100)
        size, count = 200_000, 20
        with broker.subscribe("mem") as sub:
            sub.read_frames(0)
            _collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for i in range(count):
                    broker.publish("mem", raw_data=f"{i:06}" + "x" * (size - 6))
                read = 0
                while read < count:
                    frames = sub.read_frames(5)
                    assert frames, "the events did not come"
                    read += frames.count(b"\n\n")
                    del frames

                def per_event() -> float:
                    _collect()
                    return (tracemalloc.get_traced_memory()[0] - before) / count

                # A Redis reader may still hold its last batch for a moment: wait it out.
                wait_until(lambda: per_event() < 2.2 * size, timeout=5)
                assert per_event() > 1.9 * size
            finally:
                tracemalloc.stop()

    @pytest.mark.parametrize(
        ("options", "error"),
        [
            ({"max_event_size": 0}, ValueError),
            ({"max_event_size": 1.5}, TypeError),
            ({"max_event_size": True}, TypeError),
            ({"idempotency_window": 0}, ValueError),
            ({"idempotency_window": "1"}, TypeError),
        ],
    )
    def test_bad_limits_raise(
        self, make_broker: MakeBroker, options: dict[str, Any], error: type[Exception]
    ) -> None:
        """A max_event_size or idempotency_window that makes no sense raises at once."""
        with pytest.raises(error, match=next(iter(options))):
            make_broker(**options)

    def test_idempotency_key_publishes_once(self, make_broker: MakeBroker) -> None:
        """Publishing again with a key used on the channel returns the first id, adds nothing;
        ``stats()`` counts the events stored, not the repeats."""
        broker = make_broker()
        with broker.subscribe(["orders", "other"]) as sub:
            sub.read_frames(0)
            first = broker.publish("orders", {"n": 1}, idempotency_key="order-1")
            again = broker.publish("orders", {"n": 2}, idempotency_key="order-1")
            elsewhere = broker.publish("other", {"n": 3}, idempotency_key="order-1")
            plain = broker.publish("orders", {"n": 4})
            assert again == first and plain != first  # (ids of two channels may be equal)
            # (Redis orders two channels' events of the same millisecond by channel.)
            events = sorted(take(sub, 3), key=lambda e: e.data["n"])
            assert datas(events) == [{"n": 1}, {"n": 3}, {"n": 4}]
            cursors = [dict(p.split("=") for p in (e.id or "").split(",")) for e in events]
            assert [cursors[0]["orders"], cursors[1]["other"], cursors[2]["orders"]] == [
                first,
                elsewhere,
                plain,
            ]
            assert quiet(sub, 0.2)
        assert broker.stats()["published"] == 3

    def test_idempotency_key_is_forgotten_after_the_window(self, make_broker: MakeBroker) -> None:
        """Once idempotency_window has passed, the same key publishes a new event."""
        broker = make_broker(idempotency_window=0.2)
        first = broker.publish("w", 1, idempotency_key="k")
        wait_until(lambda: broker.publish("w", 2, idempotency_key="k") != first, timeout=5)

    @pytest.mark.parametrize(
        ("key", "error"), [("", ValueError), ("k" * 201, ValueError), (b"k", TypeError)]
    )
    def test_bad_idempotency_key_raises(
        self, make_broker: MakeBroker, key: Any, error: type[Exception]
    ) -> None:
        """An idempotency_key that is not 1 to 200 characters of text raises; nothing is stored."""
        broker = make_broker()
        with pytest.raises(error, match="idempotency_key"):
            broker.publish("k", 1, idempotency_key=key)
        assert broker.stats()["published"] == 0

    def test_any_last_event_id_is_resumed_or_reset(self, make_broker: MakeBroker) -> None:
        """Whatever a client sends as Last-Event-ID, each channel resumes with no gap or resets."""

        # Defined here: the method is shared by the broker test classes, which hypothesis
        # would see as one test run by differing executors.
        @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            broker = make_broker()
            try:
                self._resume_or_reset(broker, data)
            finally:
                broker.close()

        check()

    def _resume_or_reset(self, broker: Any, data: st.DataObject) -> None:
        channels = data.draw(st.sampled_from([["fa"], ["fb"], ["fa", "fb"]]), "channels")
        ids = [broker.publish(c, f"{c}{i}") for i in range(3) for c in ("fa", "fb")]
        position = st.one_of(
            st.text(max_size=40),
            st.from_regex(r"\A[0-9]{1,22}[-:][0-9]{1,22}\Z"),
            st.sampled_from([*ids, "0-0"]),
            st.sampled_from(ids).map(lambda i: i[:-1] + "9"),
        )
        cursor = st.lists(
            st.tuples(st.sampled_from(["fa", "fb", "fc", "f a", ""]), position), max_size=3
        ).map(lambda pairs: ",".join(f"{c}={p}" for c, p in pairs))
        given = data.draw(st.one_of(position, cursor), "last_event_id")
        got: list[ServerSentEvent] = []
        with broker.subscribe(channels, last_event_id=given) as sub:
            sub.read_frames(0)
            for channel in channels:
                broker.publish(channel, f"{channel}-live")
            deadline = time.monotonic() + 10
            while sum(e.data in ("fa-live", "fb-live") for e in got) < len(channels):
                assert time.monotonic() < deadline, got
                events = sub.read_events(0.5)
                assert events != [], f"the stream ended: {got!r}"
                got += events or []
        for channel in channels:
            resets = [e for e in got if e.event == "reset" and e.data["channel"] == channel]
            mine = [e.data for e in got if e.event != "reset" and e.data.startswith(channel)]
            assert mine[-1] == f"{channel}-live"
            if resets:
                assert len(resets) == 1 and resets[0].data["reason"] in ("unknown", "expired")
                assert mine == [f"{channel}-live"]
            else:  # resumed: the end of what was published, with no gap
                published = [f"{channel}{i}" for i in range(3)]
                assert mine[:-1] == published[len(published) - len(mine) + 1 :]
