"""``EventStreamResponse`` and ``sse_response()``: a Werkzeug response that streams events."""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import Headers
from werkzeug.http import is_hop_by_hop_header
from werkzeug.wrappers import Response

from ._items import ItemRules, check_items, item_encoder
from ._runner import EventStream, FrameSource, Producer, RunnerKind

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["EventStreamResponse", "sse_response"]

HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]]

_DEFAULT_HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    # nginx buffers proxied responses unless told not to, which would hold events back.
    ("X-Accel-Buffering", "no"),
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
    its request and app contexts: ``request``, ``session``, ``g``, ``current_app`` and
    ``url_for`` work there as in the view (and so do the view's own contextvars). Nothing is
    pushed, so no context can leak onto a server thread (pallets/flask#6123). When the stream
    ends, the producer runs the app's ``teardown_request`` and ``teardown_appcontext`` hooks in
    that context: the view's teardown ran when the view returned, and this one releases what the
    stream opened (database sessions, ...); it is ``None`` when the app has no teardown hook
    and no receiver of the teardown signals. Call it in a Flask request, with
    :func:`_active_flask`'s module.
    """
    # LocalProxy._get_current_object() (typed as the proxied class by Flask) unwraps the proxy.
    app = flask.current_app._get_current_object()
    signals = flask.signals

    def teardown() -> None:
        app.do_teardown_request(None)
        app.do_teardown_appcontext(None)

    hooked = (
        any(app.teardown_request_funcs.values())
        or app.teardown_appcontext_funcs
        or signals.request_tearing_down.receivers
        or signals.appcontext_tearing_down.receivers
    )
    return contextvars.copy_context(), teardown if hooked else None


class EventStreamResponse(Response):
    """A streamed ``text/event-stream`` response fed by a (blocking) iterable.

    Usually built with :func:`sse_response`, which takes the same arguments. The source runs
    off the request thread from the first iteration on: a greenlet under gevent, an OS thread
    otherwise. Each item it yields is sent as an event: a :class:`ServerSentEvent` as it says,
    ``bytes`` as pre-framed wire bytes, a ``str`` of complete event-stream frames as those
    frames, anything else as the JSON ``data`` of an unnamed event (``items`` picks other rules).

    Returned from a Flask view, Flask may turn the instance into its own ``response_class``
    (``Response.force_type``); the stream keeps working because all of its behaviour lives in
    the app iterable, ``response.response``, an :class:`~sse_sync._runner.EventStream`.

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
        after a disconnect before leaving it to finish on its own.
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
        stream = EventStream(frames, ping=ping, max_lifetime=max_lifetime)
        if flask is not None:
            stream.bind(flask.request.environ)
        super().__init__(stream, status=status, headers=all_headers, direct_passthrough=True)

    @property
    def event_stream(self) -> EventStream:
        """The app iterable that the WSGI server iterates and closes."""
        return self.response  # type: ignore[return-value]

    def get_app_iter(self, environ: WSGIEnvironment) -> Iterable[bytes]:
        """Bind the connection (for disconnect detection) before the server iterates."""
        self.event_stream.bind(environ)
        return super().get_app_iter(environ)


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
    own greenlet/thread, so its ``finally`` blocks run. See :class:`EventStreamResponse` for the
    parameters.
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
        items=items,
    )
