"""Seeing a thread block, for tests that must act while it waits: no sleep, no private state.

A test that means to wake a waiting thread (``close()`` from another thread) must act once the
thread waits, or it may test the path where it never waited. :func:`watch_blocking` installs a
profile hook (:func:`threading.setprofile`, public) in the threads started while it is active;
the hook notes when a thread enters, and leaves, a blocking call:

* ``Condition.wait`` taking its waiter lock: every ``threading.Event.wait`` and
  ``Condition.wait``. Once a thread is in there it holds the condition's lock until it is
  registered as a waiter, so a ``set()`` or ``notify()`` that comes after wakes it.
* a socket's ``recv`` or ``recv_into``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["Blocking", "watch_blocking"]

_CONDITION_WAIT = threading.Condition.wait.__code__
_SOCKET_READS = {"recv", "recv_into"}


def _blocks(frame: FrameType, function: Any) -> bool:
    """Whether the C call ``function``, made from ``frame``, is one that blocks."""
    name = getattr(function, "__name__", "")
    if name == "acquire":
        return frame.f_code is _CONDITION_WAIT
    return name in _SOCKET_READS and isinstance(getattr(function, "__self__", None), socket.socket)


class Blocking:
    """Which watched threads are in a blocking call now, and how many waits each began."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside: dict[int, bool] = {}
        self._waits: dict[int, int] = {}
        # The frame of each thread's last wait: Condition.wait takes two locks in one wait.
        self._last: dict[int, FrameType] = {}

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            if _blocks(frame, arg):
                ident = threading.get_ident()
                with self._lock:
                    self._inside[ident] = True
                    if self._last.get(ident) is not frame or frame.f_code is not _CONDITION_WAIT:
                        self._last[ident] = frame
                        self._waits[ident] = self._waits.get(ident, 0) + 1
        elif event in ("c_return", "c_exception") and _blocks(frame, arg):
            with self._lock:
                self._inside[threading.get_ident()] = False

    def blocked(self, ident: int | None) -> bool:
        """Whether thread ``ident`` is in a blocking call now (``None``: not known yet)."""
        with self._lock:
            return ident is not None and self._inside.get(ident, False)

    def waits(self, ident: int | None) -> int:
        """How many blocking waits thread ``ident`` has begun so far."""
        with self._lock:
            return 0 if ident is None else self._waits.get(ident, 0)


@contextmanager
def watch_blocking() -> Iterator[Blocking]:
    """Watch the threads started inside the ``with`` block (until they end)."""
    blocking = Blocking()
    threading.setprofile(blocking.hook)
    try:
        yield blocking
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
