"""RedisBroker against a real, private redis-server: the broker contract and Redis specifics."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# The shared contract's asserts get pytest's introspection too.
pytest.register_assert_rewrite("tests.broker_contract")

from sse_sync import RedisBroker, Subscription  # noqa: E402

from .broker_contract import BrokerContract, MakeBroker, datas, made_by, quiet, take  # noqa: E402
from .conftest import wait_until  # noqa: E402

pytestmark = pytest.mark.redis

_prefixes = itertools.count()


@pytest.fixture
def make_broker(redis_server: Any) -> Iterator[MakeBroker]:
    """A factory of RedisBrokers on the private server (each with its own key prefix)."""

    def new(history: int, max_pending: int | None, **options: Any) -> RedisBroker:
        options.setdefault("prefix", f"t{next(_prefixes)}:")
        return RedisBroker.from_url(
            redis_server.url, history=history, max_pending=max_pending, **options
        )

    yield from made_by(new)


class TestRedisBroker(BrokerContract):
    """The contract, through Redis Streams."""


def _client(redis_server: Any) -> Any:
    import redis

    return redis.Redis.from_url(redis_server.url)


@pytest.fixture
def redis_client(redis_server: Any) -> Iterator[Any]:
    """A redis-py client of the private server, closed afterwards."""
    with _client(redis_server) as client:
        yield client


def test_ids_are_stream_ids(make_broker: MakeBroker, redis_client: Any) -> None:
    """publish() XADDs to '<prefix><channel>' and returns the stream id."""
    broker = make_broker(prefix="ids:")
    event_id = broker.publish("chan", {"x": 1}, event="e", retry=10)
    ms, _, seq = event_id.partition("-")
    assert ms.isdigit() and seq.isdigit()
    [(stream_id, fields)] = redis_client.xrange("ids:chan")
    assert stream_id.decode() == event_id
    assert fields == {b"event": b"e", b"data": b'{"x":1}', b"retry": b"10"}


def test_streams_are_capped_at_history(make_broker: MakeBroker, redis_client: Any) -> None:
    """XADD trims with MAXLEN ~ history: the stream stays near the history size."""
    broker = make_broker(history=50, prefix="cap:")
    for i in range(1000):
        broker.publish("c", i)
    length = redis_client.xlen("cap:c")
    assert 50 <= length <= 50 + 100  # '~' trims whole nodes of up to 100 entries


def test_published_elsewhere_reaches_subscribers(make_broker: MakeBroker) -> None:
    """An event published by another broker object (another process) reaches subscribers."""
    publisher = make_broker(prefix="shared:")
    subscriber_side = make_broker(prefix="shared:")
    with subscriber_side.subscribe("x") as sub:
        event_id = publisher.publish("x", "hello")
        [event] = take(sub, 1)
        assert (event.data, event.id) == ("hello", event_id)


def test_replay_beyond_the_process_log_pages_through_xrange(make_broker: MakeBroker) -> None:
    """A resume point older than this process's log is replayed from Redis in pages."""
    publisher = make_broker(history=2000, prefix="page:")
    first = publisher.publish("p", 0)
    for i in range(1, 700):
        publisher.publish("p", i)
    reader = make_broker(history=2000, max_pending=10, prefix="page:")
    assert reader.local_history == 256
    with reader.subscribe("p") as live:
        live.read_frames(0)  # the process now follows "p" from its current end
        with reader.subscribe("p", last_event_id=first) as sub:
            assert datas(take(sub, 699)) == list(range(1, 700))
            publisher.publish("p", 700)
            assert datas(take(sub, 1)) == [700]


