"""CORS: one CORS value, the same meaning on sse_response, sse_view and EventStreamView.

A trial found that with ``SSE_CORS_ORIGINS="*"`` and ``SSE_CORS_CREDENTIALS=True`` the
extension reflected any ``Origin`` (``null`` too) with ``Access-Control-Allow-Credentials:
true``: any site could read a logged-in user's private streams. A wildcard with credentials
is now refused wherever CORS is set, and ``null`` is reflected only when listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, request
from werkzeug.test import Client
from werkzeug.wrappers import Request

from sse_sync import CORS, EventStreamView, event_stream_route, sse_response, sse_view

A = "https://a.example"
B = "http://localhost:5173"


def cors_headers(response: Any) -> dict[str, str]:
    """The CORS-related headers of a response (several Vary headers joined)."""
    found = {
        name: ", ".join(response.headers.getlist(name))
        for name in {name for name, _ in response.headers}
        if name.startswith("Access-Control") or name == "Vary"
    }
    response.close()
    return found


def test_wildcard_with_credentials_is_refused() -> None:
    """CORS("*", credentials=True) raises ValueError saying why and what to do instead."""
    with pytest.raises(ValueError, match=r"got '\*': any site could read .* List the origins"):
        CORS("*", credentials=True)


@pytest.mark.parametrize(
    "origins",
    [
        "https://a.example/",
        "https://A.example",
        "https://a.example/path",
        "a.example",
        "https://*.example.com",
        ["*", A],
        [A, "https://a.example:443/x"],
        [],
    ],
)
def test_malformed_origins_are_refused(origins: Any) -> None:
    """Origins that no browser sends (paths, uppercase, patterns) raise ValueError naming them."""
    with pytest.raises(ValueError, match="origin"):
        CORS(origins)


@pytest.mark.parametrize(("origins", "credentials"), [(b"https://a.example", False), (A, "yes")])
def test_wrong_types_are_refused(origins: Any, credentials: Any) -> None:
    """Origins that are not strings and credentials that is not a bool raise TypeError."""
    with pytest.raises(TypeError, match="Expected CORS"):
        CORS(origins, credentials=credentials)


def test_a_cors_value_is_immutable_and_compares_by_value() -> None:
    """CORS values are frozen, equal when they say the same, and show what they say."""
    cors = CORS([A, B], credentials=True)
    assert cors == CORS((A, B), credentials=True) != CORS([A, B])
    assert hash(cors) == hash(CORS((A, B), credentials=True))
    assert cors.origins == (A, B) and cors.credentials is True
    assert CORS(A).origins == (A,) and CORS("*").origins == "*"
    assert repr(cors) == f"CORS({(A, B)!r}, credentials=True)"
    with pytest.raises(AttributeError, match="immutable"):
        cors.credentials = False  # type: ignore[misc]


ALLOW_A = [("Vary", "Origin"), ("Access-Control-Allow-Origin", A)]


@pytest.mark.parametrize(
    ("cors", "origin", "expected"),
    [
        (CORS("*"), None, []),
        (CORS("*"), A, [("Access-Control-Allow-Origin", "*")]),
        (CORS("*"), "null", [("Access-Control-Allow-Origin", "*")]),
        (CORS([A]), A, ALLOW_A),
        (CORS([A]), "https://evil.example", [("Vary", "Origin")]),
        (CORS([A]), None, [("Vary", "Origin")]),
        (CORS([A], credentials=True), "null", [("Vary", "Origin")]),
        (CORS([A], credentials=True), A, [*ALLOW_A, ("Access-Control-Allow-Credentials", "true")]),
        (CORS(["null"]), "null", [("Vary", "Origin"), ("Access-Control-Allow-Origin", "null")]),
    ],
)
def test_headers_for_an_origin(cors: CORS, origin: str | None, expected: Any) -> None:
    """Listed origins are reflected (with credentials if allowed); null only when listed."""
    assert cors.headers(origin) == expected


def make_app() -> Flask:
    app = Flask(__name__)
    cors = CORS([A], credentials=True)

    @app.get("/plain")
    def plain() -> Any:
        return sse_response(iter([1]), ping=None, cors=cors)

    @app.get("/decorated")
    @sse_view(cors=cors, ping=None)
    def decorated() -> Any:
        if request.args.get("deny"):
            return Response("no", status=403)
        return iter([1])

    @app.post("/chat")
    @sse_view(cors=CORS("*"), ping=None)
    def chat() -> Iterator[str]:
        yield from request.get_json()["words"]

    @app.get("/closed")
    @sse_view(ping=None)
    def closed() -> Iterator[int]:
        yield 1

    class Prices(EventStreamView):
        ping = None
        cors = CORS([A, B])

        def events(self, symbol: str) -> Iterator[str]:
            yield symbol

        @event_stream_route("/history")
        def history(self, symbol: str) -> Iterator[str]:
            yield symbol + " before"

    Prices.register(app, "/prices/<symbol>")
    return app


@pytest.mark.parametrize("path", ["/plain", "/decorated", "/prices/x", "/prices/x/history"])
def test_every_entry_point_answers_an_allowed_origin(path: str) -> None:
    """sse_response, sse_view and EventStreamView send the CORS headers their CORS says."""
    client = make_app().test_client()
    response = client.get(path, headers={"Origin": A})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == A
    assert response.headers.get("Access-Control-Allow-Credentials") == (
        None if path.startswith("/prices") else "true"
    )
    assert response.headers.getlist("Vary") == ["Origin"]
    assert response.get_data().startswith(b"data: ")


@pytest.mark.parametrize("path", ["/plain", "/decorated", "/prices/x", "/closed"])
def test_other_origins_get_no_allow_origin(path: str) -> None:
    """An origin not listed (and any origin without cors=) gets no Access-Control-Allow-Origin."""
    response = make_app().test_client().get(path, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in cors_headers(response)


def test_a_refusal_from_an_sse_view_carries_the_cors_headers() -> None:
    """A Response the view returns instead of a stream (a 403) gets the headers, so pages see it."""
    response = make_app().test_client().get("/decorated?deny=1", headers={"Origin": A})
    assert response.status_code == 403
    assert response.headers["Access-Control-Allow-Origin"] == A


@pytest.mark.parametrize(
    ("path", "methods"),
    [("/decorated", "GET, HEAD, OPTIONS"), ("/chat", "OPTIONS, POST"), ("/prices/x", None)],
)
def test_views_answer_preflights(path: str, methods: str | None) -> None:
    """sse_view and EventStreamView answer OPTIONS: the route's methods, the headers asked for."""
    response = (
        make_app()
        .test_client()
        .options(
            path,
            headers={
                "Origin": A,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
    )
    assert response.status_code == 204
    headers = cors_headers(response)
    assert headers["Access-Control-Allow-Origin"] in (A, "*")
    assert headers["Access-Control-Allow-Methods"] == (methods or "GET, HEAD, OPTIONS")
    assert headers["Access-Control-Allow-Headers"] == "content-type,authorization"
    assert headers["Access-Control-Max-Age"] == "7200"
    assert response.headers["Allow"] == headers["Access-Control-Allow-Methods"]


def test_a_preflight_from_another_origin_allows_nothing() -> None:
    """The preflight of an origin not listed answers 204 without any Access-Control-Allow-*."""
    response = (
        make_app()
        .test_client()
        .options(
            "/prices/x",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
    )
    assert response.status_code == 204
    assert cors_headers(response) == {"Vary": "Origin"}


def test_without_cors_flask_answers_options_itself() -> None:
    """A view without cors= keeps Flask's automatic OPTIONS answer, which allows no other site."""
    response = make_app().test_client().options("/closed", headers={"Origin": A})
    assert response.status_code == 200
    assert cors_headers(response) == {}


def test_a_post_stream_reads_its_json_body() -> None:
    """A JSON POST stream allowed for any origin streams what the body asked for."""
    response = (
        make_app()
        .test_client()
        .post("/chat", json={"words": ["hi", "there"]}, headers={"Origin": B})
    )
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.get_data() == b'data: "hi"\n\ndata: "there"\n\n'


def test_preflight_for_a_view_of_your_own() -> None:
    """CORS.preflight answers OPTIONS in a plain view, from a request or a WSGI environ."""
    cors = CORS([A])

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Any:
        if request.method == "OPTIONS":
            return cors.preflight(request.environ if request.path == "/env" else request)
        return sse_response(iter(["hi"]), ping=None, cors=cors)

    client = Client(app)
    for path in ("/", "/env"):
        preflight = client.options(
            path, headers={"Origin": A, "Access-Control-Request-Method": "GET"}
        )
        assert cors_headers(preflight)["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    stream = client.get("/", headers={"Origin": A})
    assert cors_headers(stream) == {"Access-Control-Allow-Origin": A, "Vary": "Origin"}


def _forbidden_source() -> Iterator[Any]:
    from flask import abort

    abort(403)
    yield "never"


def test_an_error_before_the_first_item_carries_the_cors_headers() -> None:
    """An abort(403) in the source answers 403 with the CORS headers, so fetch() can read it."""
    cors = CORS([A])
    app = Flask(__name__)

    @app.get("/view")
    @sse_view(cors=cors)
    def view() -> Iterator[Any]:
        return _forbidden_source()

    @app.get("/own")
    def own() -> Any:
        return sse_response(_forbidden_source(), cors=cors)

    class Forbidden(EventStreamView):
        cors = CORS([A])

        def events(self) -> Iterator[Any]:
            return _forbidden_source()

    Forbidden.register(app, "/class")

    @Request.application  # type: ignore[arg-type]
    def bare(request: Request) -> Any:
        return sse_response(_forbidden_source(), cors=cors)

    client = app.test_client()
    responses = [client.get(path, headers={"Origin": A}) for path in ("/view", "/own", "/class")]
    responses.append(Client(bare).get("/", headers={"Origin": A}))
    for response in responses:
        assert response.status_code == 403
        assert cors_headers(response) == {"Access-Control-Allow-Origin": A, "Vary": "Origin"}
