"""Where sse_sync's log records go when the app configured no logging.

A library should not configure logging, and Python then prints its warnings and errors through
``logging.lastResort``: bare messages on stderr, with no time or level, and never in gunicorn's
``--error-logfile``. Flask solves the same problem for ``app.logger`` with a default handler that
only acts while nothing else is configured; this does the same for the ``sse_sync`` logger:

* Under gunicorn, records go to the handlers of gunicorn's ``gunicorn.error`` logger: its
  ``--error-logfile``, its format (time, pid, level), as gunicorn's own messages do.
* Elsewhere (Werkzeug's server, ``flask run``, gevent's pywsgi), to stderr with time and level,
  in the format of Flask's default handler.
* Never twice: a record is passed on only while no other handler would see it, that is while
  neither the ``sse_sync`` logger nor any logger it propagates to has a handler of its own. An
  app that configures logging later (``logging.basicConfig``, ``dictConfig``) takes over at once.

The handler is added by the first event stream a process serves (:func:`route_records`), so
that ``import sse_sync`` configures nothing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["logger", "route_records"]

logger = logging.getLogger("sse_sync")

_FORMAT = "[%(asctime)s] %(levelname)s in %(name)s: %(message)s"

_routed = False


def route_records(environ: Mapping[str, Any]) -> None:
    """Make sure this process's records reach the server's error log; once per process.

    :param environ: the WSGI environ of a stream, to tell gunicorn from other servers.
    """
    global _routed
    if _routed:
        return
    _routed = True
    target: logging.Logger | None = None
    if str(environ.get("SERVER_SOFTWARE", "")).startswith("gunicorn/"):
        error_log = logging.getLogger("gunicorn.error")
        if error_log.handlers:
            target = error_log
    logger.addHandler(_Fallback(target))


class _Fallback(logging.Handler):
    """Hands a record to ``target`` (or stderr) while no other handler would see it."""

    def __init__(self, target: logging.Logger | None) -> None:
        super().__init__()
        self._target = target
        self._stderr = logging.StreamHandler(sys.stderr)
        self._stderr.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if self._configured_elsewhere():
            return
        if self._target is not None:
            self._target.handle(record)
        else:
            self._stderr.handle(record)

    def _configured_elsewhere(self) -> bool:
        # The same walk as Logger.hasHandlers(), leaving this handler out.
        current: logging.Logger | None = logger
        while current is not None:
            if any(handler is not self for handler in current.handlers):
                return True
            if not current.propagate:
                return False
            current = current.parent
        return False