def test_one_reader_connection_for_many_subscribers(
    make_broker: MakeBroker, redis_client: Any
) -> None:
    """200 subscriptions over 5 channels use one reader connection, not one per client."""
    broker = make_broker()
    before = len(redis_client.client_list())
    subs = [broker.subscribe(f"ch{i % 5}") for i in range(200)]
    for sub in subs:
        sub.read_frames(0)
    broker.publish("ch0", "x")
    for sub in subs[::5]:
        assert datas(take(sub, 1)) == ["x"]
    connections = len(redis_client.client_list()) - before
    # The reader, and the command pool's: subscribing requests and the reader's unblocker.
    assert 1 <= connections <= 4
    assert broker.stats()["subscribers"] == 200
    for sub in subs:
        sub.close()
    assert broker.stats() == {**broker.stats(), "subscribers": 0, "channels": 0}


def test_live_subscriber_gets_a_reset_when_redis_loses_the_stream(
    make_broker: MakeBroker, redis_server: Any
) -> None:
    """Redis restarted without persistence: a live subscriber gets a 'lost' reset, then live."""
    broker = make_broker(block=0.5)
    with broker.subscribe("r") as sub:
        before = broker.publish("r", "before")
        assert datas(take(sub, 1)) == ["before"]
        redis_server.restart()
        [reset] = take(sub, 1, timeout=15)
        assert (reset.event, reset.id) == ("reset", None)
        assert reset.data == {"channel": "r", "reason": "lost", "lastEventId": before}
        after = broker.publish("r", "after")
        assert [(e.data, e.id) for e in take(sub, 1)] == [("after", after)]
        assert not sub.overflowed and broker.stats()["reconnects"] >= 1


def test_a_channel_without_events_gets_a_reset_after_a_restart(
    make_broker: MakeBroker, redis_server: Any
) -> None:
    """From 0-0 nothing proves a restarted Redis kept what came since: a reset, then live."""
    broker = make_broker(block=0.5)
    with broker.subscribe("fresh") as sub:
        assert sub.read_frames(0) is None
        redis_server.restart()
        [reset] = take(sub, 1, timeout=15)
        assert reset.data == {"channel": "fresh", "reason": "lost", "lastEventId": "0-0"}
        broker.publish("fresh", 1)
        assert datas(take(sub, 1)) == [1]


def test_loss_is_signalled_where_info_is_refused(redis_servers: Callable[..., Any]) -> None:
    """Where INFO is disabled (as some hosted Redis do), streams work and a restart resets."""
    server = redis_servers(args=("--rename-command", "INFO", ""))
    broker = RedisBroker.from_url(server.url, block=0.5)
    try:
        with broker.subscribe("i") as sub:
            first = broker.publish("i", 1)
            assert datas(take(sub, 1)) == [1]
            server.restart()
            [reset] = take(sub, 1, timeout=15)
            assert reset.data == {"channel": "i", "reason": "lost", "lastEventId": first}
            broker.publish("i", 2)
            assert datas(take(sub, 1)) == [2]
    finally:
        broker.close()


def test_a_restart_with_aof_loses_nothing_and_resets_nothing(
    redis_servers: Callable[..., Any],
) -> None:
    """With AOF (fsync always), kill -9 and a restart: live and resumed streams lose nothing."""
    server = redis_servers(aof=True)
    broker = RedisBroker.from_url(server.url, block=0.5)
    try:
        with broker.subscribe("aof") as sub:
            ids = [broker.publish("aof", i) for i in range(5)]
            assert datas(take(sub, 5)) == list(range(5))
            server.kill()
            server.start()
            ids += [broker.publish("aof", i) for i in range(5, 10)]
            assert [(e.data, e.id) for e in take(sub, 5, timeout=15)] == list(
                zip(range(5, 10), ids[5:], strict=True)
            )
            assert quiet(sub)
            assert broker.stats()["reconnects"] >= 1
        with broker.subscribe("aof", last_event_id=ids[2]) as resumed:
            assert datas(take(resumed, 7)) == list(range(3, 10))
    finally:
        broker.close()


