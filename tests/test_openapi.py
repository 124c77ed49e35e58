"""Streams in OpenAPI documents: the response object, what it is read from, and the libraries."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate
from pydantic import BaseModel

from sse_sync import EventStreamView, ServerSentEvent, event_stream_route, sse_view
from sse_sync.client import iter_events
from sse_sync.openapi import (
    apiflask_doc,
    apispec_plugin,
    event_stream_response,
    event_types,
    flask_openapi3_responses,
    smorest_doc,
)


class Tag(BaseModel):
    label: str


class Item(BaseModel):
    name: str
    price: float
    tags: list[Tag] = []


class Reset(BaseModel):
    channel: str


EVENT = {"type": "string"}
ID = {"type": "string"}
RETRY = {"type": "integer", "minimum": 0}
ITEM_DATA = {
    "type": "string",
    "contentMediaType": "application/json",
    "contentSchema": {"$ref": "#/components/schemas/Item"},
}

# What fastapi.sse puts in a document for `async def f() -> AsyncIterable[Item]` (its tests).
FASTAPI_ITEM_STREAM = {
    "text/event-stream": {
        "itemSchema": {
            "type": "object",
            "properties": {"data": ITEM_DATA, "event": EVENT, "id": ID, "retry": RETRY},
            "required": ["data"],
        }
    }
}


def _event_stream(document: dict[str, Any], path: str, version: str = "3.2") -> Any:
    """The text/event-stream content of the 200 response of ``GET path``, validated first."""
    validate(document)
    assert document["openapi"].startswith(version + ".")
    return document["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]


def test_model_stream_matches_fastapi_sse() -> None:
    """A stream of one model is described exactly as fastapi.sse describes it."""
    doc = event_stream_response(Item)
    assert doc.response["content"] == FASTAPI_ITEM_STREAM
    assert set(doc.schemas) == {"Item", "Tag"}
    assert doc.schemas["Item"]["properties"]["tags"]["items"] == {
        "$ref": "#/components/schemas/Tag"
    }


def test_named_event_has_its_name_as_const() -> None:
    """A named event's `event` is that name, and required."""
    item = event_stream_response({"item": Item}).response["content"]["text/event-stream"]
    schema = item["itemSchema"]
    assert schema["properties"]["event"] == {"type": "string", "const": "item"}
    assert schema["required"] == ["data", "event"]


def test_several_event_types_are_one_of_by_name() -> None:
    """Several event types are a oneOf with one schema per event name, unnamed as 'message'."""
    doc = event_stream_response({"item": Item, "reset": Reset, None: str})
    alternatives = doc.response["content"]["text/event-stream"]["itemSchema"]["oneOf"]
    assert [a["properties"]["event"]["const"] for a in alternatives] == [
        "item",
        "reset",
        "message",
    ]
    assert [a["required"] for a in alternatives] == [["data", "event"], ["data", "event"], ["data"]]
    assert alternatives[1]["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/Reset"
    }
    assert alternatives[2]["properties"]["data"]["contentSchema"] == {"type": "string"}
    assert set(doc.schemas) == {"Item", "Reset", "Tag"}


def test_untyped_stream_has_string_data() -> None:
    """A stream that says nothing about its data gets fastapi.sse's untyped event schema."""
    content = event_stream_response(None).response["content"]["text/event-stream"]
    assert content == {
        "itemSchema": {
            "type": "object",
            "properties": {"data": {"type": "string"}, "event": EVENT, "id": ID, "retry": RETRY},
        }
    }


def test_openapi_31_form_is_an_array_schema_of_the_same_events() -> None:
    """version='3.1' puts the same event schema as the items of an array `schema`."""
    three_two = event_stream_response({"item": Item}).response["content"]["text/event-stream"]
    three_one = event_stream_response({"item": Item}, version="3.1").response["content"]
    assert three_one["text/event-stream"] == {
        "schema": {"type": "array", "items": three_two["itemSchema"]}
    }


def test_schema_is_read_from_the_return_annotation() -> None:
    """Iterator[X], Iterable[X] and Generator[X, ...] annotations give X; others give nothing."""

    def iterator() -> Iterator[Item]:
        yield from ()

    def iterable() -> Iterable[Reset]:
        return ()

    def generator() -> Generator[list[Item], None, None]:
        yield from ()

    def events() -> Iterator[ServerSentEvent]:
        yield from ()

    def bare():
        yield from ()

    assert event_types(iterator) == {None: Item}
    assert event_types(sse_view(iterable)) == {None: Reset}
    assert event_types(generator) == {None: list[Item]}
    assert event_types(events) == {None: None}
    assert event_types(bare) == {None: None}


def test_sse_view_schema_wins_over_the_annotation() -> None:
    """`schema=` on sse_view is what the docs read, a type or a mapping of event names."""

    @sse_view(schema={"item": Item, "reset": Reset})
    def items() -> Iterator[ServerSentEvent]:
        yield from ()

    assert event_types(items) == {"item": Item, "reset": Reset}


