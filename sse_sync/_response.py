"""``EventStreamResponse`` and ``sse_response()``: a Werkzeug response that streams events."""

from __future__ import annotations

import contextvars
import functools
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.http import is_hop_by_hop_header
from werkzeug.wrappers import Response

from ._cors import CORS, add_to_flask_response
from ._event import ServerSentEvent
from ._items import ItemRules, check_items, item_encoder
from ._logging import logger
from ._producer import Producer, RunnerKind
from ._request import END_ID, reconnects_after_end
from ._stream import OPEN_TIMEOUT, EventStream, FrameSource

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["EventStreamResponse", "sse_response"]

HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]]

#: What a ``stop_at_end`` stream sends last; a client that reconnects with its id gets a 204.
_END_FRAME = ServerSentEvent(event="end", id=END_ID, raw_data="").encode()

_DEFAULT_HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    # nginx buffers proxied responses unless told not to, which would hold events back.
    ("X-Accel-Buffering", "no"),
    # A compressor holds events back in its buffer until it is full (none flushes per event).
    # Compressors leave alone a response that already has a Content-Encoding (Flask-Compress,
    # Django-style and after_request gzip layers, nginx's gzip); "identity" names no coding at
    # all (RFC 9110, 12.5.3), so clients read the body as it is.
    ("Content-Encoding", "identity"),
)


_body_replaced_warned = False


def _check_body(response: weakref.ref[Response], stream: EventStream) -> None:
    """Warn, once per process, when ``stream`` is iterated but is no longer the response's body.

    Then another layer (an ``after_request`` hook, an extension such as Flask-Compress) put its
    own body in its place and iterates the stream from there: the server writes what that
    layer yields, when it yields. Nothing is looked at once the response is gone: a server
    that iterates the stream itself holds no reference to the response.
    """
    global _body_replaced_warned
    owner = response()
    if owner is None or owner.response is stream or _body_replaced_warned:
        return
    _body_replaced_warned = True
    logger.warning(
        "Another layer replaced the body of an event stream's response (its body is now %r, "
        "its Content-Encoding %r): events reach the client only as that layer passes them on, "
        "a compressor holds them in its buffer, and the stream may outlive its client. Keep "
        "event streams out of that layer; compressors skip them while their "
        "'Content-Encoding: identity' header is left in place.",
        owner.response,
        owner.headers.get("Content-Encoding"),
    )


def _active_flask() -> Any:
    """The ``flask`` module when a Flask request is active here, else ``None``.

    Flask is not imported here: if the app does not use it, it is not in ``sys.modules``.
    """
    flask = sys.modules.get("flask")
    return flask if flask is not None and flask.has_request_context() else None


def _flask_context(flask: Any) -> tuple[contextvars.Context, Callable[[], None] | None]:
    """The view's context for the producer, and Flask's teardown for the stream's end.

    The producer runs the source in a copy of the view's context variables, where Flask keeps
    its request and app contexts: ``request``, ``session``, ``current_app`` and ``url_for``
    work there as in the view (and so do the view's own contextvars). Nothing is pushed, so no
    context can leak onto a server thread (pallets/flask#6123). ``g`` is the stream's own (see
    :class:`_StreamGlobals`). When the stream ends, the producer runs the app's
    ``teardown_request`` and ``teardown_appcontext`` hooks in that context: the view's teardown
    ran when the view returned, and this one releases what the stream opened (database
    sessions, ...); it is ``None`` when the app has no teardown hook and no receiver of the
    teardown signals. Call it in a Flask request, with :func:`_active_flask`'s module.
    """
    # LocalProxy._get_current_object() (typed as the proxied class by Flask) unwraps the proxy.
    app = flask.current_app._get_current_object()
    signals = flask.signals
    context = contextvars.copy_context()
    context.run(_own_app_context, flask)

    def teardown() -> None:
        app.do_teardown_request(None)
        app.do_teardown_appcontext(None)

    hooked = (
        any(app.teardown_request_funcs.values())
        or app.teardown_appcontext_funcs
        or signals.request_tearing_down.receivers
        or signals.appcontext_tearing_down.receivers
    )
    return context, teardown if hooked else None


def _own_app_context(flask: Any) -> None:
    """Give the current (copied) context an app context of its own, with the stream's ``g``.

    The source's first item is read in the view (see :meth:`EventStreamResponse.__init__`),
    before Flask tears the view's context down. Sharing the view's ``g`` would let that
    teardown close what the stream opened through ``g`` (``get_db()``), and the stream's own
    teardown close what the view opened. The copy shares everything else with the view's.
    """
    cv_app = flask.globals._cv_app
    view_ctx = cv_app.get()
    ctx = object.__new__(type(view_ctx))
    ctx.__dict__.update(view_ctx.__dict__)
    ctx._cv_tokens = []  # never pushed: only set in this context
    g = object.__new__(type(view_ctx.g))
    object.__setattr__(g, "__dict__", _StreamGlobals(view_ctx.g.__dict__))
    ctx.g = g
    cv_app.set(ctx)