def test_resume_from_before_a_restart_resets_after_newer_events(
    make_broker: MakeBroker, redis_server: Any
) -> None:
    """An id from before a restart without persistence gets a reset, though newer ids exist."""
    publisher = make_broker(prefix="gone:")
    old = publisher.publish("g", "lost")
    redis_server.restart()
    publisher.publish("g", "new 1")
    publisher.publish("g", "new 2")
    follower = make_broker(prefix="gone:")
    with follower.subscribe("g") as live:
        live.read_frames(0)  # this process follows "g": its log covers the newer ids
        for broker in (make_broker(prefix="gone:"), follower):
            with broker.subscribe("g", last_event_id=old) as sub:
                [reset] = take(sub, 1)
                assert reset.data == {"channel": "g", "reason": "unknown", "lastEventId": old}
                assert quiet(sub, 0.1)


def test_an_id_between_entries_is_unknown(make_broker: MakeBroker, redis_server: Any) -> None:
    """An id within a followed stream's range that is no entry of it gets a reset."""
    broker = make_broker(prefix="between:")
    with broker.subscribe("b") as live, _client(redis_server) as client:
        live.read_frames(0)
        client.xadd("between:b", {"data": "5"}, id="5-0")
        client.xadd("between:b", {"data": "10"}, id="10-0")
        assert datas(take(live, 2)) == [5, 10]
        with broker.subscribe("b", last_event_id="7-0") as sub:
            assert take(sub, 1)[0].data["reason"] == "unknown"
        with broker.subscribe("b", last_event_id="5-0") as sub:
            assert datas(take(sub, 1)) == [10]


def test_a_reader_that_skipped_trimmed_entries_resets_its_subscribers(
    make_broker: MakeBroker, redis_server: Any
) -> None:
    """500 events added at once to a stream trimmed to 10: subscribers get a reset, not a gap."""
    broker = make_broker(history=10, max_pending=5, prefix="jump:")
    with broker.subscribe("j") as sub:
        first = broker.publish("j", "first")
        assert datas(take(sub, 1)) == ["first"]
        with _client(redis_server) as client:
            pipe = client.pipeline(transaction=True)
            for i in range(500):
                pipe.xadd("jump:j", {"data": str(i)}, maxlen=10, approximate=True)
            pipe.execute()
        [reset] = take(sub, 1)
        assert reset.data == {"channel": "j", "reason": "expired", "lastEventId": first}
        assert quiet(sub, 0.1)
        broker.publish("j", "after")
        assert datas(take(sub, 1)) == ["after"]


def test_a_timed_out_publish_is_retried_without_a_duplicate(
    make_broker: MakeBroker, redis_server: Any
) -> None:
    """Redis stopped mid-publish: TimeoutError, yet stored; a retry with its key adds nothing."""
    import redis

    broker = make_broker(timeout=0.5, prefix="stall:")
    broker.publish("warm", 0, idempotency_key="warm-up")  # Redis has the script now
    with broker.subscribe("s") as sub, _client(redis_server) as client:
        sub.read_frames(0)
        redis_server.pause()
        try:
            with pytest.raises(redis.TimeoutError):
                broker.publish("s", "once", idempotency_key="order-1")
        finally:
            redis_server.resume()
        wait_until(lambda: client.xlen("stall:s") == 1)  # stored, though publish() raised
        [(stored, _)] = client.xrange("stall:s")
        assert broker.publish("s", "once", idempotency_key="order-1") == stored.decode()
        assert client.xlen("stall:s") == 1
        assert [(e.data, e.id) for e in take(sub, 1)] == [("once", stored.decode())]
        assert quiet(sub)


