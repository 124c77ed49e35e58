"""The Flask extension: broker from config, publish, the stream view, authorization, CORS."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from sse_sync import SSE, MemoryBroker, RedisBroker
from sse_sync._flask import broker_from_url
from sse_sync.testing import read_events


def make_app(**config: Any) -> Flask:
    """An app whose channels are all public, unless ``config`` says otherwise."""
    app = Flask(__name__)
    app.config.update({"SSE_PING": 0.05, "SSE_PUBLIC_CHANNELS": "*", **config})
    return app


@pytest.fixture
def app() -> Flask:
    return make_app()


@pytest.fixture
def sse(app: Flask) -> SSE:
    return SSE(app)


@pytest.fixture
def client(app: Flask, sse: SSE) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def stream(client: FlaskClient, path: str, **kwargs: Any) -> Any:
    response = client.get(path, buffered=False, **kwargs)
    assert response.status_code == 200, response.get_data()
    return response


def test_defaults_use_a_memory_broker(app: Flask, sse: SSE) -> None:
    """Without config, the broker is a MemoryBroker with a history of 1000."""
    assert isinstance(sse.broker, MemoryBroker)
    assert sse.broker.history == 1000
    assert app.config["SSE_BROKER_URL"] == "memory://"
    assert app.extensions["sse_sync"].broker is sse.broker


def test_stream_view_streams_published_events(client: FlaskClient, sse: SSE) -> None:
    """GET /stream?channel=news streams what sse.publish() sends to 'news'."""
    response = stream(client, "/stream?channel=news")
    assert response.mimetype == "text/event-stream"
    event_id = sse.publish("news", {"title": "hi"}, event="headline")
    sse.publish("other", "not for us")
    [event] = read_events(response, 1)
    assert (event.type, event.json(), event.last_event_id) == (
        "headline",
        {"title": "hi"},
        event_id,
    )
    response.close()


def test_several_channels_and_resume(client: FlaskClient, sse: SSE) -> None:
    """Repeated and comma-separated channel parameters share one stream; its cursor resumes."""
    response = stream(client, "/stream?channel=a,b&channel=c")
    sse.publish("a", 1)
    sse.publish("c", 2)
    events = read_events(response, 2)
    response.close()
    cursor = events[0].last_event_id
    assert [e.json() for e in events] == [1, 2]
    assert cursor.startswith("a=") and ",b=" in cursor and ",c=" in cursor
    resumed = stream(
        client, "/stream?channel=a&channel=b&channel=c", headers={"Last-Event-ID": cursor}
    )
    assert [e.json() for e in read_events(resumed, 1)] == [2]
    resumed.close()


def test_last_event_id_query_parameter(client: FlaskClient, sse: SSE) -> None:
    """The lastEventId query parameter resumes like the header does."""
    first = sse.publish("q", 1)
    sse.publish("q", 2)
    response = stream(client, f"/stream?channel=q&lastEventId={first}")
    assert [e.json() for e in read_events(response, 1)] == [2]
    response.close()


def test_default_channel_is_flask_sse_s(client: FlaskClient, sse: SSE) -> None:
    """Without a channel parameter the stream is channel 'sse', as with Flask-SSE."""
    response = stream(client, "/stream")
    sse.publish("sse", "hello")
    assert read_events(response, 1)[0].json() == "hello"
    response.close()


def test_no_default_channel_needs_a_parameter() -> None:
    """With SSE_DEFAULT_CHANNEL None, a stream without a channel is a 400."""
    app = make_app(SSE_DEFAULT_CHANNEL=None)
    SSE(app)
    response = app.test_client().get("/stream")
    assert response.status_code == 400
    assert b"Expected at least one channel" in response.data


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("channel=no%20spaces", b"channel name"),
        ("channel=" + ",".join("abcdefghijklmnopqrstu"), b"at most 20"),
    ],
)
def test_bad_channels_are_400(client: FlaskClient, query: str, message: bytes) -> None:
    """A malformed channel name or too many channels answer 400 with the reason."""
    response = client.get(f"/stream?{query}")
    assert response.status_code == 400
    assert message in response.data


def test_authorize_hook_decides_per_channel(app: Flask, sse: SSE, client: FlaskClient) -> None:
    """The authorize hook sees each channel inside the request; one refusal answers 403."""
    seen: list[tuple[str, str | None]] = []

    @sse.authorize
    def may(channel: str) -> bool:
        seen.append((channel, request.headers.get("X-User")))
        return channel == "public" or channel == f"user:{request.headers.get('X-User')}"

    denied = client.get("/stream?channel=public&channel=user:bob", headers={"X-User": "ann"})
    assert denied.status_code == 403
    assert b"'user:bob'" in denied.data
    allowed = stream(client, "/stream?channel=public&channel=user:ann", headers={"X-User": "ann"})
    allowed.close()
    assert seen == [("public", "ann"), ("user:bob", "ann"), ("public", "ann"), ("user:ann", "ann")]


def test_authorize_argument() -> None:
    """The hook can also be given to the constructor."""
    app = make_app()
    SSE(app, authorize=lambda channel: False)
    assert app.test_client().get("/stream?channel=x").status_code == 403


@pytest.mark.parametrize(
    ("origins", "credentials", "origin", "expected"),
    [
        (None, False, "https://a.example", {}),
        ("*", False, None, {}),
        ("*", False, "https://a.example", {"Access-Control-Allow-Origin": "*"}),
        ("*", False, "null", {"Access-Control-Allow-Origin": "*"}),
        (
            ["https://a.example", "https://b.example"],
            True,
            "https://b.example",
            {
                "Access-Control-Allow-Origin": "https://b.example",
                "Vary": "Origin",
                "Access-Control-Allow-Credentials": "true",
            },
        ),
        (["https://a.example"], True, "null", {"Vary": "Origin"}),
        (["https://a.example"], False, "https://evil.example", {"Vary": "Origin"}),
        (
            "https://a.example",
            False,
            "https://a.example",
            {"Access-Control-Allow-Origin": "https://a.example", "Vary": "Origin"},
        ),
    ],
)
def test_cors_headers(
    origins: Any, credentials: bool, origin: str | None, expected: dict[str, str]
) -> None:
    """CORS headers follow SSE_CORS_ORIGINS/SSE_CORS_CREDENTIALS for the request's Origin."""
    app = make_app(SSE_CORS_ORIGINS=origins, SSE_CORS_CREDENTIALS=credentials)
    SSE(app)
    headers = {"Origin": origin} if origin else {}
    response = app.test_client().get("/stream", headers=headers, buffered=False)
    cors = {
        k: v for k, v in response.headers.items() if k.startswith("Access-Control") or k == "Vary"
    }
    response.close()
    assert cors == expected


