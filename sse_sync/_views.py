"""Flask views that stream: the ``@sse_view`` decorator and the class-based ``EventStreamView``."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, ParamSpec, TypeVar, cast, overload

from flask import Blueprint, Flask, request
from flask.typing import RouteCallable
from flask.views import View
from pydantic import TypeAdapter, ValidationError
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from ._cors import CORS, cors_view
from ._event import (
    ServerSentEvent,
    fields_but_data,
    is_frames,
    is_views_event,
    sse_starlette_fields,
)
from ._items import ItemRules, item_encoder
from ._producer import RunnerKind
from ._response import (
    CLOSE_TIMEOUT,
    ITEMS,
    QUEUE_SIZE,
    RUNNER,
    VIEW_ITEMS,
    EventStreamResponse,
    HeadersLike,
    StreamOptions,
)
from ._stream import OPEN_TIMEOUT

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
    items: ItemRules = ...,
    open_timeout: float = ...,
    stop_at_end: bool = ...,
) -> Callable[[Callable[P, Any]], Callable[P, Response]]: ...
def sse_view(
    func: Callable[P, Any] | None = None,
    /,
    *,
    ping: float | None = 15.0,
    headers: HeadersLike | None = None,
    queue_size: int = QUEUE_SIZE,
    runner: RunnerKind = RUNNER,
    close_timeout: float = CLOSE_TIMEOUT,
    max_lifetime: float | None = None,
    schema: Any = None,
    cors: CORS | None = None,
    items: ItemRules = ITEMS,
    open_timeout: float = OPEN_TIMEOUT,
    stop_at_end: bool = False,
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
    get the CORS headers too. The options are checked here, when the view is decorated.

    :param schema: what the events' ``data`` is, for the API docs (:mod:`sse_sync.openapi`):
        a pydantic model or any type pydantic describes, or a mapping of event name to such a
        type for a stream of several named events. It is recorded on the view, not enforced;
        without it the docs read the generator's return annotation (``Iterator[Item]``).
    """
    options = StreamOptions(
        ping=ping,
        headers=headers,
        queue_size=queue_size,
        runner=runner,
        close_timeout=close_timeout,
        max_lifetime=max_lifetime,
        items=items,
        open_timeout=open_timeout,
        stop_at_end=stop_at_end,
    )

    def decorate(view: Callable[P, Any]) -> Callable[P, Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
            result = view(*args, **kwargs)
            if isinstance(result, Response):
                return result
            return EventStreamResponse._from_options(result, options)

        wrapper.__sse_schema__ = schema  # type: ignore[attr-defined]
        return wrapper if cors is None else cors_view(wrapper, cors)

    return decorate if func is None else decorate(func)


def event_stream_route(suffix: str, *, schema: Any = None) -> Callable[[F], F]:
    """Mark a method of an :class:`EventStreamView` as one more stream, at ``rule + suffix``.

    :param suffix: appended to the rule the class is registered at, such as ``"/history"``.
    :param schema: the pydantic model (or type) this stream's data must match, validated and
        documented (:mod:`sse_sync.openapi`) like the class's ``schema``; ``None``: the
        class's ``schema``.
    """
    if not suffix.startswith("/"):
        msg = f"Expected a route suffix starting with '/', got {suffix!r}"
        raise ValueError(msg)

    def mark(method: F) -> F:
        method.__sse_route__ = suffix  # type: ignore[attr-defined]
        method.__sse_schema__ = schema  # type: ignore[attr-defined]
        return method

    return mark


def _close(source: object) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()


@functools.cache
def _adapter(schema: Any) -> TypeAdapter[Any]:
    return TypeAdapter(schema)


@dataclasses.dataclass(frozen=True)
class _QueryParameter:
    """A parameter of a stream method that the query string fills when the URL rule does not."""

    name: str
    annotation: Any
    adapter: TypeAdapter[Any]
    required: bool
    many: bool  # a list, tuple or set: every value of the name (?tag=a&tag=b)


_COLLECTIONS = (list, tuple, set, frozenset)


def _is_many(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation in _COLLECTIONS or origin in _COLLECTIONS:
        return True
    if origin is typing.Union or origin is types.UnionType:  # list[str] | None
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return len(args) == 1 and _is_many(args[0])
    return False


@functools.cache
def _query_parameters(method: Callable[..., Any]) -> tuple[_QueryParameter, ...]:
    """The keyword parameters of a stream method, with a pydantic adapter for each annotation."""
    hints = typing.get_type_hints(method)
    found = []
    for parameter in list(inspect.signature(method).parameters.values())[1:]:  # not self
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            continue
        annotation = hints.get(parameter.name, str)
        found.append(
            _QueryParameter(
                parameter.name,
                annotation,
                _adapter(annotation),
                parameter.default is parameter.empty,
                _is_many(annotation),
            )
        )
    return tuple(found)


def _query_arguments(method: Callable[..., Any], view_args: dict[str, Any]) -> dict[str, Any]:
    """The arguments of ``method`` that come from the query string, converted and validated.

    Raises :class:`~werkzeug.exceptions.BadRequest` (400) naming a parameter that is missing
    or whose value does not convert to its annotation.
    """
    arguments: dict[str, Any] = {}
    for parameter in _query_parameters(method):
        if parameter.name in view_args:
            continue
        name = parameter.name
        values = request.args.getlist(name)
        if not values:
            if parameter.required:
                expected = getattr(parameter.annotation, "__name__", repr(parameter.annotation))
                msg = f"Missing query parameter {name!r}: expected ?{name}=<{expected}>."
                raise BadRequest(msg)
            continue
        value = values if parameter.many else values[-1]  # the last one, as FastAPI does
        try:
            arguments[name] = parameter.adapter.validate_python(value)
        except ValidationError as exc:
            reasons = "; ".join(error["msg"] for error in exc.errors())
            msg = f"Invalid query parameter {name!r}: {reasons}, got {value!r}."
            raise BadRequest(msg) from exc
    return arguments


class EventStreamView(View):
    """A class-based view whose ``events(...)`` generator is streamed.

    For people coming from fastapi-views' ``ServerSentEventsAPIView``: dicts shaped like its
    events (``{"event": "price", "data": {...}, "id": ..., "retry": ...}``) are events, with
    their ``data`` JSON-encoded (``items`` picks other rules). Set ``schema`` to a pydantic
    model (or any type pydantic validates) and the ``data`` of every event is validated and
    serialized with it; data that does not match is an error of the source: before the first
    event the response is a 500, after it the stream ends (logged with the reason).

    The parameters of ``events`` come from the URL rule (``<symbol>``) or, when the rule has
    no such variable, from the query string, converted to their annotation by pydantic
    (``int``, ``bool``, ``datetime``, ``Literal``, ``list[str]`` for ``?tag=a&tag=b``, ...).
    A missing or invalid query parameter answers ``400 Bad Request`` naming it, before the
    stream starts, as Flask does for a missing ``request.args[...]`` key. More streams on the
    same class are methods marked with :func:`event_stream_route`.

    .. code-block:: python

        class PriceStream(EventStreamView):
            schema = Price
            retry = 5000

            def events(self, symbol: str, every: float = 1.0) -> Iterator[dict[str, Any]]:
                while True:                            # ?every=0.5
                    yield {"event": "price", "data": {"symbol": symbol, "value": quote(symbol)}}
                    time.sleep(every)

            def event_id(self, item: Any) -> str | None:
                return str(time.time_ns())

            @event_stream_route("/history", schema=list[Price])
            def history(self, symbol: str) -> Iterator[list[Price]]:
                yield load_history(symbol)

        PriceStream.register(app, "/prices/<symbol>/stream")   # and .../history
    """

    methods: ClassVar[list[str] | None] = ["GET"]
    #: pydantic model (or type) each event's data must match; ``None`` validates nothing.
    schema: ClassVar[Any] = None
    #: Which rules turn items into events; see :func:`sse_response`.
    items: ClassVar[ItemRules] = VIEW_ITEMS
    #: Reconnection time (ms) sent to clients once, with the first event; ``None``: not sent.
    retry: ClassVar[int | None] = None
    #: Passed to :func:`sse_response`; see there.
    ping: ClassVar[float | None] = 15.0
    headers: ClassVar[HeadersLike | None] = None
    queue_size: ClassVar[int] = QUEUE_SIZE
    runner: ClassVar[RunnerKind] = RUNNER
    close_timeout: ClassVar[float] = CLOSE_TIMEOUT
    max_lifetime: ClassVar[float | None] = None
    open_timeout: ClassVar[float] = OPEN_TIMEOUT
    stop_at_end: ClassVar[bool] = False
    #: Which other sites may read the streams (:class:`~sse_sync.CORS`); preflight
    #: (``OPTIONS``) requests are then answered too.
    cors: ClassVar[CORS | None] = None

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

    def event_id(self, item: Any) -> str | None:
        """The id of the event made of ``item``, for events that do not set their own.

        Override it, for example to send ids clients resume from with ``Last-Event-ID``
        (fastapi-views sends a random UUID). ``None``, the default: no id. It is not called
        for items that are pre-framed (``bytes``, frames given as text) or carry no data.
        """
        return None

    def dispatch_request(self, **view_args: Any) -> Response:
        cls = type(self)
        method = getattr(cls, self.route)
        arguments = _query_arguments(method, view_args)
        source = method(self, **view_args, **arguments)
        if isinstance(source, Response):
            return source
        schema = getattr(method, "__sse_schema__", None) or cls.schema
        if schema is not None or cls.retry is not None or cls.event_id is not _NO_EVENT_ID:
            # Validated here, not when the stream starts: a bad retry is the view's bug.
            retry = b"" if cls.retry is None else ServerSentEvent(retry=cls.retry).encode()
            source = self._frames(source, schema, retry)
        return EventStreamResponse._from_options(source, cls._options())

    @classmethod
    def _options(cls) -> StreamOptions:
        """The stream options the class attributes set (checked)."""
        return StreamOptions(
            ping=cls.ping,
            headers=cls.headers,
            queue_size=cls.queue_size,
            runner=cls.runner,
            close_timeout=cls.close_timeout,
            max_lifetime=cls.max_lifetime,
            items=cls.items,
            open_timeout=cls.open_timeout,
            stop_at_end=cls.stop_at_end,
        )

    def _frames(self, source: Iterable[Any], schema: Any, retry: bytes) -> Iterator[bytes]:
        """``source``'s items as frames: data validated, then the id hook, ``retry`` first."""
        encode = item_encoder(self.items)
        try:
            for item in source:
                frame = encode(item if schema is None else self._validated(item, schema))
                if self._wants_id(item):
                    event_id = self.event_id(item)
                    if event_id is not None:
                        # b"id: ...\n" (validated), then the event's own lines.
                        frame = ServerSentEvent(id=event_id).encode()[:-1] + frame
                if retry:
                    frame, retry = retry + frame, b""
                yield frame
        finally:
            _close(source)

    def _wants_id(self, item: Any) -> bool:
        """Whether ``item`` makes one event with data and without an id of its own."""
        if isinstance(item, ServerSentEvent):
            return item.id is None and (item.data is not None or item.raw_data is not None)
        if isinstance(item, (bytes, memoryview)):
            return False
        if isinstance(item, str):
            return self.items == "sse-starlette" or not is_frames(item)
        if self._is_event_dict(item):
            return item.get("id") is None and item.get("data") is not None
        return True

    def _is_event_dict(self, item: Any) -> bool:
        if self.items == "sse-starlette":
            return isinstance(item, dict)
        return self.items == "fastapi-views" and is_views_event(item)

    def _validated(self, item: Any, schema: Any) -> Any:
        """``item`` with its data validated and serialized by ``schema``, as text."""
        if isinstance(item, (bytes, memoryview)):
            return item
        if isinstance(item, ServerSentEvent):
            if item.data is None:
                return item
            fields = item.model_dump(exclude={"data"}, exclude_none=True)
            data = item.data
        elif self._is_event_dict(item):
            starlette = self.items == "sse-starlette"
            fields = sse_starlette_fields(item) if starlette else fields_but_data(item)
            data = item.get("data")
            if data is None:
                return ServerSentEvent(**fields)
        elif isinstance(item, str) and self.items != "sse-starlette" and is_frames(item):
            return item
        else:
            fields, data = {}, item
        adapter = _adapter(schema)
        try:
            valid = adapter.validate_python(data)
        except ValidationError as exc:
            msg = (
                f"{type(self).__name__}.{self.route} yielded data that does not match schema "
                f"{getattr(schema, '__name__', schema)}: {exc}"
            )
            raise ValueError(msg) from exc
        return ServerSentEvent(raw_data=adapter.dump_json(valid).decode(), **fields)

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
        cls._options()  # a bad option fails here, not at the first request
        name = endpoint or re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
        app.add_url_rule(rule, view_func=cls.as_view(name), **options)
        for attr in dir(cls):
            suffix = getattr(getattr(cls, attr, None), "__sse_route__", None)
            if suffix is not None:
                view = cls.as_view(f"{name}_{attr}", attr)
                app.add_url_rule(rule.rstrip("/") + suffix, view_func=view, **options)


_NO_EVENT_ID = EventStreamView.event_id
