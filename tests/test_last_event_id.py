"""last_event_id(): the Last-Event-ID header, else the lastEventId query parameter."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from sse_sync import last_event_id


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({}, "", None),
        ({"Last-Event-ID": "42"}, "", "42"),
        ({"Last-Event-ID": "42"}, "lastEventId=7", "42"),
        ({}, "lastEventId=7", "7"),
        ({"Last-Event-ID": ""}, "lastEventId=7", "7"),
        ({}, "lastEventId=", None),
        ({"Last-Event-ID": "1-0:2-5"}, "", "1-0:2-5"),
    ],
)
def test_header_then_query(headers: dict[str, str], query: str, expected: str | None) -> None:
    """The header wins, the query parameter is the fallback, and empty values count as absent."""
    environ = EnvironBuilder(path="/", query_string=query, headers=headers).get_environ()
    assert last_event_id(environ) == expected
    assert last_event_id(Request(environ)) == expected


def test_current_flask_request() -> None:
    """Without an argument it reads Flask's current request."""
    app = Flask(__name__)
    with app.test_request_context("/?lastEventId=9"):
        assert last_event_id() == "9"
    with app.test_request_context("/", headers={"Last-Event-ID": "3"}):
        assert last_event_id() == "3"


def test_no_request_context_is_a_clear_error() -> None:
    """Outside a request context, the error says where the call is valid."""
    with pytest.raises(
        RuntimeError, match="can only be used when a Flask request context is active"
    ):
        last_event_id()


@pytest.mark.parametrize("bad", [42, "environ", b"x"])
def test_wrong_type_is_rejected(bad: Any) -> None:
    """Something that is neither a request nor an environ is a TypeError."""
    with pytest.raises(TypeError, match="Expected a werkzeug Request"):
        last_event_id(bad)