class _StreamGlobals(dict[str, Any]):
    """The ``__dict__`` of a stream's ``g``: what the stream sets is its own, the rest the view's.

    Reading ``g.user`` (set by a ``before_request`` hook) finds the view's value while the view
    has it; ``g.db = ...`` in the stream sets the stream's, which only the stream's teardown
    sees (``g.pop`` pops the stream's own values only). A value the view opened through ``g`` is
    the view's: its teardown closes it when the view returns, and the stream then no longer
    sees it, so ``get_db()`` called in each step opens the stream's own.
    """

    __slots__ = ("view",)

    def __init__(self, view: dict[str, Any]) -> None:
        super().__init__()
        self.view = view

    def __missing__(self, key: str) -> Any:
        return self.view[key]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self.view

    def __iter__(self) -> Iterator[str]:
        yield from dict.__iter__(self)
        yield from (key for key in list(self.view) if not dict.__contains__(self, key))

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


class EventStreamResponse(Response):
    """A streamed ``text/event-stream`` response fed by a (blocking) iterable.

    Usually built with :func:`sse_response`, which takes the same arguments. The source runs
    off the request thread from the first iteration on: a greenlet under gevent, an OS thread
    otherwise. Each item it yields is sent as an event: a :class:`ServerSentEvent` as it says,
    ``bytes`` as pre-framed wire bytes, a ``str`` of complete event-stream frames as those
    frames, anything else as the JSON ``data`` of an unnamed event (``items`` picks other rules).

    **When the status is settled and the headers go out.** The response waits up to
    ``open_timeout`` seconds (0.5 by default) for the source's first item, on the request
    thread, before its status is settled:

    * if the source raises first, the request is answered with that error instead of a 200,
      so that ``EventSource`` fails the connection and does not reconnect: a
      :class:`~werkzeug.exceptions.HTTPException` (``abort(403)``) is its own response, and
      any other exception is a 500, logged once with its traceback. In a Flask view, the
      exception is raised from this constructor, so the app's error handlers, ``after_request``
      hooks and logging treat it as any error of the view; in a bare Werkzeug app, the
      response answers with the ``HTTPException`` and leaves any other exception to the server
      (a 500, which it logs);
    * otherwise the response is a 200 stream, and its status line and headers go out with the
      first frame, or with a ``: ping`` comment once ``open_timeout`` has passed, whichever
      comes first: a quiet stream still opens at once (``EventSource`` fires ``open``, and no
      client's read timeout expires). A source that raises later ends the stream; the error is
      logged, and ``EventSource`` reconnects after its ``retry`` delay, unless ``stop_at_end``.

    In a Flask view that wait happens in the view, before Flask's teardown of the view's
    context, so the source's first step runs there; the source runs with a ``g`` of its own
    that reads through to the view's (what it sets stays its own). A generator wrapped in
    Flask's ``stream_with_context`` pushes the view's own contexts instead, so it is not read
    in the view: it starts with the first iteration, as in Flask, and an error before its
    first item only ends the stream. A ``HEAD`` request and a 204 or 304 status start
    nothing. Outside a request (no Flask request and the response not called as a WSGI app),
    the first iteration waits instead, and an error there only ends the stream.

    Returned from a Flask view, Flask may turn the instance into its own ``response_class``
    (``Response.force_type``); the stream keeps working because all of its behaviour lives in
    the app iterable, ``response.response``, an :class:`~sse_sync._runner.EventStream`, and in
    the constructor. (Calling ``start_response`` again with ``exc_info`` from the first
    iteration, as PEP 3333 allows, was not used: the app iterable has no ``start_response``,
    and gunicorn adds the second call's headers to the first's.)

    :param source: an iterable of events, or a broker subscription.
    :param ping: seconds without a write after which a ``: ping`` comment is sent (also how a
        dead connection is found); ``None`` disables pings.
    :param headers: extra headers; they replace the defaults of the same name. Hop-by-hop
        headers (``Connection``, ``Transfer-Encoding``, ...) are rejected, as PEP 3333 says.
    :param status: the HTTP status.
    :param queue_size: how many frames may wait for a slow client before the producer blocks.
    :param runner: ``"auto"`` (a greenlet under gevent, else a thread), ``"greenlet"``, or
        ``"thread"``: under gevent, a native thread of gevent's thread pool, for sources that
        block in C code gevent cannot patch (the pool's size bounds how many run at once).
    :param close_timeout: with threads, how long ``close()`` waits for the producer to stop
        after a disconnect before raising :class:`~sse_sync.StreamClosed` in it.
    :param encode: turns one item into wire bytes; by default, the ``items`` rules.
    :param max_lifetime: seconds after which the stream ends with a ``retry:`` hint, so that
        clients reconnect (and resume from their ``Last-Event-ID``) somewhere else from time
        to time; each stream picks between 80% and 100% of it. ``None``: no limit. Under
        gunicorn, streams also end this way within about a second when their worker stops.
    :param items: which rules turn items into events: ``"default"`` (described above; a
        ``str`` made of complete event-stream frames is sent as those frames),
        ``"sse-starlette"`` (dicts of event fields, ``str`` sent as text) or
        ``"fastapi-views"`` (dicts with ``event`` and JSON ``data``); see docs/migrating.md.
        An item that looks like another rule's idiom logs one warning per stream.
    :param cors: which other sites may read the stream (:class:`~sse_sync.CORS`); its headers
        follow the request's ``Origin``. ``None``: same-origin pages only.
    :param open_timeout: how long, in seconds (``>= 0``), the response waits for the source's
        first item before its status is settled and its headers go out (see above).
    :param stop_at_end: when the source ends (returns, or raises after its first item), send
        a last ``end`` event (``event: end``, ``id: sse_sync:end``, empty data) and answer the
        client that reconnects with that id with ``204 No Content``, which stops
        ``EventSource`` for good. Streams the server ends (``max_lifetime``, a stopping worker)
        are not concerned: their clients reconnect. See ``docs/errors.md``.
    """

    default_mimetype = "text/event-stream"

    def __init__(
        self,
        source: Iterable[Any] | FrameSource,
        *,
        ping: float | None = 15.0,
        headers: HeadersLike | None = None,
        status: int = 200,
        queue_size: int = 64,
        runner: RunnerKind = "auto",
        close_timeout: float = 1.0,
        encode: Callable[[Any], bytes] | None = None,
        max_lifetime: float | None = None,
        cors: CORS | None = None,
        open_timeout: float = OPEN_TIMEOUT,
        stop_at_end: bool = False,
        items: ItemRules = "default",
    ) -> None:
        check_items(items)
        all_headers = Headers(_DEFAULT_HEADERS)
        if headers is not None:
            extra = Headers(headers)
            for name, _ in extra:
                if is_hop_by_hop_header(name):
                    msg = (
                        f"Expected no hop-by-hop header in an event stream's headers, got "
                        f"{name!r}: the server manages the connection (PEP 3333)"
                    )
                    raise ValueError(msg)
            all_headers.update(extra)
        flask = _active_flask()
        frames: FrameSource
        if callable(getattr(source, "read_frames", None)):
            producer_options = (
                ("queue_size", queue_size, 64),
                ("runner", runner, "auto"),
                ("close_timeout", close_timeout, 1.0),
                ("encode", encode, None),
                ("items", items, "default"),
                ("stop_at_end", stop_at_end, False),
            )
            ignored = [name for name, value, default in producer_options if value != default]
            if ignored:
                msg = (
                    f"{', '.join(ignored)} only apply to iterable sources, which run on a "
                    f"producer; got a {type(source).__name__}, which is read directly"
                )
                raise TypeError(msg)
            frames = source  # type: ignore[assignment]
        elif isinstance(source, Iterable) and not isinstance(source, (str, bytes, Mapping)):
            context, teardown = _flask_context(flask) if flask is not None else (None, None)
            if encode is None:
                encode = item_encoder(items)
            elif items != "default":
                msg = (
                    f"Expected either encode= or items=, got both (items={items!r}): items= "
                    f"picks one of the built-in encoders"
                )
                raise TypeError(msg)
            frames = Producer(
                source,
                encode,
                runner=runner,
                queue_size=queue_size,
                close_timeout=close_timeout,
                context=context,
                teardown=teardown,
            )
        else:
            msg = (
                f"Expected an iterable of events (such as a generator) or a broker "
                f"subscription, got {type(source).__name__!r}"
            )
            raise TypeError(msg)
        stream = EventStream(
            frames,
            ping=ping,
            max_lifetime=max_lifetime,
            open_timeout=open_timeout,
            end_frame=_END_FRAME if stop_at_end else None,
        )
        # Outside Flask the Origin is known only when the response is called.
        self._cors = None if flask is not None else cors
        super().__init__(stream, status=status, headers=all_headers, direct_passthrough=True)
        stream.on_iter = functools.partial(_check_body, weakref.ref(self))
        if flask is not None:
            if cors is not None:
                add_to_flask_response(cors)
            flask.after_this_request(self._close_unless_sent)
            # Before the view returns: what the source raises first is the view's error. Not a
            # generator wrapped by Flask's stream_with_context: it pushes the view's own request
            # and app contexts, which must not happen before the view pops them (Flask pops the
            # last context pushed), so it starts with the first iteration, as in Flask.
            code = getattr(source, "gi_code", None)
            in_view = code is None or code.co_filename != flask.helpers.__file__
            self._open(flask.request.environ, read_first=in_view)

    def _close_unless_sent(self, response: Response) -> Response:
        """Flask's ``after_this_request``: stop a stream opened in the view but not sent.

        The view raised (an error handler answered instead) or returned another response: no
        server will iterate or close this stream, and its producer already runs.
        """
        if response.response is not self.response:
            self.event_stream.close()
        return response

    @property
    def event_stream(self) -> EventStream:
        """The app iterable that the WSGI server iterates and closes."""
        return self.response  # type: ignore[return-value]

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        """Add the CORS headers for the request's ``Origin`` when they are not in yet."""
        headers = super().get_wsgi_headers(environ)
        if self._cors is not None:
            headers.extend(self._cors.headers(environ.get("HTTP_ORIGIN")))
        return headers

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Open the stream, then answer as a WSGI app; an ``HTTPException`` is the answer.

        Not called in a Flask view (Flask calls its own ``response_class``), where the
        constructor opened the stream already.
        """
        try:
            self._open(environ, read_first=True)
        except HTTPException as exc:
            answer = exc.get_response(environ)
            if self._cors is not None:
                answer.headers.extend(self._cors.headers(environ.get("HTTP_ORIGIN")))
            return answer(environ, start_response)
        return super().__call__(environ, start_response)

    def _open(self, environ: WSGIEnvironment, *, read_first: bool) -> None:
        """Bind the connection, answer 204 after the ``end`` event, else open (may raise).

        :param read_first: wait for the source's first item here (see the class docstring).
        """
        stream = self.event_stream
        stream.bind(environ)
        if stream.end_frame is not None and reconnects_after_end(environ):
            self.status_code = 204
            stream.close()
        # What Werkzeug sends no body for (get_app_iter) starts nothing: HEAD stays cheap. Only
        # a producer can raise; a broker subscription is opened by its first iteration.
        if (
            read_first
            and isinstance(stream.source, Producer)
            and environ.get("REQUEST_METHOD") != "HEAD"
            and not (100 <= self.status_code < 200 or self.status_code in (204, 304))
        ):
            stream.open()


def sse_response(
    source: Iterable[Any] | FrameSource,
    *,
    ping: float | None = 15.0,
    headers: HeadersLike | None = None,
    status: int = 200,
    queue_size: int = 64,
    runner: RunnerKind = "auto",
    close_timeout: float = 1.0,
    encode: Callable[[Any], bytes] | None = None,
    max_lifetime: float | None = None,
    cors: CORS | None = None,
    open_timeout: float = OPEN_TIMEOUT,
    stop_at_end: bool = False,
    items: ItemRules = "default",
) -> EventStreamResponse:
    """Stream what ``source`` yields as Server-Sent Events.

    .. code-block:: python

        @app.get("/items/stream")
        def stream_items():
            def gen():
                for item in ITEMS:
                    yield item          # a pydantic model -> data: {json}
                    time.sleep(1)       # plain blocking code is fine
            return sse_response(gen())

    Inside a Flask view, ``request``, ``g``, ``session`` and ``current_app`` work in the
    generator for the whole stream. When the client goes away, the generator is closed on its
    own greenlet/thread, so its ``finally`` blocks run.

    The response waits up to ``open_timeout`` seconds (0.5) for the generator's first item:
    an exception raised before it (``abort(403)``, a failed check) answers the request with
    its status (500 for an exception that is not an ``HTTPException``) instead of a 200, so
    that ``EventSource`` does not reconnect. Otherwise the status line and headers go out with
    the first frame or, for a quiet generator, with a ``: ping`` at that deadline, whichever
    comes first. See :class:`EventStreamResponse` for the details and the parameters.
    """
    return EventStreamResponse(
        source,
        ping=ping,
        headers=headers,
        status=status,
        queue_size=queue_size,
        runner=runner,
        close_timeout=close_timeout,
        encode=encode,
        max_lifetime=max_lifetime,
        cors=cors,
        open_timeout=open_timeout,
        stop_at_end=stop_at_end,
        items=items,
    )
