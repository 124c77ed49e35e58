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


def _blocks(frame: FrameType, function: Any) -> str | None:
    """What the C call ``function`` from ``frame`` blocks in: ``"wait"``, ``"recv"`` or None."""
    name = getattr(function, "__name__", "")
    if name == "acquire":
        return "wait" if frame.f_code is _CONDITION_WAIT else None
    if name in _SOCKET_READS and isinstance(getattr(function, "__self__", None), socket.socket):
        return "recv"
    return None


class Blocking:
    """Which watched threads are in a blocking call now, and how many waits each began."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside: dict[int, str | None] = {}  # what each thread is blocked in now
        self._waits: dict[int, int] = {}
        # The frame of each thread's last wait: Condition.wait takes two locks in one wait.
        self._last: dict[int, FrameType] = {}

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            kind = _blocks(frame, arg)
            if kind is not None:
                ident = threading.get_ident()
                with self._lock:
                    self._inside[ident] = kind
                    if self._last.get(ident) is not frame or frame.f_code is not _CONDITION_WAIT:
                        self._last[ident] = frame
                        self._waits[ident] = self._waits.get(ident, 0) + 1
        elif event in ("c_return", "c_exception") and _blocks(frame, arg) is not None:
            with self._lock:
                self._inside[threading.get_ident()] = None

    def blocked(self, ident: int | None, kind: str | None = None) -> bool:
        """Whether thread ``ident`` is in a blocking call now (``None``: not known yet).

        :param kind: only in that kind of call: ``"wait"`` (``Condition.wait``) or ``"recv"``.
        """
        with self._lock:
            inside = None if ident is None else self._inside.get(ident)
        return inside is not None and (kind is None or inside == kind)

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
