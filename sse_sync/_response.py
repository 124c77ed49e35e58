"""``EventStreamResponse`` and ``sse_response()``, a Werkzeug response that streams events, and
``StreamOptions``, the options every entry point takes.

Invariants, and why they hold:

1. Each option has one default and one check, in :class:`StreamOptions`, which every entry
   point builds (``sse_response``, ``EventStreamResponse``, ``sse_view``, ``EventStreamView``,
   the ``SSE`` extension). Whether an option was passed is told by its default's type
   (:class:`_Default`), never by comparing with the default's value.
2. Under Flask, the source runs in a copy of the view's context variables, and the only Flask
   context pushed for the stream is pushed in that copy (in the view) and popped in it (on the
   producer, when the stream ends): nothing is pushed onto, or left on, a server thread
   (pallets/flask#6123). Only public Flask API is used (see :class:`_StreamContext`).
3. A response built in a Flask request is an instance of the app's ``response_class`` too, so
   Flask returns it as it is, and its constructor opened the stream: ``__call__`` never opens
   it again (a ``stream_with_context`` source must start on the producer, not in Flask's call).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

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
from ._seconds import check_seconds, check_timeout
from ._stream import OPEN_TIMEOUT, EventStream, FrameSource

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["EventStreamResponse", "StreamOptions", "sse_response"]


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


#: What a stream calls on a FrameSource besides read_frames(): checked when the response is built.
_SOURCE_HOOKS = ("attach", "wake_reader", "close")

#: The options that only an iterable source uses, run on a producer; in signature order.
_PRODUCER_OPTIONS = ("queue_size", "runner", "close_timeout", "encode", "items", "stop_at_end")


class _Default:
    """A default that knows it was not passed: equal to its value, told apart by its type.

    The entry points show their documented defaults (``help(sse_response)`` reads
    ``queue_size: int = 256``) and still learn whether a call set an option, even to that
    value: ``queue_size=256`` with a broker subscription is refused as ``queue_size=255`` is.
    """

    __slots__ = ()


class _DefaultInt(_Default, int):
    __slots__ = ()


class _DefaultFloat(_Default, float):
    __slots__ = ()


class _DefaultStr(_Default, str):
    __slots__ = ()


# The defaults of the producer's options (the others, None and False, ask for nothing).
QUEUE_SIZE: int = _DefaultInt(256)
RUNNER: RunnerKind = cast("RunnerKind", _DefaultStr("auto"))
CLOSE_TIMEOUT: float = _DefaultFloat(1.0)
ITEMS: ItemRules = cast("ItemRules", _DefaultStr("default"))
#: ``EventStreamView.items``'s default.
VIEW_ITEMS: ItemRules = cast("ItemRules", _DefaultStr("fastapi-views"))


def _is_set(value: object) -> bool:
    """Whether an option asks for something: neither left at its default nor None or False."""
    return not isinstance(value, _Default) and value is not None and value is not False


@dataclasses.dataclass(frozen=True)
class StreamOptions:
    """The options of one event stream, their defaults and their checks, for every entry point.

    :func:`sse_response` (and :class:`EventStreamResponse`), ``sse_view``, ``EventStreamView``
    and the ``SSE`` extension each build one, from their keyword arguments, class attributes
    or config; the checks run then, so a decorator or a view class with a bad option fails
    where it is defined. What each option means: :class:`EventStreamResponse`.

    The defaults of ``queue_size``, ``runner``, ``close_timeout`` and ``items`` are markers
    equal to the documented values (:class:`_Default`): :meth:`producer_options_set` tells an
    option passed with its default's value from one left out.
    """

    ping: float | None = 15.0
    headers: HeadersLike | None = None
    status: int = 200
    queue_size: int = QUEUE_SIZE
    runner: RunnerKind = RUNNER
    close_timeout: float = CLOSE_TIMEOUT
    encode: Callable[[Any], bytes] | None = None
    max_lifetime: float | None = None
    cors: CORS | None = None
    open_timeout: float = OPEN_TIMEOUT
    stop_at_end: bool = False
    items: ItemRules = ITEMS

    def __post_init__(self) -> None:
        check_seconds(self.ping, "ping")
        check_seconds(self.max_lifetime, "max_lifetime")
        check_timeout(self.open_timeout, "open_timeout")
        check_timeout(self.close_timeout, "close_timeout")
        if self.runner not in ("auto", "greenlet", "thread"):
            msg = f"Expected runner to be 'auto', 'greenlet' or 'thread', got {self.runner!r}"
            raise ValueError(msg)
        size = self.queue_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            msg = f"Expected queue_size to be an int >= 1, got {size!r}"
            raise ValueError(msg)
        check_items(self.items)
        if self.encode is not None and _is_set(self.items):
            msg = (
                f"Expected either encode= or items=, got both (items={self.items!r}): items= "
                f"picks one of the built-in encoders"
            )
            raise TypeError(msg)
        if self.headers is not None:
            headers = Headers(self.headers)  # once: an iterator of pairs is read here
            for name, _ in headers:
                if is_hop_by_hop_header(name):
                    msg = (
                        f"Expected no hop-by-hop header in an event stream's headers, got "
                        f"{name!r}: the server manages the connection (PEP 3333)"
                    )
                    raise ValueError(msg)
            object.__setattr__(self, "headers", headers)

    def producer_options_set(self) -> list[str]:
        """The names of the options set here that only a producer uses (iterable sources)."""
        return [name for name in _PRODUCER_OPTIONS if _is_set(getattr(self, name))]

    def encoder(self) -> Callable[[Any], bytes]:
        """A new encoder for one stream: ``encode``, else the ``items`` rules'."""
        return self.encode if self.encode is not None else item_encoder(self.items)

    def response_headers(self) -> Headers:
        """The response's headers: the defaults, replaced or extended by ``headers``."""
        headers = Headers(_DEFAULT_HEADERS)
        if self.headers is not None:
            headers.update(self.headers)
        return headers


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