@pytest.mark.parametrize("factory", [True, False])
def test_wildcard_with_credentials_is_refused_at_init_app(factory: bool) -> None:
    """SSE_CORS_ORIGINS="*" with SSE_CORS_CREDENTIALS=True raises ValueError at init_app."""
    app = make_app(SSE_CORS_ORIGINS="*", SSE_CORS_CREDENTIALS=True)
    with pytest.raises(ValueError, match=r"SSE_CORS_ORIGINS='\*'.*List the origins"):
        SSE().init_app(app) if factory else SSE(app)
    assert "sse.stream" not in app.view_functions


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"SSE_CORS_CREDENTIALS": True}, ValueError, "got None with SSE_CORS_CREDENTIALS=True"),
        ({"SSE_CORS_ORIGINS": ["https://a.example/"]}, ValueError, "SSE_CORS_ORIGINS=.*no path"),
        ({"SSE_CORS_ORIGINS": "*", "SSE_CORS_CREDENTIALS": "false"}, TypeError, "True or False"),
    ],
)
def test_cors_config_that_cannot_work_is_refused(
    config: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Credentials without origins, a malformed origin or a non-bool credentials raise."""
    with pytest.raises(error, match=message):
        SSE(make_app(**config))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"SSE_PING": 0}, "SSE_PING=0, SSE_MAX_LIFETIME=None: Expected ping to be finite"),
        ({"SSE_MAX_LIFETIME": "1h"}, "SSE_MAX_LIFETIME='1h': Expected max_lifetime to be"),
    ],
)
def test_stream_options_that_cannot_work_are_refused(config: dict[str, Any], message: str) -> None:
    """SSE_PING and SSE_MAX_LIFETIME are checked at init_app, as every stream's options are."""
    with pytest.raises(ValueError, match=message):
        SSE(make_app(**config))


def test_cors_preflight() -> None:
    """OPTIONS answers a preflight allowing GET with the headers asked for."""
    app = make_app(SSE_CORS_ORIGINS=["https://a.example"])
    SSE(app)
    response = app.test_client().options(
        "/stream",
        headers={
            "Origin": "https://a.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://a.example"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == "last-event-id"


def test_options_without_cors_allows_no_other_site() -> None:
    """Without SSE_CORS_ORIGINS, OPTIONS answers 204 with Allow and no CORS header."""
    app = make_app()
    SSE(app)
    response = app.test_client().options("/stream", headers={"Origin": "https://a.example"})
    assert response.status_code == 204
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert not [name for name, _ in response.headers if name.startswith("Access-Control")]


def test_cors_headers_on_refusals() -> None:
    """A 403 carries the CORS headers too, so the page can see the refusal."""
    app = make_app(SSE_CORS_ORIGINS="*")
    SSE(app, authorize=lambda channel: False)
    response = app.test_client().get("/stream", headers={"Origin": "https://a.example"})
    assert response.status_code == 403
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_only_the_default_channel_is_public_by_default(caplog: pytest.LogCaptureFixture) -> None:
    """Without a hook only SSE_DEFAULT_CHANNEL may be read; others answer 403, logged once.

    A trial subscribed to ``user:42`` without any authorize hook: every channel was public
    and nothing was logged.
    """
    app = make_app(SSE_PUBLIC_CHANNELS=None)  # as when it is not set
    SSE(app)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="sse_sync"):
        refused = [client.get(f"/stream?channel={name}") for name in ("user:42", "sse,user:7")]
    assert [r.status_code for r in refused] == [403, 403]
    assert refused[0].data == (
        b"Not allowed to subscribe to channel 'user:42': it is not in SSE_PUBLIC_CHANNELS "
        b"and no authorize hook is set\n"
    )
    [record] = caplog.records
    assert "'user:42'" in record.message
    assert "@sse.authorize" in record.message and "SSE_PUBLIC_CHANNELS (['sse'])" in record.message
    for path in ("/stream", "/stream?channel=sse"):
        allowed = client.get(path, buffered=False)
        assert allowed.status_code == 200
        allowed.close()


@pytest.mark.parametrize(
    ("public", "default", "open_", "closed"),
    [
        (["news", "prices"], "sse", ["news", "prices", "news,prices"], ["sse", "user:1"]),
        ("news", "sse", ["news"], ["sse"]),
        ([], "sse", [], ["sse", "news"]),
        (None, None, [], ["sse", "news"]),
        (None, "lobby", ["lobby"], ["sse"]),
        ("*", "sse", ["sse", "user:42", "a,b"], []),
    ],
)
def test_public_channels_config(
    public: Any, default: str | None, open_: list[str], closed: list[str]
) -> None:
    """SSE_PUBLIC_CHANNELS lists the open channels ("*": all); None means the default one."""
    app = make_app(SSE_PUBLIC_CHANNELS=public, SSE_DEFAULT_CHANNEL=default)
    SSE(app)
    client = app.test_client()
    for channels in open_:
        response = client.get(f"/stream?channel={channels}", buffered=False)
        assert response.status_code == 200, channels
        response.close()
    for channels in closed:
        assert client.get(f"/stream?channel={channels}").status_code == 403, channels


def test_a_hook_set_after_init_app_decides_every_channel() -> None:
    """Once @sse.authorize is set (after init_app too), it decides public channels as well."""
    app = make_app(SSE_PUBLIC_CHANNELS=None)
    sse = SSE(app)
    assert app.test_client().get("/stream?channel=user:1").status_code == 403

    @sse.authorize
    def may(channel: str) -> bool:
        return channel == "user:1"

    client = app.test_client()
    response = client.get("/stream?channel=user:1", buffered=False)
    assert response.status_code == 200
    response.close()
    refused = client.get("/stream?channel=sse")
    assert (refused.status_code, refused.data) == (
        403,
        b"Not allowed to subscribe to channel 'sse'\n",
    )


@pytest.mark.parametrize(
    ("public", "error"), [(["ok", "no spaces"], ValueError), ([1, 2], TypeError), (3, TypeError)]
)
def test_bad_public_channels_are_refused(public: Any, error: type[Exception]) -> None:
    """A malformed SSE_PUBLIC_CHANNELS raises at init_app."""
    with pytest.raises(error, match="channel"):
        SSE(make_app(SSE_PUBLIC_CHANNELS=public))


def test_app_factory_and_app_context() -> None:
    """SSE() then init_app(app): publish works in an app context and says how otherwise."""
    sse = SSE()
    app = make_app()
    sse.init_app(app)
    with pytest.raises(RuntimeError, match="app context"):
        sse.publish("x", 1)
    with app.app_context():
        assert sse.publish("x", 1).endswith(":1")
    other = Flask("other")
    with other.app_context(), pytest.raises(RuntimeError, match="init_app"):
        sse.publish("x", 1)


def test_url_prefix_and_manual_blueprint() -> None:
    """SSE_URL_PREFIX moves the view; SSE_REGISTER_BLUEPRINT False leaves it to you."""
    app = make_app(SSE_URL_PREFIX="/events")
    SSE(app)
    assert app.url_map.bind("x").match("/events/stream")[0] == "sse.stream"
    manual = make_app(SSE_REGISTER_BLUEPRINT=False)
    sse = SSE(manual)
    assert "sse.stream" not in manual.view_functions
    calls: list[str] = []
    sse.blueprint.before_request(lambda: calls.append("hook"))  # Flask-SSE style auth hook
    manual.register_blueprint(sse.blueprint, url_prefix="/live")
    response = manual.test_client().get("/live/stream", buffered=False)
    response.close()
    assert calls == ["hook"]


def test_explicit_broker_wins() -> None:
    """A broker passed to SSE() is used instead of SSE_BROKER_URL."""
    broker = MemoryBroker(history=5)
    app = make_app(SSE_BROKER_URL="redis://nowhere.invalid:1/0")
    sse = SSE(app, broker=broker)
    assert sse.broker is broker


def test_max_lifetime_ends_stream_with_retry_hint() -> None:
    """With SSE_MAX_LIFETIME the stream ends by itself after a retry: hint."""
    app = make_app(SSE_MAX_LIFETIME=0.2, SSE_PING=5.0)
    SSE(app)
    response = app.test_client().get("/stream?channel=x", buffered=False)
    body = b"".join(response.response)
    assert body.startswith(b"retry: ") and body.endswith(b"\n\n")
    assert 1000 <= int(body[7:-2]) <= 5000


@pytest.mark.parametrize("url", ["memcached://x", "redis:/nope", "memory"])
def test_bad_broker_url(url: str) -> None:
    """An unknown SSE_BROKER_URL names the schemes it takes."""
    with pytest.raises(ValueError, match="'memory://', 'redis://'"):
        broker_from_url(url)


@pytest.mark.redis
def test_redis_broker_from_config(redis_server: Any) -> None:
    """SSE_BROKER_URL redis://... makes a RedisBroker, with the history and prefix given."""
    app = make_app(SSE_BROKER_URL=redis_server.url, SSE_HISTORY=50, SSE_REDIS_PREFIX="app:")
    sse = SSE(app)
    broker = sse.broker
    assert isinstance(broker, RedisBroker)
    assert (broker.history, broker.prefix) == (50, "app:")
    try:
        with app.test_client() as client:
            response = stream(client, "/stream?channel=r")
            event_id = sse.publish("r", {"via": "redis"})
            [event] = read_events(response, 1)
            assert (event.json(), event.last_event_id) == ({"via": "redis"}, event_id)
            response.close()
    finally:
        broker.close()


def test_head_requests_register_no_channel(client: FlaskClient, sse: SSE) -> None:
    """HEAD requests for streams of arbitrary channels leave no state in the broker."""
    for i in range(500):
        assert client.head(f"/stream?channel=rand{i}").status_code == 200
    assert sse.broker.stats()["channels"] == 0


def test_publish_with_an_idempotency_key_stores_once(sse: SSE) -> None:
    """SSE.publish passes idempotency_key on: a retry with the same key returns the first id."""
    first = sse.publish("news", {"n": 1}, idempotency_key="order-7")
    again = sse.publish("news", {"n": 1}, idempotency_key="order-7")
    other = sse.publish("news", {"n": 1}, idempotency_key="order-8")
    assert first == again != other
    assert sse.broker.stats()["published"] == 2
