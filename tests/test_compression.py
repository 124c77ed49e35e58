"""Compressors leave event streams alone; a stream whose body was not replaced warns of nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask
from flask_compress import Compress
from werkzeug.test import Client

from sse_sync import ServerSentEvent, sse_response


def _events() -> Iterator[ServerSentEvent]:
    for n in range(1, 4):
        yield ServerSentEvent(data=n, id=str(n))


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip", "deflate"])
def test_flask_compress_passes_the_stream_through(coding: str) -> None:
    """Flask-Compress told to compress text/event-stream leaves the stream as it is."""
    app = Flask(__name__)
    app.config.update(
        COMPRESS_MIMETYPES=["text/event-stream"],
        COMPRESS_ALGORITHM=[coding],
        COMPRESS_ALGORITHM_STREAMING=[coding],
    )
    Compress(app)
    app.get("/stream")(lambda: sse_response(_events(), ping=None))
    response = app.test_client().get("/stream", headers={"Accept-Encoding": coding})
    assert response.headers["Content-Encoding"] == "identity"
    assert response.data == b"id: 1\ndata: 1\n\nid: 2\ndata: 2\n\nid: 3\ndata: 3\n\n"


def test_a_stream_served_as_its_own_body_warns_of_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that iterates the response's own event stream gets no replaced-body warning."""
    response = sse_response(_events(), ping=None)
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        body = Client(response).get("/").data
    assert body.count(b"data: ") == 3
    assert "replaced the body" not in caplog.text
