"""Flask views that stream: the ``@sse_view`` decorator and the class-based ``EventStreamView``."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, ParamSpec, TypeVar, cast, overload

from flask import Blueprint, Flask
from flask.typing import RouteCallable
from flask.views import View
from pydantic import TypeAdapter, ValidationError
from werkzeug.wrappers import Response

from ._cors import CORS, cors_view
from ._event import ServerSentEvent
from ._response import HeadersLike, sse_response
from ._runner import RunnerKind

__all__ = ["EventStreamView", "event_stream_route", "sse_view"]

P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])


@overload
def sse_view(func: Callable[P, Any], /) -> Callable[P, Response]: ...
@overload
def sse_view(
    *,
    ping: float | None = ...,
    headers: HeadersLike | None = ...,
    queue_size: int = ...,
    runner: RunnerKind = ...,
    close_timeout: float = ...,
    max_lifetime: float | None = ...,
    schema: Any = ...,
    cors: CORS | None = ...,
) -> Callable[[Callable[P, Any]], Callable[P, Response]]: ...
def sse_view(
    func: Callable[P, Any] | None = None,
    /,
    *,
    ping: float | None = 15.0,
    headers: HeadersLike | None = None,
    queue_size: int = 64,
    runner: RunnerKind = "auto",
    close_timeout: float = 1.0,
    max_lifetime: float | None = None,
    schema: Any = None,
    cors: CORS | None = None,
) -> Callable[P, Response] | Callable[[Callable[P, Any]], Callable[P, Response]]:
    """Turn a view that returns (or is) a generator into an event stream view.

    .. code-block:: python

        @app.get("/ticks")
        @sse_view(ping=5)
        def ticks():
            for i in range(10):
                yield {"tick": i}
                time.sleep(1)

    A view that returns a :class:`~werkzeug.wrappers.Response` instead (say, a 403) is passed
    through unchanged. The other keyword arguments are those of :func:`sse_response`; with
    ``cors`` the view also answers preflight (``OPTIONS``) requests, and its other responses
    get the CORS headers too.

    :param schema: what the events' ``data`` is, for the API docs (:mod:`sse_sync.openapi`):
        a pydantic model or any type pydantic describes, or a mapping of event name to such a
        type for a stream of several named events. It is recorded on the view, not enforced;
        without it the docs read the generator's return annotation (``Iterator[Item]``).
    """

    def decorate(view: Callable[P, Any]) -> Callable[P, Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
            result = view(*args, **kwargs)
            if isinstance(result, Response):
                return result
            return sse_response(
                result,
                ping=ping,
                headers=headers,
                queue_size=queue_size,
                runner=runner,
                close_timeout=close_timeout,
                max_lifetime=max_lifetime,
            )

        wrapper.__sse_schema__ = schema  # type: ignore[attr-defined]
        return wrapper if cors is None else cors_view(wrapper, cors)

    return decorate if func is None else decorate(func)


def event_stream_route(suffix: str) -> Callable[[F], F]:
    """Mark a method of an :class:`EventStreamView` as one more stream, at ``rule + suffix``.

    :param suffix: appended to the rule the class is registered at, such as ``"/history"``.
    """
    if not suffix.startswith("/"):
        msg = f"Expected a route suffix starting with '/', got {suffix!r}"
        raise ValueError(msg)

    def mark(method: F) -> F:
        method.__sse_route__ = suffix  # type: ignore[attr-defined]
        return method

    return mark


def _close(source: object) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()


class EventStreamView(View):
    """A class-based view whose ``events(**view_args)`` generator is streamed.

    For people coming from fastapi-views' ``ServerSentEventsAPIView``. Set ``schema`` to a
    pydantic model (or any type pydantic validates) and the ``data`` of every event is
    validated and serialized with it; data that does not fit is an error of the source: before
    the first event the response is a 500, after it the stream ends (logged with the reason).
    More streams on the same class are methods marked with :func:`event_stream_route`.

    .. code-block:: python

        class PriceStream(EventStreamView):
            schema = Price
            ping = 5.0

            def events(self, symbol: str) -> Iterator[Price]:
                while True:
                    yield Price(symbol=symbol, value=quote(symbol))
                    time.sleep(1)

            @event_stream_route("/history")
            def history(self, symbol: str) -> Iterator[Price]:
                yield from load_history(symbol)

        PriceStream.register(app, "/prices/<symbol>/stream")   # and .../history
    """

    methods: ClassVar[list[str] | None] = ["GET"]
    #: pydantic model (or type) each event's data must match; ``None`` validates nothing.
    schema: ClassVar[Any] = None
    #: Passed to :func:`sse_response`; see there.
    ping: ClassVar[float | None] = 15.0
    headers: ClassVar[HeadersLike | None] = None
    queue_size: ClassVar[int] = 64
    runner: ClassVar[RunnerKind] = "auto"
    close_timeout: ClassVar[float] = 1.0
    max_lifetime: ClassVar[float | None] = None
    #: Which other sites may read the streams (:class:`~sse_sync.CORS`); preflight
    #: (``OPTIONS``) requests are then answered too.
    cors: ClassVar[CORS | None] = None

    _adapters: ClassVar[dict[type, TypeAdapter[Any]]] = {}

    def __init__(self, route: str = "events") -> None:
        self.route = route

    @classmethod
    def as_view(cls, name: str, *class_args: Any, **class_kwargs: Any) -> RouteCallable:
        """Flask's view function for this class, with :attr:`cors` applied when set."""
        view = super().as_view(name, *class_args, **class_kwargs)
        if cls.cors is None:
            return view
        return cors_view(cast("Callable[..., Response]", view), cls.cors)

    def events(self, **view_args: Any) -> Iterable[Any]:
        """Yield the events of the stream; override it. Plain blocking code is fine."""
        msg = f"{type(self).__name__} must define events(**view_args)"
        raise NotImplementedError(msg)

    def dispatch_request(self, **view_args: Any) -> Response:
        source = getattr(self, self.route)(**view_args)
        if isinstance(source, Response):
            return source
        if type(self).schema is not None:
            source = self._validated(source)
        return sse_response(
            source,
            ping=self.ping,
            headers=self.headers,
            queue_size=self.queue_size,
            runner=self.runner,
            close_timeout=self.close_timeout,
            max_lifetime=self.max_lifetime,
        )

    @classmethod
    def _adapter(cls) -> TypeAdapter[Any]:
        adapter = EventStreamView._adapters.get(cls)
        if adapter is None:
            adapter = EventStreamView._adapters[cls] = TypeAdapter(cls.schema)
        return adapter

    def _validated(self, source: Iterable[Any]) -> Iterator[Any]:
        adapter = self._adapter()
        try:
            for item in source:
                if isinstance(item, ServerSentEvent) and item.data is not None:
                    data = item.data
                elif isinstance(item, (ServerSentEvent, bytes)):
                    yield item
                    continue
                else:
                    data = item
                try:
                    valid = adapter.validate_python(data)
                except ValidationError as exc:
                    # Raised: before the first item it is the response's 500, after it the end
                    # of the stream (logged), as any error of the source.
                    schema = getattr(self.schema, "__name__", self.schema)
                    msg = f"{type(self).__name__}: event data does not match schema {schema}\n{exc}"
                    raise ValueError(msg) from exc
                raw = adapter.dump_json(valid).decode()
                if isinstance(item, ServerSentEvent):
                    fields = item.model_dump(exclude={"data"}, exclude_none=True)
                    yield ServerSentEvent(**fields, raw_data=raw)
                else:
                    yield ServerSentEvent(raw_data=raw)
        finally:
            _close(source)

    @classmethod
    def register(
        cls,
        app: Flask | Blueprint,
        rule: str,
        *,
        endpoint: str | None = None,
        **options: Any,
    ) -> None:
        """Add the stream at ``rule`` and every :func:`event_stream_route` below it.

        :param app: a Flask app or blueprint.
        :param rule: the URL rule of ``events``; may hold view arguments like ``<symbol>``.
        :param endpoint: defaults to the class name in snake case; extra routes get
            ``endpoint + "_" + method name``.
        :param options: passed on to ``add_url_rule``.
        """
        name = endpoint or re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
        app.add_url_rule(rule, view_func=cls.as_view(name), **options)
        for attr in dir(cls):
            suffix = getattr(getattr(cls, attr, None), "__sse_route__", None)
            if suffix is not None:
                view = cls.as_view(f"{name}_{attr}", attr)
                app.add_url_rule(rule.rstrip("/") + suffix, view_func=view, **options)
