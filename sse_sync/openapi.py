"""Event streams in OpenAPI documents: the response object, and the libraries that publish it.

A stream is documented the way ``fastapi.sse`` documents one: the response's
``text/event-stream`` content carries an OpenAPI 3.2 ``itemSchema``, the schema of *one event*
(``data``, ``event``, ``id``, ``retry``), and ``data`` is described as JSON of the model
(``contentMediaType: application/json`` plus ``contentSchema``). Tools that read only OpenAPI
3.1 get ``version="3.1"``: the same event schema as the ``items`` of an array ``schema``, which
is how OpenAPI 3.2 reads ``schema`` on a sequential media type (the whole stream, as an array).

What a stream emits is read from the code (:func:`event_types`): ``EventStreamView.schema``,
``schema=`` on :func:`~sse_sync.sse_view` or on an extra route, else the generator's return
annotation (``Iterator[Item]``). Several named events are a mapping of event name to type.

The integrations import their library only when called; ``import sse_sync.openapi`` imports
none of flask-smorest, flask-openapi3, APIFlask or apispec.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from pydantic import TypeAdapter

from ._event import ServerSentEvent
from ._views import EventStreamView

if TYPE_CHECKING:
    from apispec import BasePlugin
    from typing_extensions import Unpack

__all__ = [
    "DocOptions",
    "EventStreamDoc",
    "apiflask_doc",
    "apispec_plugin",
    "event_stream_response",
    "event_types",
    "flask_openapi3_responses",
    "smorest_doc",
]

F = TypeVar("F", bound=Callable[..., Any])

#: OpenAPI versions a stream can be described for.
Version = Literal["3.2", "3.1"]

MEDIA_TYPE = "text/event-stream"
DESCRIPTION = "An event stream (text/event-stream)."
#: Where pydantic's schemas go: the document's components, as FastAPI and flask-openapi3 do.
REF_TEMPLATE = "#/components/schemas/{model}"
#: Operation extension carrying a stream's component schemas to :func:`apispec_plugin`.
EXTENSION = "x-sse-sync"

# The iterables a generator view is annotated with; their first argument is the item type.
_ITERABLES = {
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
}


@dataclass(frozen=True)
class EventStreamDoc:
    """The OpenAPI response object of a stream and the component schemas it refers to."""

    #: An OpenAPI Response Object: ``description`` and ``content["text/event-stream"]``.
    response: dict[str, Any]
    #: JSON schemas by name, for ``components.schemas``; ``$ref``\\ ed from ``response``.
    schemas: dict[str, Any]
    #: The OpenAPI version the response is written for, ``"3.2"`` or ``"3.1"``.
    version: Version


class DocOptions(TypedDict, total=False):
    """The keyword arguments of :func:`event_stream_response` the integrations pass on."""

    version: Version
    description: str
    route: str


def event_types(source: Any, *, route: str = "events") -> dict[str | None, Any]:
    """What a stream's events carry: their ``data`` type by event name (``None``: unnamed).

    ``source`` is one of:

    - a data type: a pydantic model, or anything pydantic describes (``list[Item]``, ``int``);
    - a mapping of event name to data type, ``{"price": Price, "reset": Reset}``, for a stream
      of several named events (``None`` as a name stands for unnamed, ``message`` events);
    - a view: a function decorated with :func:`~sse_sync.sse_view` or a plain generator
      function, read from its ``schema=`` then its return annotation (``Iterator[Item]``,
      ``Iterable[Item]``, ``Generator[Item, None, None]``);
    - an :class:`~sse_sync.EventStreamView` subclass (or its ``as_view()`` function), read for
      the method named ``route``: that route's own ``schema=``, else the class's ``schema``,
      else the method's annotation.

    A view that says nothing about its data gives ``{None: None}``: events whose ``data`` is
    some string, as FastAPI documents an untyped stream.

    :param source: a type, a mapping, a view function or an ``EventStreamView`` subclass.
    :param route: with an ``EventStreamView``, the method: ``"events"`` or an extra route.
    """
    # Flask's View.as_view() function keeps its class; use it.
    source = getattr(source, "view_class", source)
    if isinstance(source, type) and issubclass(source, EventStreamView):
        method = getattr(source, route, None)
        if not callable(method):
            msg = f"Expected {source.__name__} to have a route method {route!r}, got {method!r}"
            raise ValueError(msg)
        declared = getattr(method, "__sse_schema__", None)
        if declared is None:
            declared = source.schema
        return _events_from(declared, method)
    if inspect.isfunction(source) or inspect.ismethod(source):
        return _events_from(getattr(source, "__sse_schema__", None), source)
    return _as_events(source)


def event_stream_response(
    source: Any,
    *,
    version: Version = "3.2",
    description: str = DESCRIPTION,
    route: str = "events",
) -> EventStreamDoc:
    """Build the OpenAPI response object of a stream.

    .. code-block:: python

        doc = event_stream_response({"price": Price, "reset": Reset})
        operation["responses"]["200"] = doc.response
        components["schemas"].update(doc.schemas)

    With ``version="3.2"`` the ``text/event-stream`` content has an ``itemSchema``: one event,
    an object with ``data``, ``event``, ``id`` and ``retry``. A typed ``data`` is a string of
    JSON (``contentMediaType: application/json``) whose ``contentSchema`` is the type's schema,
    ``$ref``\\ ed into ``components.schemas`` for a model. A named event's ``event`` is that
    name (``const``), and several event types are a ``oneOf``, one schema per event name. With
    ``version="3.1"`` the same event schema is the ``items`` of an array ``schema``, for tools
    that do not read 3.2 yet (Swagger UI 5, for one).

    :param source: what :func:`event_types` accepts: a data type, ``{event name: type}``, a
        view function or an ``EventStreamView`` subclass.
    :param version: ``"3.2"`` (``itemSchema``) or ``"3.1"`` (array ``schema``).
    :param description: the response's description.
    :param route: with an ``EventStreamView``, which route (method name) to describe.
    """
    if version not in ("3.2", "3.1"):
        msg = f"Expected version '3.2' or '3.1', got {version!r}"
        raise ValueError(msg)
    events = event_types(source, route=route)
    # One pass over every type, so models shared by several events are defined once.
    inputs = [
        (name, "serialization", TypeAdapter(data))
        for name, data in events.items()
        if data is not None
    ]
    refs, top = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
    alternatives = [
        _event_schema(name, refs.get((name, "serialization")), several=len(events) > 1)
        for name in events
    ]
    item = alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}
    media = (
        {"itemSchema": item} if version == "3.2" else {"schema": {"type": "array", "items": item}}
    )
    response = {"description": description, "content": {MEDIA_TYPE: media}}
    return EventStreamDoc(response, dict(top.get("$defs", {})), version)


def flask_openapi3_responses(
    target: Any,
    source: Any,
    *,
    status: int = 200,
    **options: Unpack[DocOptions],
) -> dict[str, Any]:
    """The ``responses=`` of a flask-openapi3 route that streams; registers its schemas.

    .. code-block:: python

        app = OpenAPI(__name__)
        app.openapi_version = "3.2.0"     # or keep 3.1.0 and pass version="3.1"

        @app.get("/prices", responses=flask_openapi3_responses(app, {"price": Price}))
        @sse_view
        def prices(): ...

    The models' schemas go into ``target.components_schemas``, where flask-openapi3 keeps the
    ones it generates. Merge the result with other responses: ``{**stream, 404: NotFound}``.

    :param target: the ``OpenAPI`` app, an ``APIBlueprint`` or an ``APIView`` the route is on.
    :param source: what :func:`event_types` accepts.
    :param status: the status code of the stream.
    :param options: ``version``, ``description``, ``route``: see :func:`event_stream_response`;
        ``version`` must match the app's ``openapi_version``.
    """
    try:
        from flask_openapi3.models.media_type import MediaType
    except ImportError as exc:
        msg = (
            "flask_openapi3_responses requires the 'flask-openapi3' package:"
            " pip install 'sse_sync[flask-openapi3]'"
        )
        raise ImportError(msg) from exc
    schemas = getattr(target, "components_schemas", None)
    if not isinstance(schemas, dict):
        msg = (
            "Expected a flask-openapi3 OpenAPI app, APIBlueprint or APIView (with a"
            f" 'components_schemas' dict), got {target!r}"
        )
        raise TypeError(msg)
    doc = event_stream_response(source, **options)
    document = getattr(target, "openapi_version", None)
    if document is not None:
        _check_version(doc.version, str(document))
    schemas.update(doc.schemas)
    # flask-openapi3 validates a response's schema into its own Schema model, which drops the
    # JSON Schema keywords it does not list (contentMediaType, contentSchema): construct the
    # media type as built instead.
    content = {
        media_type: MediaType.model_construct(**media)
        for media_type, media in doc.response["content"].items()
    }
    return {str(status): {**doc.response, "content": content}}


def smorest_doc(
    source: Any = None,
    *,
    status: int = 200,
    **options: Unpack[DocOptions],
) -> Callable[[F], F]:
    """Decorate a flask-smorest view with its stream's response, read from the view itself.

    .. code-block:: python

        api = Api(app, spec_kwargs={"extra_plugins": [apispec_plugin()]})

        @blp.route("/prices")
        @smorest_doc()                      # or smorest_doc({"price": Price, "reset": Reset})
        @sse_view(schema=Price)
        def prices(): ...

    It is flask-smorest's own ``Blueprint.doc`` with ``responses`` filled in; the component
    schemas travel to :func:`apispec_plugin`, which the ``Api`` needs. Set ``OPENAPI_VERSION``
    to ``"3.2.0"`` (or ``"3.1.0"`` and ``version="3.1"``).

    :param source: what :func:`event_types` accepts; ``None`` reads the decorated view.
    :param status: the status code of the stream.
    :param options: ``version``, ``description``, ``route``: see :func:`event_stream_response`;
        ``version`` must match the document's ``OPENAPI_VERSION``.
    """
    try:
        from flask_smorest import Blueprint
    except ImportError as exc:
        msg = "smorest_doc requires the 'flask-smorest' package: pip install 'sse_sync[smorest]'"
        raise ImportError(msg) from exc

    def decorate(view: F) -> F:
        doc = event_stream_response(view if source is None else source, **options)
        document: Callable[[F], F] = Blueprint.doc(
            responses={status: doc.response}, **{EXTENSION: _extension(doc)}
        )
        return document(view)

    return decorate


def apiflask_doc(
    source: Any,
    *,
    status: int = 200,
    **options: Unpack[DocOptions],
) -> dict[str, Any]:
    """The keyword arguments of APIFlask's ``@app.doc`` for a stream.

    .. code-block:: python

        app = APIFlask(__name__, spec_plugins=[apispec_plugin()])
        app.config["OPENAPI_VERSION"] = "3.2.0"

        @app.get("/prices")
        @app.doc(**apiflask_doc({"price": Price}))
        @sse_view
        def prices(): ...

    :param source: what :func:`event_types` accepts.
    :param status: the status code of the stream.
    :param options: ``version``, ``description``, ``route``: see :func:`event_stream_response`;
        ``version`` must match the app's ``OPENAPI_VERSION``.
    """
    doc = event_stream_response(source, **options)
    return {"responses": {status: doc.response}, "extensions": {EXTENSION: _extension(doc)}}


def apispec_plugin() -> BasePlugin:
    """An apispec plugin that puts documented streams' schemas into ``components.schemas``.

    flask-smorest (``Api(spec_kwargs={"extra_plugins": [...]})``) and APIFlask
    (``APIFlask(spec_plugins=[...])``) build their documents with apispec; this plugin reads
    what :func:`smorest_doc` and :func:`apiflask_doc` left on an operation, registers the
    schemas once each, and checks that the document's OpenAPI version is the one the
    response was built for.
    """
    try:
        from apispec import APISpec, BasePlugin
    except ImportError as exc:
        msg = "apispec_plugin requires the 'apispec' package: pip install 'sse_sync[smorest]'"
        raise ImportError(msg) from exc

    class EventStreamPlugin(BasePlugin):
        spec: APISpec | None = None

        def init_spec(self, spec: APISpec) -> None:
            self.spec = spec

        def operation_helper(
            self,
            path: str | None = None,
            operations: dict[Any, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            assert self.spec is not None, "apispec calls init_spec first"
            components = self.spec.components
            for operation in (operations or {}).values():
                stream = operation.pop(EXTENSION, None)
                if stream is None:
                    continue
                _check_version(stream["version"], str(self.spec.openapi_version))
                for name, schema in stream["schemas"].items():
                    if name not in components.schemas:
                        components.schema(name, schema)
                    elif components.schemas[name] != schema:
                        msg = (
                            f"Expected one schema named {name!r} in the document, got two:"
                            f" {components.schemas[name]!r} and {schema!r}; rename a model"
                        )
                        raise ValueError(msg)

    return EventStreamPlugin()


def _extension(doc: EventStreamDoc) -> dict[str, Any]:
    """What :func:`apispec_plugin` reads from an operation: the schemas, for one version."""
    return {"version": doc.version, "schemas": doc.schemas}


def _check_version(version: str, document: str) -> None:
    if not document.startswith(version + "."):
        msg = (
            f"Expected an OpenAPI {version}.x document for a stream described for {version},"
            f" got OpenAPI {document}; set the document's version to {version}.0 or describe"
            f" the stream with version={document[:3]!r}"
        )
        raise ValueError(msg)


def _as_events(declared: Any) -> dict[str | None, Any]:
    if not isinstance(declared, Mapping):
        return {None: declared}
    if not declared:
        msg = "Expected at least one event name and data type, got an empty mapping"
        raise ValueError(msg)
    for name in declared:
        if name is not None and (not isinstance(name, str) or "\r" in name or "\n" in name):
            msg = f"Expected event names as str without CR or LF (or None), got {name!r}"
            raise ValueError(msg)
    return dict(declared)


def _events_from(declared: Any, view: Callable[..., Any]) -> dict[str | None, Any]:
    if declared is not None:
        return _as_events(declared)
    return {None: _item_type(view)}


def _item_type(view: Callable[..., Any]) -> Any:
    """The item type of a generator view's return annotation; ``None`` when it names none."""
    function = inspect.unwrap(view)
    try:
        returns = typing.get_type_hints(function).get("return")
    except NameError as exc:
        msg = (
            f"Expected the annotations of {function.__qualname__} to resolve, got {exc};"
            " import the names they use, or pass schema= explicitly"
        )
        raise TypeError(msg) from exc
    candidates = typing.get_args(returns) if _is_union(returns) else (returns,)
    items = [
        typing.get_args(c)[0]
        for c in candidates
        if typing.get_origin(c) in _ITERABLES and typing.get_args(c)
    ]
    if len(items) != 1 or items[0] is ServerSentEvent or items[0] is Any:
        return None
    return items[0]


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _event_schema(name: str | None, content: Any, *, several: bool) -> dict[str, Any]:
    """The JSON schema of one event as the wire format carries it (WHATWG "event stream")."""
    data: dict[str, Any] = {"type": "string"}
    if content is not None:
        data.update({"contentMediaType": "application/json", "contentSchema": content})
    event: dict[str, Any] = {"type": "string"}
    if name is not None:
        event["const"] = name
    elif several:
        # Without an event field EventSource dispatches "message", so that is the only name
        # an unnamed alternative may carry; it keeps the oneOf's alternatives disjoint.
        event["const"] = "message"
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "data": data,
            "event": event,
            "id": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
        },
    }
    required = ["data"] if content is not None else []
    if name is not None:
        required.append("event")
    if required:
        schema["required"] = required
    if several:
        schema["title"] = name or "message"
    return schema
