"""Waking a waiter, under threads and under gevent.

A stream's reader waits on a :class:`Wake`; producers, brokers and ``close()`` set it, from
any thread or greenlet. :func:`new_wake` gives a ``threading.Event``, or under gevent a
:class:`GeventWake`: a cheaper flag that waits on the hub without raising a ``Timeout`` and can
start a producer greenlet at once.

Invariants, and why they hold:

1. A ``set()`` is never lost. ``GeventWake.wait`` publishes its waiter before it reads the flag,
   and ``set()`` sets the flag before it reads the waiter: whichever runs second sees the other.
2. A late wake-up does nothing. Only ``wait`` clears ``_waiter``; a timer or ``set()`` that fires
   after the wait ended switches a ``Waiter`` nobody waits on, or a :class:`_Resume` already spent.
3. ``set()`` from another thread goes through the hub's thread-safe callback, never a direct switch:
   it compares the calling OS thread with the hub's (``Hub.thread_ident``).
4. Nothing is remembered between calls but what cannot change: gevent's functions, imported once
   (:func:`_gevent`). Whether gevent is active is asked each time (:func:`gevent_active`).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

__all__ = ["GeventWake", "Wake", "gevent_active", "new_wake"]


def gevent_active() -> bool:
    """Whether gevent has monkey-patched ``threading`` in this process (never imports gevent).

    Asked each time rather than remembered, as a process may import gevent long before it
    patches (gunicorn's master loads the gevent worker class; the worker patches after the
    fork). Cheap: only ``gevent.monkey`` patches, so where it was never imported nothing is.
    """
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


class Wake(Protocol):
    """A flag that one reader waits on and anyone sets: what ``threading.Event`` offers."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or ``timeout`` seconds passed; whether it was set."""
        ...


def new_wake() -> Wake:
    """A :class:`Wake` for a reader on this thread: ``threading.Event``, or cheaper under gevent."""
    if gevent_active():
        hub = _gevent().get_hub()
        # Only the main thread's hub: a thread of gevent's pool may have a hub too, but the next
        # step of a generator may run on another thread, which a patched Event copes with.
        if hub.main_hub:
            return GeventWake(hub)
    return threading.Event()


class _Gevent(NamedTuple):
    """What a :class:`GeventWake` calls of gevent, all of it public gevent API."""

    #: ``gevent.hub.Waiter``: a one-shot switch into a greenlet waiting in the hub.
    waiter_class: Callable[[Any], Any]
    getcurrent: Callable[[], Any]
    get_hub: Callable[[], Any]
    #: The OS thread's ident (``_thread.get_ident`` before gevent patched it).
    native_ident: Callable[[], int]


@functools.cache
def _gevent() -> _Gevent:
    """gevent's functions a :class:`GeventWake` uses, imported once: only once gevent is active.

    (An import statement per wait would cost more than the wait.)
    """
    from gevent import get_hub, getcurrent, monkey
    from gevent.hub import Waiter

    return _Gevent(Waiter, getcurrent, get_hub, monkey.get_original("_thread", "get_ident"))


class GeventWake:
    """A :class:`Wake` for a greenlet of ``hub``'s thread; ``set()`` from any greenlet or thread.

    An idle stream waits with a timeout every second. gevent's ``Event.wait(timeout)`` arms a
    ``Timeout`` that is raised into the greenlet when it expires; this waits with a plain loop
    timer instead, which costs about half as much. ``wait(run=producer)`` also starts a
    producer greenlet by switching to it at once, rather than behind every callback already
    queued in the hub (such as the set-up of a burst of other requests).
    """

    __slots__ = (
        "_flag",
        "_getcurrent",
        "_hub",
        "_hub_thread",
        "_native_ident",
        "_waiter",
        "_waiter_class",
    )

    def __init__(self, hub: Any) -> None:
        # gevent's functions in slots of their own: looked up here, not per wait or set().
        self._waiter_class, self._getcurrent, _, self._native_ident = _gevent()
        self._hub = hub
        self._hub_thread: int = hub.thread_ident
        self._flag = False
        self._waiter: Any = None  # how to resume the reader waiting now: a Waiter or _Resume

    @property
    def waiting(self) -> bool:
        """Whether a greenlet waits on this now (its wait published; see invariant 1)."""
        return self._waiter is not None

    def set(self) -> None:
        if self._flag:
            return  # a wake-up is on its way, or the reader sees the flag before it waits
        self._flag = True
        # _waiter is only read here, never cleared: from another thread, that could clear the
        # next wait's waiter. The wait clears it; a late switch() on a waiter does nothing.
        waiter = self._waiter
        if waiter is not None:
            loop = self._hub.loop
            native_ident = self._native_ident  # a local: calling a slot directly costs more
            if native_ident() == self._hub_thread:
                loop.run_callback(waiter.switch, True)
            else:
                loop.run_callback_threadsafe(waiter.switch, True)

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None, run: Any = None) -> bool:
        """Wait until set or ``timeout`` seconds passed; whether it was set.

        :param run: a greenlet not started yet, whose parent is the hub and whose ``start()``
            has the hub start it (a producer's), to switch to instead of the hub: it runs at
            once, and the wait goes on when it blocks or ends.
        """
        if run is not None and not self._hub:
            # The hub has not run yet: a greenlet that ended before the wait would start the
            # hub by returning to it. Let the hub start it, as gevent.spawn() does.
            run.start()
            run = None
        # gevent's Waiter (compiled) when this greenlet waits in the hub, the same in Python when
        # it runs another greenlet first (a Waiter can only be waited on in the hub).
        if run is None:
            waiter_class = self._waiter_class  # a local: calling a slot directly costs more
            waiter: Any = waiter_class(self._hub)
        else:
            getcurrent = self._getcurrent
            waiter = _Resume(getcurrent())
        # Published before the flag is read: a set() from another thread sees one or the other.
        self._waiter = waiter
        if self._flag:
            self._waiter = None
            if run is not None:
                waiter.greenlet = None
                run.start()
            return True
        timer = None
        if timeout is not None:
            timer = self._hub.loop.timer(timeout if timeout > 0 else 0.0)
            timer.start(waiter.switch, False)
        try:
            return bool(waiter.get() if run is None else run.switch())
        finally:
            if run is not None:
                waiter.greenlet = None  # a late timer or set() finds nothing to switch to
            self._waiter = None
            if timer is not None:
                timer.close()


class _Resume:
    """Switches a waiting greenlet back in, once; a no-op once its wait is over.

    What gevent's ``Waiter`` does for a greenlet waiting in the hub, for one that switched to
    another greenlet instead (``GeventWake.wait(run=...)``): that greenlet runs until it blocks
    and the hub takes over, and the waiting one resumes only when ``set()`` or its timer calls
    :meth:`switch`.
    """

    __slots__ = ("greenlet",)

    def __init__(self, greenlet: Any) -> None:
        self.greenlet = greenlet

    def switch(self, value: bool) -> None:
        greenlet = self.greenlet
        if greenlet is not None:
            self.greenlet = None
            greenlet.switch(value)