def test_keyed_publish_is_atomic_under_concurrent_retries(make_broker: MakeBroker) -> None:
    """Eight threads publishing with the same key at once store one event and agree on its id."""
    broker = make_broker(prefix="race-key:")
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(broker.publish("k", 1, idempotency_key="x")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 8 and len(set(results)) == 1


def test_redis_down_at_first_read_ends_the_stream(
    make_broker: MakeBroker, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """If Redis is unreachable when a stream starts, the stream ends (the client retries)."""
    broker = make_broker(timeout=1.0)
    sub = broker.subscribe("down")  # Redis is up: this asks where "down" is
    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        assert sub.read_frames(1) == b""
    assert "ending the event stream" in caplog.text


def test_publish_raises_when_redis_is_down(make_broker: MakeBroker, redis_server: Any) -> None:
    """publish() raises redis-py's ConnectionError when Redis cannot be reached."""
    import redis

    broker = make_broker(timeout=1.0)
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        broker.publish("x", 1)


def test_malformed_entries_are_skipped(
    make_broker: MakeBroker, redis_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry with bad fields, added by someone else, is logged and skipped."""
    broker = make_broker(prefix="bad:")
    with broker.subscribe("m") as sub:
        sub.read_frames(0)
        redis_client.xadd("bad:m", {"retry": "soon"})
        with caplog.at_level(logging.WARNING, logger="sse_sync"):
            broker.publish("m", "good")
            assert datas(take(sub, 1)) == ["good"]
        assert "malformed stream entry" in caplog.text


def test_other_language_publishers_can_xadd(make_broker: MakeBroker, redis_client: Any) -> None:
    """A plain XADD with 'event' and 'data' (JSON text) fields is a valid event."""
    broker = make_broker(prefix="xadd:")
    with broker.subscribe("o") as sub:
        sub.read_frames(0)
        redis_client.xadd("xadd:o", {"event": "hi", "data": '{"from": "go"}'})
        [event] = take(sub, 1)
        assert (event.event, event.data) == ("hi", {"from": "go"})


def test_unknown_after_redis_lost_its_data(make_broker: MakeBroker, redis_server: Any) -> None:
    """An id from a stream Redis no longer has is unknown: reset, then live."""
    broker = make_broker()
    event_id = broker.publish("gone", 1)
    redis_server.restart()  # no persistence: the stream is gone
    with broker.subscribe("gone", last_event_id=event_id) as sub:
        assert take(sub, 1)[0].data["reason"] == "unknown"
        broker.publish("gone", 2)
        assert datas(take(sub, 1)) == [2]


def test_many_subscribers_one_channel_all_get_everything(make_broker: MakeBroker) -> None:
    """500 subscriptions read by 10 threads each get all 50 events, in order."""
    broker = make_broker()
    subs = [broker.subscribe("fan") for _ in range(500)]
    for sub in subs:
        sub.read_frames(0)
    for i in range(50):
        broker.publish("fan", i)
    failures: list[BaseException] = []

    def check(group: list[Any]) -> None:
        try:
            for sub in group:
                assert datas(take(sub, 50)) == list(range(50))
                assert quiet(sub, 0)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=check, args=(subs[i::10],)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures[:1]


def test_missing_redis_package_names_the_extra() -> None:
    """Without redis-py installed, RedisBroker says how to install it."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None
        from sse_sync import RedisBroker
        try:
            RedisBroker()
        except ImportError as exc:
            assert str(exc) == (
                "RedisBroker requires the 'redis' package: pip install 'sse_sync[redis]'"
            ), exc
            assert exc.__cause__ is not None
        else:
            raise AssertionError("no ImportError")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_undecodable_entry_does_not_stop_the_reader(
    make_broker: MakeBroker, redis_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry that is not UTF-8 is logged and skipped; the reader goes on for every channel."""
    broker = make_broker(prefix="utf:")
    with broker.subscribe("a") as on_a, broker.subscribe("b") as on_b:
        on_a.read_frames(0)
        on_b.read_frames(0)
        with caplog.at_level(logging.WARNING, logger="sse_sync"):
            redis_client.xadd("utf:a", {"raw": b"\xff\xfe"})
            wait_until(lambda: "malformed stream entry" in caplog.text)
            broker.publish("b", "on b")
            assert datas(take(on_b, 1)) == ["on b"]
            broker.publish("a", "on a")
            assert datas(take(on_a, 1)) == ["on a"]


def test_skipped_entry_is_read_once(
    make_broker: MakeBroker, redis_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed entry at the end of a stream is skipped once, not read again and again."""
    broker = make_broker(prefix="once:")
    with broker.subscribe("s") as sub:
        sub.read_frames(0)
        with caplog.at_level(logging.WARNING, logger="sse_sync"):
            redis_client.xadd("once:s", {"retry": "soon"})
            wait_until(lambda: "malformed stream entry" in caplog.text)
            broker.publish("s", "next")
            assert datas(take(sub, 1)) == ["next"]
        assert caplog.text.count("malformed stream entry") == 1


@pytest.mark.parametrize("fields", [{"raw": b"\xff\xfe"}, {"data": "not json"}, {"retry": "x"}])
def test_malformed_entries_are_skipped_on_replay(
    make_broker: MakeBroker,
    redis_client: Any,
    caplog: pytest.LogCaptureFixture,
    fields: dict[str, Any],
) -> None:
    """Replay from Redis skips (and logs) malformed entries and delivers the good ones."""
    publisher = make_broker(prefix="replay:")
    first = publisher.publish("r", 0)
    redis_client.xadd("replay:r", fields)
    publisher.publish("r", 1)
    redis_client.xadd("replay:r", fields)
    reader = make_broker(prefix="replay:")  # follows nothing yet: replays with XRANGE
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        with reader.subscribe("r", last_event_id=first) as sub:
            assert datas(take(sub, 1)) == [1]
            assert quiet(sub)
            publisher.publish("r", 2)
            assert datas(take(sub, 1)) == [2]
    assert "malformed stream entry" in caplog.text


def test_a_replay_page_of_malformed_entries_is_skipped(
    make_broker: MakeBroker, redis_client: Any
) -> None:
    """A whole XRANGE page of malformed entries is skipped without waiting for a new event."""
    publisher = make_broker(prefix="page-bad:")
    first = publisher.publish("p", 0)
    pipe = redis_client.pipeline()
    for _ in range(300):
        pipe.xadd("page-bad:p", {"retry": "x"})
    pipe.execute()
    publisher.publish("p", 1)
    reader = make_broker(prefix="page-bad:")
    with reader.subscribe("p", last_event_id=first) as sub:
        assert datas(take(sub, 1)) == [1]
        assert quiet(sub)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dead_reader_is_restarted(make_broker: MakeBroker) -> None:
    """If the process's reader has died, the next subscription starts a new one."""
    broker = make_broker(prefix="dead:")
    readers: list[threading.Thread] = []

    class Fatal(Subscription):
        def notify(self, behind: int) -> None:  # what the reader calls: kill it
            readers.append(threading.current_thread())
            raise SystemExit

    with broker.subscribe("x") as first, Fatal(broker, "x", None, broker.max_pending) as fatal:
        first.read_frames(0)
        fatal.read_frames(0)
        broker.publish("x", "kills the reader")
        wait_until(lambda: bool(readers) and not readers[0].is_alive())
        fatal.close()
        with broker.subscribe("x") as second:
            second.read_frames(0)
            broker.publish("x", "hello")
            assert datas(take(first, 2)) == ["kills the reader", "hello"]
            assert datas(take(second, 1)) == ["hello"]


def test_several_channels_replay_in_stream_id_order_beyond_a_batch(
    make_broker: MakeBroker,
) -> None:
    """A multi-channel replay longer than one read batch stays ordered by stream id."""
    broker = make_broker(history=2000, max_pending=1000)
    with broker.subscribe(["a", "b"]) as sub:
        assert sub.read_frames(0) is None
        cursor = sub.cursor
    published = {}
    for channel in "ab":
        for i in range(300):
            published[f"{channel}{i}"] = broker.publish(channel, f"{channel}{i}")

    def key(data: str) -> tuple[int, int]:
        ms, _, seq = published[data].partition("-")
        return int(ms), int(seq)

    with broker.subscribe(["a", "b"], last_event_id=cursor) as resumed:
        got = datas(take(resumed, 600))
    assert sorted(got) == sorted(published)
    assert got == sorted(got, key=key)
