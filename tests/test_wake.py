"""Waking a waiter: threading.Event without gevent, GeventWake under it (in a subprocess)."""

from __future__ import annotations

import threading

import pytest

from sse_sync._wake import gevent_active, new_wake

from .gevent_process import run_under_gevent


def test_without_gevent_a_wake_is_a_threading_event() -> None:
    """Where gevent has not patched threading, new_wake() gives a plain threading.Event."""
    assert not gevent_active()
    assert isinstance(new_wake(), threading.Event)


GEVENT_WAKE = """
from sse_sync._wake import GeventWake, gevent_active, new_wake

assert gevent_active()
gevent.get_hub()  # a server has its hub running before any request is read
wake = new_wake()
assert isinstance(wake, GeventWake), type(wake)

# A timed wait that nobody ends returns False, not before its timeout.
start = time.monotonic()
assert wake.wait(0.05) is False and not wake.is_set() and not wake.waiting
assert time.monotonic() - start >= 0.04

# set() before the wait: the wait returns at once; clear() resets the flag.
wake.set()
assert wake.is_set() and wake.wait(30) is True
wake.clear()
assert not wake.is_set()

# set() from another greenlet ends a wait that has no timeout, once that wait began.
waiter = gevent.spawn(wake.wait)
until(lambda: wake.waiting)
wake.set()
assert waiter.get(timeout=5) is True
wake.clear()

# set() from a native OS thread, while the greenlet waits, wakes it too.
start_new_thread = monkey.get_original("_thread", "start_new_thread")
native_sleep = monkey.get_original("time", "sleep")
seen = []
def set_once_waiting():
    deadline = time.monotonic() + 5
    while not wake.waiting and time.monotonic() < deadline:
        native_sleep(0.001)
    seen.append(wake.waiting)
    wake.set()
start_new_thread(set_once_waiting, ())
assert wake.wait(30) is True
assert seen == [True], seen
wake.clear()

# A killed waiter leaves nothing behind: the next wait still works.
waiter = gevent.spawn(wake.wait, 30)
until(lambda: wake.waiting)
waiter.kill(block=True, timeout=5)
assert waiter.dead and not wake.waiting
assert wake.wait(0.01) is False

# set() from other threads never loses a wake-up: 300 rounds, each woken by a native thread
# that sets twice (the second set() must not undo the next round's wait).
for _ in range(300):
    wake.clear()
    start_new_thread(lambda: (wake.set(), wake.set()), ())
    assert wake.wait(10) is True
    assert wake.is_set()

# wait(run=...) with the flag already set returns at once and leaves the greenlet to the hub,
# which runs it; no late switch lands in this greenlet while it waits for that.
ran = []
glet = gevent.Greenlet(ran.append, "ran")
wake.set()
assert wake.wait(10, run=glet) is True
assert glet.join(5) is None and glet.dead
assert ran == ["ran"]

# A wake made on a thread of gevent's pool (which may have a hub of its own) is a patched
# Event, which any thread can wait on.
def in_pool():
    gevent.get_hub()
    return type(new_wake()).__name__
assert gevent.get_hub().threadpool.apply(in_pool) != "GeventWake"
print("ok")
"""


@pytest.mark.gevent
def test_gevent_wake_times_out_and_is_woken_from_greenlets_and_threads() -> None:
    """Under gevent, a wake times out, and set() from a greenlet or an OS thread ends a wait."""
    run_under_gevent(GEVENT_WAKE)