def test_event_stream_view_schema_and_routes() -> None:
    """An EventStreamView is read from its schema, then the route method's annotation."""

    class Prices(EventStreamView):
        schema = Item

        def events(self, **view_args: Any) -> Iterator[Reset]:
            yield from ()

        @event_stream_route("/resets")
        def resets(self, **view_args: Any) -> Iterator[Reset]:
            yield from ()

    class Untyped(EventStreamView):
        @event_stream_route("/resets")
        def resets(self, **view_args: Any) -> Iterator[Reset]:
            yield from ()

    assert event_types(Prices) == {None: Item}
    assert event_types(Prices, route="resets") == {None: Item}
    assert event_types(Untyped, route="resets") == {None: Reset}
    assert event_types(Prices.as_view("prices")) == {None: Item}


@pytest.mark.parametrize(
    ("source", "kwargs", "error", "message"),
    [
        ({}, {}, ValueError, "at least one event name"),
        ({"a\nb": Item}, {}, ValueError, "without CR or LF"),
        ({3: Item}, {}, ValueError, "got 3"),
        (Item, {"version": "3.0"}, ValueError, "Expected version '3.2' or '3.1', got '3.0'"),
        (EventStreamView, {"route": "nope"}, ValueError, "route method 'nope'"),
    ],
)
def test_bad_input_is_rejected(source: Any, kwargs: Any, error: type, message: str) -> None:
    """Empty or malformed event maps, unknown versions and unknown routes raise clearly."""
    with pytest.raises(error, match=message):
        event_stream_response(source, **kwargs)


def test_unresolvable_annotation_names_the_view() -> None:
    """A return annotation naming something that does not exist says which view and the fix."""

    def broken() -> Iterator[Missing]:  # noqa: F821
        yield from ()

    with pytest.raises(TypeError, match="broken.*pass schema= explicitly"):
        event_types(broken)


