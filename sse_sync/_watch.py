"""One watcher per process over every idle stream's client socket, and over gunicorn's stop.

An idle stream needs to learn two things without writing: that its client left, and that the
gunicorn worker serving it is stopping. Rather than each stream waking every second to look
(a wake-up per stream per second: 40 % of a core for 20,000 idle streams), :func:`watch` hands
the stream's socket to this process's :class:`SocketWatch`: ONE thread waiting in ``epoll`` on
every watched socket, which wakes a stream (its source's ``wake_reader()``) only when its peer
hung up, and every stream once the worker stops. A stream then sleeps until its next ping.

Where ``epoll`` does not exist (not Linux) :func:`watch` returns a :class:`Watched` that does not
watch (``watching`` is false): the stream polls its socket itself, as before.

Invariants, and why they hold:

1. One watch per process. :func:`watch` looks the watch up by ``os.getpid()``: a child of a fork
   (gunicorn's workers, of a ``--preload`` master) makes its own, with its own epoll instance
   and thread: a thread does not survive a fork, and an inherited epoll instance is shared
   with the parent (its interest list is the parent's too). A stream carried across a fork
   leaves the parent's watch alone (its lock may have been held at the fork).
2. Safe from any thread. The registry (fd -> :class:`Watched`), the epoll instance and the
   running flag change only under ``_lock``, an OS lock (gevent's original under
   gevent), held for dict updates and ``epoll_ctl`` only: never while waiting or waking, so a
   greenlet that takes it blocks its hub for microseconds at most. ``epoll_ctl`` from one
   thread while another waits in ``epoll_wait`` on the same instance is allowed (epoll(7)).
3. No lost wake-up. The mask is level-triggered: a peer that hung up before the socket was
   registered (or re-armed) is reported at once. ``wake_reader()`` is sticky: a source
   consumes it only with a read that returns ``None``, so a wake that comes before the stream
   waits makes its next wait return at once. ``_fired`` is set before the wake and cleared by
   the stream only after it looked at the socket and found the peer there; the entry then is
   disarmed (``EPOLLONESHOT``), so nothing can fire between the look and the clear. (A wake
   that ends a wait when a ping is due anyway is not looked at: the ping is written, and a
   write to a client that left fails, at the latest the second one, as without a watch.)
4. No spin. The mask is ``EPOLLRDHUP | EPOLLONESHOT`` (``EPOLLHUP`` and ``EPOLLERR`` come
   anyway): data a client sends is no event, and an event disarms the entry until the stream
   re-arms it after finding the peer still there. That happens only for a peer that shut down
   its side with data still unread (``peer_closed()`` cannot see past the data, and re-arming
   would fire at once again) or for a stale event (8): a registration is re-armed at most
   ``_MAX_REARMS`` times; after that the stream finds such a client gone by its pings, as a
   per-stream poll would.
5. Drain. Once per round (at most ``_ROUND`` s) the thread looks at this process's gunicorn
   worker; once ``alive`` is false it wakes every stream in the registry, once per worker.
   :meth:`SocketWatch.watch` looks at ``alive`` after it registered a stream, and wakes it
   if false: a registration comes before the sweep (which wakes it) or after it, so after
   ``alive`` turned false (and ``watch`` wakes it). A stream woken looks at ``alive``
   itself and ends.
6. A wake in flight when its stream closes. The thread takes the wakes under the lock and calls
   them after releasing it: a stream closed meanwhile gets its source's ``wake_reader()``
   after ``close()``, which only sets a flag of a closed source (``Producer`` and
   ``Subscription`` allow that from any thread, at any time).
7. The thread ends by itself once nothing was watched for ``_LINGER`` s. It decides so under
   the lock and closes its epoll instance there: a ``watch()`` either finds it running (and
   registers on its epoll) or stopped (and starts a new thread with a new epoll). A process
   where nothing is watched runs no thread; ``import sse_sync`` starts nothing.
8. fd reuse. A stream unwatches in ``close()``, which the server calls before it closes the
   socket (PEP 3333), so the fd still names that socket when it leaves the epoll instance.
   A registration is found by its fd: a new one for the same fd (the socket of a stream whose
   ``close()`` was never called was closed, its fd reused) replaces it, and the old one's
   ``unwatch()`` and re-arm then touch nothing. The kernel drops the closed socket's entry
   itself; an event of it already on its way reaches the new stream as a stale wake (4).
9. Under gevent the thread is a real OS thread (the original ``start_new_thread``), waits in
   the original ``epoll`` (gevent removes ``select.epoll``), takes only the original lock,
   and logs nothing (logging's locks are gevent's). It wakes greenlets only through their
   ``Wake.set()``, which from another thread goes through the hub's thread-safe callback.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from typing import Any

from ._server import ClientConnection, gunicorn_worker
from ._wake import gevent_active

__all__ = ["SocketWatch", "Watched", "watch"]

#: Seconds between two looks at the gunicorn worker: how late a stopping worker is seen.
_ROUND = 1.0
#: Seconds with nothing watched after which the thread ends.
_LINGER = 3.0
#: How many times one registration is re-armed after an event that was no hang-up (see 4).
_MAX_REARMS = 2

_EPOLLRDHUP = getattr(select, "EPOLLRDHUP", 0)
_MASK = _EPOLLRDHUP | getattr(select, "EPOLLONESHOT", 0)


class Watched:
    """One stream's socket, handed to :func:`watch`.

    :attr:`watching` says whether the process's watch wakes the stream: then the stream waits
    for its next ping (or frames) only, and calls :meth:`peer_closed` when woken early.
    Otherwise (no epoll here) the stream polls :meth:`peer_closed` itself, as often as it wants
    to notice a disconnect.
    """

    __slots__ = ("_connection", "_fd", "_fired", "_rearms", "_wake", "_watch", "watching")

    def __init__(
        self,
        connection: ClientConnection,
        wake: Callable[[], None],
        socket_watch: SocketWatch | None = None,
        fd: int = -1,
    ) -> None:
        self._connection = connection
        self._wake = wake
        self._watch = socket_watch
        self._fd = fd
        self._fired = False  # set by the watch's thread, cleared by the stream (invariant 3)
        self._rearms = 0
        #: Whether the watch wakes the stream (else it must poll :meth:`peer_closed` itself).
        self.watching = False

    def peer_closed(self) -> bool:
        """Whether the client closed the connection; re-arms the watch if it fired for nothing."""
        if self._connection.peer_closed():
            return True
        if self._fired:
            self._fired = False
            if self._watch is not None:
                self._watch.rearm(self)
        return False

    def unwatch(self) -> None:
        """Stop watching; idempotent. Call it before the socket is closed (invariant 8)."""
        if self._watch is not None:
            self._watch.unwatch(self)


class SocketWatch:
    """This process's watcher: one thread waiting in epoll on every watched socket (see above).

    :param epoll: the ``select.epoll`` class (gevent's original under gevent).
    :param lock: a lock that works across OS threads (gevent's original under gevent).
    :param start_thread: starts its argument on a new OS thread.
    """

    def __init__(
        self,
        epoll: Callable[[], Any],
        lock: Any,
        start_thread: Callable[[Callable[[], None]], None],
    ) -> None:
        self.pid = os.getpid()
        self._new_epoll = epoll
        self._start_thread = start_thread
        self._lock = lock
        self._watched: dict[int, Watched] = {}
        self._epoll: Any = None  # made by the first watch(), closed by the thread as it ends
        self._running = False
        self._drained: Any = None  # the gunicorn worker whose stop the thread woke everyone for

    def watch(self, connection: ClientConnection, wake: Callable[[], None]) -> Watched:
        """Call ``wake()`` (from the watch's thread) once ``connection``'s peer hung up."""
        try:
            fd = connection.fileno()
        except (OSError, ValueError):
            fd = -1
        if fd < 0:  # closed already: let the stream poll, which says so
            return Watched(connection, wake)
        watched = Watched(connection, wake, self, fd)
        start = False
        with self._lock:
            try:
                if self._epoll is None:
                    self._epoll = self._new_epoll()
                try:
                    self._epoll.register(fd, _MASK)
                except FileExistsError:  # this socket's earlier stream was never closed (8)
                    self._epoll.modify(fd, _MASK)
            except (OSError, ValueError):  # out of fds, say: the stream polls instead
                return Watched(connection, wake)
            self._watched[fd] = watched  # replaces any earlier registration of the fd
            if not self._running:
                self._running = start = True
        if start:
            try:
                self._start_thread(self._run)
            except RuntimeError:  # can't start new thread: every stream polls instead
                with self._lock:
                    self._running = False
                self.unwatch(watched)
                return Watched(connection, wake)
        watched.watching = True
        worker = gunicorn_worker()
        if worker is not None and not worker.alive:  # stopping: the sweep may be over (5)
            wake()
        return watched

    def unwatch(self, watched: Watched) -> None:
        """Forget ``watched``, unless a newer registration of its fd replaced it (invariant 8)."""
        if self.pid != os.getpid():
            return  # a stream from before a fork: its lock may be held for ever (1)
        with self._lock:
            fd = watched._fd
            if self._watched.get(fd) is not watched:
                return
            del self._watched[fd]
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass  # the socket is closed already: the kernel dropped it

    def rearm(self, watched: Watched) -> None:
        """Watch ``watched`` again after an event that was no hang-up (invariant 4)."""
        if self.pid != os.getpid():
            return
        with self._lock:
            if self._watched.get(watched._fd) is not watched or watched._rearms >= _MAX_REARMS:
                return
            watched._rearms += 1
            try:
                self._epoll.modify(watched._fd, _MASK)
            except (OSError, ValueError):
                pass  # closed meanwhile: its stream closes too

    def forget_inherited(self) -> None:
        """In a child of a fork: close the parent's epoll instance, which this one inherited.

        No lock: the thread that could hold it did not survive the fork.
        """
        epoll, self._epoll = self._epoll, None
        if epoll is not None:
            epoll.close()

    def _run(self) -> None:
        with self._lock:
            epoll = self._epoll
        try:
            self._watch_until_idle(epoll)
        except BaseException:
            with self._lock:
                # Not idle: the next watch() starts a new thread on this epoll, with every
                # registration it holds.
                self._running = False
            raise

    def _watch_until_idle(self, epoll: Any) -> None:
        idle_rounds = 0
        while True:
            events = epoll.poll(_ROUND)
            wakes: list[Callable[[], None]] = []
            with self._lock:
                watched = self._watched
                for fd, _ in events:
                    one = watched.get(fd)
                    if one is not None:
                        one._fired = True  # before the wake (invariant 3)
                        wakes.append(one._wake)
                worker = gunicorn_worker()
                if worker is not None and not worker.alive and worker is not self._drained:
                    self._drained = worker
                    wakes.extend(one._wake for one in watched.values())
                if watched or events:
                    idle_rounds = 0
                else:
                    idle_rounds += 1
                    if idle_rounds * _ROUND >= _LINGER:
                        self._running = False
                        self._epoll = None
                        epoll.close()
                        return
            for wake in wakes:
                try:
                    wake()
                except Exception:  # pragma: no cover - our wakes set flags
                    # Not logged (9). One stream's broken wake must not end every other
                    # stream's watch: that stream finds its disconnect by its pings.
                    pass


#: This process's watch: (pid, the watch or None where there is no epoll), see watch().
_watch_of_process: tuple[int, SocketWatch | None] = (0, None)


def watch(connection: ClientConnection, wake: Callable[[], None]) -> Watched:
    """Have this process's :class:`SocketWatch` call ``wake()`` when ``connection``'s peer leaves.

    Also when this process's gunicorn worker stops. ``wake`` must be safe to call from any
    thread, at any time (even after the stream closed). Returns a :class:`Watched` to give
    back with :meth:`Watched.unwatch`; where nothing can watch (no epoll), its ``watching``
    is false and the caller polls :meth:`Watched.peer_closed` itself.
    """
    global _watch_of_process
    pid, current = _watch_of_process
    if pid != os.getpid():
        if current is not None:
            current.forget_inherited()
        current = _new_watch()
        _watch_of_process = (os.getpid(), current)
    if current is None:
        return Watched(connection, wake)
    return current.watch(connection, wake)


def _new_watch() -> SocketWatch | None:
    """A :class:`SocketWatch` for this process, or ``None`` where there is no epoll."""
    if gevent_active():
        from gevent import monkey

        try:
            epoll = monkey.get_original("select", "epoll")
        except AttributeError:
            return None
        lock, start_new_thread = monkey.get_original(
            "_thread", ["allocate_lock", "start_new_thread"]
        )

        def start_thread(run: Callable[[], None]) -> None:
            start_new_thread(run, ())

    else:
        epoll = getattr(select, "epoll", None)
        if epoll is None:
            return None
        lock = threading.Lock

        def start_thread(run: Callable[[], None]) -> None:
            threading.Thread(target=run, name="sse_sync-watch", daemon=True).start()

    if not _MASK & _EPOLLRDHUP:
        return None
    return SocketWatch(epoll, lock(), start_thread)