@functools.cache
def _with_class(cls: type, response_class: type) -> type:
    """``cls``, made a subclass of an app's ``response_class`` too when it is not one yet.

    Flask's ``make_response`` coerces any other response into its ``response_class`` by
    swapping the instance's class (``force_type``). ``cls`` comes first in the new class:
    its ``default_mimetype`` and methods win, and the app's class adds its own.
    """
    if issubclass(cls, response_class):
        return cls
    namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    return type(cls.__name__, (cls, response_class), namespace)


def _active_flask() -> Any:
    """The ``flask`` module when a Flask request is active here, else ``None``.

    Flask is not imported here: if the app does not use it, it is not in ``sys.modules``.
    """
    flask = sys.modules.get("flask")
    return flask if flask is not None and flask.has_request_context() else None


class _StreamContext:
    """What a stream's source runs in under Flask: the view's context, with a ``g`` of its own.

    The producer runs the source in :attr:`context`, a copy of the view's context variables,
    where Flask keeps its contexts: ``request``, ``session``, ``current_app`` and ``url_for``
    work there as in the view (and so do the view's own contextvars). A Flask context of the
    stream's own is pushed in that copy only (:meth:`push`), so no context can leak onto a
    server thread (pallets/flask#6123): an app context on Flask 3.0 and 3.1, where the request
    context stays the view's, and a copy of the view's context on Flask 3.2, where one context
    holds both (``AppContext.copy``, as ``copy_current_request_context`` does). Either way its
    ``g`` reads through to the view's (:class:`_ReadThrough`).

    The source's first item is read in the view (see :meth:`EventStreamResponse.__init__`),
    before Flask tears the view's context down. Sharing the view's ``g`` would let that
    teardown close what the stream opened through ``g`` (``get_db()``), and the stream's own
    teardown close what the view opened. When the stream ends, the producer calls
    :meth:`teardown`, which pops the stream's context: the app's ``teardown_request`` and
    ``teardown_appcontext`` hooks (and their signals) run for the stream's ``g`` there, as
    they ran for the view's when the view returned.

    Only public Flask API is used: ``app.app_context()``, ``AppContext.copy``, ``push`` and
    ``pop``, ``do_teardown_request``, the context's ``g`` and ``app.app_ctx_globals_class``.
    Call it in a Flask request, with :func:`_active_flask`'s module.
    """

    def __init__(self, flask: Any) -> None:
        # LocalProxy._get_current_object() (typed as the proxied class by Flask) unwraps the proxy.
        app = flask.current_app._get_current_object()
        view = flask.globals.app_ctx._get_current_object()
        self.context = contextvars.copy_context()
        self._teardown_request: Callable[[None], None] | None
        if hasattr(view, "copy"):  # Flask >= 3.2: one context for the app and the request
            self._flask = view.copy()  # the same request and session, a g of its own
            self._teardown_request = None  # pop() runs it
        else:  # Flask 3.0, 3.1: the request context stays the view's
            self._flask = app.app_context()
            self._teardown_request = app.do_teardown_request
        g = _read_through_class(app.app_ctx_globals_class)()
        object.__setattr__(g, "_view_g", view.g)  # its slot: the class's __setattr__ sets on g
        self._flask.g = g

    def push(self) -> None:
        """Make the stream's Flask context the active one in :attr:`context` (in the view)."""
        self.context.run(self._flask.push)

    def teardown(self) -> None:
        """Pop the stream's Flask context: its teardown hooks run (on the producer, in context)."""
        try:
            if self._teardown_request is not None:
                self._teardown_request(None)
        finally:
            self._flask.pop(None)