def test_importing_does_not_import_the_libraries() -> None:
    """`import sse_sync.openapi` imports none of the documentation libraries."""
    code = (
        "import sys, sse_sync, sse_sync.openapi\n"
        "libs = ('flask_smorest', 'flask_openapi3', 'apiflask', 'apispec', 'marshmallow')\n"
        "bad = sorted(m for m in libs if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# flask-openapi3


def _flask_openapi3_app(version: str) -> Any:
    from flask_openapi3 import OpenAPI

    app = OpenAPI(__name__, security_schemes={})
    app.openapi_version = f"{version}.0"

    @app.get("/items", responses=flask_openapi3_responses(app, Item, version=version))
    @sse_view
    def items() -> Iterator[Item]:
        yield Item(name="a", price=1.0)

    both = flask_openapi3_responses(app, {"item": Item, "reset": Reset}, version=version)

    @app.get("/both", responses=both)
    @sse_view
    def both_view() -> Iterator[ServerSentEvent]:
        yield ServerSentEvent(data=Reset(channel="c"), event="reset")

    return app


@pytest.mark.parametrize("version", ["3.2", "3.1"])
def test_flask_openapi3_document(version: str) -> None:
    """flask-openapi3 publishes the stream, its events and their models in a valid document."""
    document = _flask_openapi3_app(version).api_doc
    content = _event_stream(document, "/items", version)
    items = content["itemSchema"] if version == "3.2" else content["schema"]["items"]
    assert items["properties"]["data"] == ITEM_DATA
    both = _event_stream(document, "/both", version)
    both_items = both["itemSchema"] if version == "3.2" else both["schema"]["items"]
    assert [a["properties"]["event"]["const"] for a in both_items["oneOf"]] == ["item", "reset"]
    assert {"Item", "Reset", "Tag"} <= set(document["components"]["schemas"])
    assert document["components"]["schemas"]["Item"]["properties"]["name"] == {
        "title": "Name",
        "type": "string",
    }


def test_flask_openapi3_version_mismatch_is_rejected() -> None:
    """Describing a 3.2 stream in flask-openapi3's default 3.1 document raises with the fix."""
    from flask_openapi3 import OpenAPI

    app = OpenAPI(__name__)
    with pytest.raises(ValueError, match=r"OpenAPI 3\.2\.x document.*got OpenAPI 3\.1\.0"):
        flask_openapi3_responses(app, Item)


def test_flask_openapi3_rejects_other_targets() -> None:
    """A plain Flask app is not a flask-openapi3 target."""
    with pytest.raises(TypeError, match="Expected a flask-openapi3 OpenAPI app"):
        flask_openapi3_responses(Flask(__name__), Item)


# flask-smorest


class PriceStream(EventStreamView):
    schema = Item

    def events(self, **view_args: Any) -> Iterator[Item]:
        yield Item(name=view_args["symbol"], price=1.0)


def _smorest_document(version: str) -> Any:
    from flask_smorest import Api, Blueprint

    app = Flask(__name__)
    app.config.update(
        API_TITLE="t",
        API_VERSION="1",
        OPENAPI_VERSION=f"{version}.0",
    )
    api = Api(app, spec_kwargs={"extra_plugins": [apispec_plugin()]})
    blp = Blueprint("streams", __name__)

    @blp.route("/items")
    @smorest_doc(version=version)
    @sse_view(schema=Item)
    def items() -> Iterator[ServerSentEvent]:
        yield ServerSentEvent(data=Item(name="a", price=1.0))

    @blp.route("/both")
    @smorest_doc({"item": Item, "reset": Reset}, version=version)
    @sse_view
    def both() -> Iterator[ServerSentEvent]:
        yield ServerSentEvent(data=Reset(channel="c"), event="reset")

    view = smorest_doc(version=version)(PriceStream.as_view("prices"))
    blp.add_url_rule("/prices/<symbol>", view_func=view)
    api.register_blueprint(blp)
    return api.spec.to_dict()


@pytest.mark.parametrize("version", ["3.2", "3.1"])
def test_flask_smorest_document(version: str) -> None:
    """flask-smorest publishes streams read from sse_view, a mapping and an EventStreamView."""
    document = _smorest_document(version)
    for path in ("/items", "/prices/{symbol}"):
        content = _event_stream(document, path, version)
        items = content["itemSchema"] if version == "3.2" else content["schema"]["items"]
        assert items["properties"]["data"] == ITEM_DATA
    both = _event_stream(document, "/both", version)
    both_items = both["itemSchema"] if version == "3.2" else both["schema"]["items"]
    assert [a["properties"]["event"]["const"] for a in both_items["oneOf"]] == ["item", "reset"]
    assert set(document["components"]["schemas"]) >= {"Item", "Reset", "Tag"}
    assert "x-sse-sync" not in document["paths"]["/items"]["get"]


def test_flask_smorest_version_mismatch_is_rejected() -> None:
    """A 3.2 stream in a 3.1 smorest document raises with the fix when the spec is built."""
    with pytest.raises(ValueError, match=r"OpenAPI 3\.2\.x document.*got OpenAPI 3\.1\.0"):
        _smorest_document_mismatched()


def _smorest_document_mismatched() -> Any:
    from flask_smorest import Api, Blueprint

    app = Flask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.1.0")
    api = Api(app, spec_kwargs={"extra_plugins": [apispec_plugin()]})
    blp = Blueprint("streams", __name__)

    @blp.route("/items")
    @smorest_doc()
    @sse_view(schema=Item)
    def items() -> Iterator[Item]:
        yield from ()

    api.register_blueprint(blp)


def test_a_name_with_two_schemas_is_rejected() -> None:
    """Two different models under one component name raise instead of one replacing the other."""
    from apispec import APISpec

    spec = APISpec("t", "1", "3.2.0", plugins=[apispec_plugin()])
    spec.components.schema("Item", {"type": "string"})
    doc = event_stream_response(Item)
    operation = {"responses": {"200": doc.response}}
    operation["x-sse-sync"] = {"version": "3.2", "schemas": doc.schemas}
    with pytest.raises(ValueError, match="one schema named 'Item'"):
        spec.path("/items", operations={"get": operation})


# APIFlask


def test_apiflask_document() -> None:
    """APIFlask publishes the stream with the same plugin and its own @app.doc."""
    from apiflask import APIFlask

    app = APIFlask(__name__, spec_plugins=[apispec_plugin()])
    app.config["OPENAPI_VERSION"] = "3.2.0"

    @app.get("/items")
    @app.doc(**apiflask_doc({"item": Item}))
    @sse_view
    def items() -> Iterator[ServerSentEvent]:
        yield from ()

    with app.app_context():
        document = app.spec
    content = _event_stream(document, "/items")
    assert content["itemSchema"]["properties"]["data"] == ITEM_DATA
    assert content["itemSchema"]["properties"]["event"]["const"] == "item"


# The example app


@pytest.mark.parametrize("version", ["3.2", "3.1"])
def test_example_app_document(version: str) -> None:
    """examples/openapi_app.py serves a valid document at /openapi.json with both streams."""
    from examples.openapi_app import create_app

    document = create_app(version).test_client().get("/openapi.json").get_json()
    content = _event_stream(document, "/items/stream", version)
    items = content["itemSchema"] if version == "3.2" else content["schema"]["items"]
    assert items["properties"]["data"] == ITEM_DATA
    assert set(document["components"]["schemas"]["Item"]["properties"]) == {"name", "price"}
    prices = _event_stream(document, "/prices/{symbol}/stream", version)
    events = prices["itemSchema"] if version == "3.2" else prices["schema"]["items"]
    assert [a["properties"]["event"]["const"] for a in events["oneOf"]] == ["price", "reset"]


def test_example_app_streams_what_it_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's streams send the items and the named price events their docs describe."""
    import examples.openapi_app as example

    monkeypatch.setattr(example, "DELAY", 0.0)
    client = example.create_app().test_client()
    with client.get("/items/stream", buffered=False) as response:
        items = [Item.model_validate_json(e.data) for e in iter_events(response.response)]
    assert [i.name for i in items] == ["Plumbus", "Portal Gun"]
    with client.get("/prices/ACME/stream", buffered=False) as response:
        events = list(iter_events(response.response))
    assert [(e.type, e.last_event_id) for e in events] == [
        ("price", "1"),
        ("price", "2"),
        ("price", "3"),
    ]
    assert example.Price.model_validate_json(events[0].data).symbol == "ACME"