_MISSING = object()


class _ReadThrough:
    """Mixed into the app's ``app_ctx_globals_class`` for a stream's ``g``, over the view's.

    What the stream sets is its own, the rest the view's: reading ``g.user`` (set by a
    ``before_request`` hook) finds the view's value while the view has it; ``g.db = ...`` in
    the stream sets the stream's, which only the stream's teardown sees (``g.pop`` pops the
    stream's own values only). A value the view opened through ``g`` is the view's: its
    teardown closes it when the view returns, and the stream then no longer sees it, so
    ``get_db()`` called in each step opens the stream's own.
    """

    __slots__ = ("_view_g",)
    _view_g: Any

    def __getattr__(self, name: str) -> Any:
        if name == "_view_g":  # not set (yet): no recursion
            raise AttributeError(name)
        return getattr(self._view_g, name)

    def get(self, name: str, default: Any = None) -> Any:
        own = cast(Any, super()).get(name, _MISSING)
        return self._view_g.get(name, default) if own is _MISSING else own

    def setdefault(self, name: str, default: Any = None) -> Any:
        if name not in self:
            setattr(self, name, default)
        return getattr(self, name)

    def __contains__(self, name: object) -> bool:
        return bool(cast(Any, super()).__contains__(name)) or name in self._view_g

    def __iter__(self) -> Iterator[str]:
        own = list(cast(Any, super()).__iter__())
        yield from own
        yield from (name for name in list(self._view_g) if name not in own)


@functools.cache
def _read_through_class(globals_class: type[Any]) -> type[Any]:
    """The class of a stream's ``g`` in an app whose ``app_ctx_globals_class`` this is."""
    namespace = {"__slots__": (), "__module__": __name__, "__doc__": _ReadThrough.__doc__}
    return type(globals_class.__name__, (_ReadThrough, globals_class), namespace)


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

    Built in a Flask request, the instance is also one of the app's ``response_class`` (of a
    subclass of both, made once per class), so that Flask returns it as it is instead of
    coercing it (``Response.force_type``): ``after_request`` hooks and extensions can tell an
    event stream with ``isinstance(response, EventStreamResponse)``. (Calling
    ``start_response`` again with ``exc_info`` from the first iteration, as PEP 3333 allows,
    was not used: the app iterable has no ``start_response``, and gunicorn adds the second
    call's headers to the first's.)

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
        queue_size: int = QUEUE_SIZE,
        runner: RunnerKind = RUNNER,
        close_timeout: float = CLOSE_TIMEOUT,
        encode: Callable[[Any], bytes] | None = None,
        max_lifetime: float | None = None,
        cors: CORS | None = None,
        open_timeout: float = OPEN_TIMEOUT,
        stop_at_end: bool = False,
        items: ItemRules = ITEMS,
    ) -> None:
        options = StreamOptions(
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
        self._setup(source, options)

    @classmethod
    def _from_options(
        cls, source: Iterable[Any] | FrameSource, options: StreamOptions
    ) -> EventStreamResponse:
        """The response for ``source`` with ``options``, built by another entry point."""
        response = cls.__new__(cls)
        response._setup(source, options)
        return response

    def _setup(self, source: Iterable[Any] | FrameSource, options: StreamOptions) -> None:
        """Build the response: the constructor's work, for every entry point."""
        flask = _active_flask()
        if flask is not None:  # first, so that the app's class takes part in the construction
            self.__class__ = _with_class(cast("type", type(self)), flask.current_app.response_class)
        frames: FrameSource
        context: _StreamContext | None = None
        if callable(getattr(source, "read_frames", None)):
            ignored = options.producer_options_set()
            if ignored:
                msg = (
                    f"{', '.join(ignored)} only apply to iterable sources, which run on a "
                    f"producer; got a {type(source).__name__}, which is read directly"
                )
                raise TypeError(msg)
            missing = [m for m in _SOURCE_HOOKS if not callable(getattr(source, m, None))]
            if missing:
                msg = (
                    f"Expected a FrameSource ({', '.join(f'{m}()' for m in _SOURCE_HOOKS)} "
                    f"besides read_frames()), got a {type(source).__name__} without "
                    f"{', '.join(f'{m}()' for m in missing)}"
                )
                raise TypeError(msg)
            frames = source  # type: ignore[assignment]
        elif isinstance(source, Iterable) and not isinstance(source, (str, bytes, Mapping)):
            context = _StreamContext(flask) if flask is not None else None
            frames = Producer(
                source,
                options.encoder(),
                runner=options.runner,
                queue_size=options.queue_size,
                close_timeout=options.close_timeout,
                context=None if context is None else context.context,
                teardown=None if context is None else context.teardown,
            )
        else:
            msg = (
                f"Expected an iterable of events (such as a generator) or a broker "
                f"subscription, got {type(source).__name__!r}"
            )
            raise TypeError(msg)
        stream = EventStream(
            frames,
            ping=options.ping,
            max_lifetime=options.max_lifetime,
            open_timeout=options.open_timeout,
            end_frame=_END_FRAME if options.stop_at_end else None,
        )
        # Outside Flask the Origin is known only when the response is called.
        self._cors = None if flask is not None else options.cors
        self._in_flask = flask is not None
        super().__init__(
            stream,
            status=options.status,
            headers=options.response_headers(),
            direct_passthrough=True,
        )
        stream.on_iter = functools.partial(_check_body, weakref.ref(self))
        if flask is not None:
            if options.cors is not None:
                add_to_flask_response(options.cors)
            flask.after_this_request(self._close_unless_sent)
            if context is not None:
                context.push()
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

        Built in a Flask request, the constructor opened the stream already: Flask calls this
        with the view's context still pushed, where a ``stream_with_context`` source must not
        start, and the view's error was the view's to answer.
        """
        if not self._in_flask:
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
    queue_size: int = QUEUE_SIZE,
    runner: RunnerKind = RUNNER,
    close_timeout: float = CLOSE_TIMEOUT,
    encode: Callable[[Any], bytes] | None = None,
    max_lifetime: float | None = None,
    cors: CORS | None = None,
    open_timeout: float = OPEN_TIMEOUT,
    stop_at_end: bool = False,
    items: ItemRules = ITEMS,
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
