"""The Flask extension: ``SSE(app)``, a broker from config, ``publish``, and a stream view."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, has_app_context, request
from werkzeug.wrappers import Response

from ._broker import Broker, Subscription, check_channel
from ._cors import CORS, preflight
from ._logging import logger, route_records
from ._memory import MemoryBroker
from ._redis import RedisBroker
from ._request import last_event_id
from ._response import StreamOptions, sse_response

__all__ = ["SSE", "broker_from_url"]

#: Config keys and their defaults; ``init_app`` sets those the app does not.
DEFAULTS: dict[str, Any] = {
    "SSE_BROKER_URL": "memory://",
    "SSE_HISTORY": 1000,
    "SSE_MAX_PENDING": None,
    "SSE_MAX_EVENT_SIZE": 1024 * 1024,
    "SSE_REDIS_PREFIX": "sse:",
    "SSE_URL_PREFIX": "",
    "SSE_REGISTER_BLUEPRINT": True,
    "SSE_DEFAULT_CHANNEL": "sse",
    "SSE_MAX_CHANNELS": 20,
    "SSE_PUBLIC_CHANNELS": None,  # None: [SSE_DEFAULT_CHANNEL]
    "SSE_PING": 15.0,
    "SSE_MAX_LIFETIME": None,
    "SSE_CORS_ORIGINS": None,
    "SSE_CORS_CREDENTIALS": False,
}

Authorize = Callable[[str], bool]


def broker_from_url(url: str, *, history: int = 1000, **options: Any) -> Broker:
    """Create the broker ``url`` names: ``memory://``, or ``redis://``, ``rediss://``, ``unix://``.

    :param history: events kept per channel for replay.
    :param options: ``max_pending``, ``max_event_size`` and ``idempotency_window`` for both;
        ``prefix`` and the rest of :class:`~sse_sync.RedisBroker`'s options for Redis.
    """
    scheme, sep, _ = url.partition("://")
    if sep and scheme == "memory":
        names = ("max_pending", "max_event_size", "idempotency_window")
        return MemoryBroker(history, **{name: options[name] for name in names if name in options})
    if sep and scheme in ("redis", "rediss", "unix"):
        return RedisBroker.from_url(url, history=history, **options)
    msg = (
        f"Expected SSE_BROKER_URL to start with 'memory://', 'redis://', 'rediss://' or "
        f"'unix://', got {url!r}"
    )
    raise ValueError(msg)


@dataclass
class _State:
    """What one app's extension holds (``app.extensions["sse_sync"]``)."""

    broker: Broker
    cors: CORS | None
    public: frozenset[str] | None  # None: every channel


def _cors(config: Mapping[str, Any]) -> CORS | None:
    origins, credentials = config["SSE_CORS_ORIGINS"], config["SSE_CORS_CREDENTIALS"]
    if origins is None:
        if credentials:
            msg = (
                f"Expected SSE_CORS_ORIGINS to list the origins SSE_CORS_CREDENTIALS is for, got "
                f"None with SSE_CORS_CREDENTIALS={credentials!r}: set both, or neither"
            )
            raise ValueError(msg)
        return None
    try:
        return CORS(origins, credentials=credentials)
    except (TypeError, ValueError) as exc:
        msg = f"SSE_CORS_ORIGINS={origins!r}, SSE_CORS_CREDENTIALS={credentials!r}: {exc}"
        raise type(exc)(msg) from exc


def _check_stream_options(config: Mapping[str, Any]) -> None:
    """Check ``SSE_PING`` and ``SSE_MAX_LIFETIME`` as the streams will, naming the keys."""
    ping, lifetime = config["SSE_PING"], config["SSE_MAX_LIFETIME"]
    try:
        StreamOptions(ping=ping, max_lifetime=lifetime)
    except ValueError as exc:
        msg = f"SSE_PING={ping!r}, SSE_MAX_LIFETIME={lifetime!r}: {exc}"
        raise ValueError(msg) from exc


def _public_channels(config: Mapping[str, Any]) -> frozenset[str] | None:
    value = config["SSE_PUBLIC_CHANNELS"]
    if value is None:
        default = config["SSE_DEFAULT_CHANNEL"]
        return frozenset() if default is None else frozenset([default])
    if value == "*":
        return None
    names = list(value) if isinstance(value, Iterable) and not isinstance(value, str) else [value]
    if not all(isinstance(name, str) for name in names):
        msg = (
            f"Expected SSE_PUBLIC_CHANNELS to be '*', a channel or a list of channels, "
            f"got {value!r}"
        )
        raise TypeError(msg)
    for name in names:
        check_channel(name)
    return frozenset(names)


class SSE:
    """The Flask extension: a broker configured from the app, ``publish``, and a stream view.

    .. code-block:: python

        app = Flask(__name__)
        app.config["SSE_BROKER_URL"] = "redis://localhost:6379/0"   # default "memory://"
        sse = SSE(app)

        @sse.authorize
        def may_subscribe(channel: str) -> bool:
            return channel == "news" or channel == f"user:{current_user.id}"

        @app.post("/news")
        def post_news():
            sse.publish("news", request.json, event="news")
            return "", 204

        # Browsers connect to GET /stream?channel=news&channel=user:42

    ``init_app`` reads these config keys (defaults in brackets):

    - ``SSE_BROKER_URL`` [``"memory://"``]: ``memory://`` or a ``redis://`` URL.
    - ``SSE_HISTORY`` [1000], ``SSE_MAX_PENDING`` [None], ``SSE_MAX_EVENT_SIZE`` [1 MiB],
      ``SSE_REDIS_PREFIX`` [``"sse:"``]: the broker's ``history``, ``max_pending``,
      ``max_event_size`` and (Redis) ``prefix``.
    - ``SSE_URL_PREFIX`` [``""``]: where the blueprint goes; the view is ``<prefix>/stream``.
    - ``SSE_REGISTER_BLUEPRINT`` [True]: ``False`` to register :attr:`blueprint` yourself.
    - ``SSE_DEFAULT_CHANNEL`` [``"sse"``, as Flask-SSE]: the channel when the request names
      none; ``None`` answers 400 instead.
    - ``SSE_MAX_CHANNELS`` [20]: the most channels one stream may ask for.
    - ``SSE_PUBLIC_CHANNELS`` [``[SSE_DEFAULT_CHANNEL]``]: the channels anyone may subscribe
      to while no ``authorize`` hook is set; any other answers 403. ``"*"`` opens every
      channel, as Flask-SSE did. Once a hook is set, it decides every channel.
    - ``SSE_PING`` [15.0] and ``SSE_MAX_LIFETIME`` [None]: as for :func:`sse_response`; a
      value it refuses raises :class:`ValueError` here.
    - ``SSE_CORS_ORIGINS`` [None]: ``"*"`` or a list of origins allowed to open the stream
      from another site; ``SSE_CORS_CREDENTIALS`` [False]: allow cookies
      (``new EventSource(url, {withCredentials: true})``), only with a list of origins.
      They mean what :class:`~sse_sync.CORS` means; a configuration it refuses raises
      :class:`ValueError` here.

    :param app: the app, or ``None`` to call :meth:`init_app` later (app factories).
    :param broker: a broker to use instead of the one ``SSE_BROKER_URL`` names.
    :param authorize: called with each channel a stream asks for, inside the request;
        ``False`` answers 403. Also settable with the :meth:`authorize` decorator. Without
        it, only ``SSE_PUBLIC_CHANNELS`` may be subscribed to.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        broker: Broker | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        self.app = app
        self._broker = broker
        self._authorize = authorize
        self._refused_logged = False
        #: The blueprint with the stream view (endpoint ``"sse.stream"``); add your own
        #: ``before_request`` hooks to it if you like.
        self.blueprint = Blueprint("sse", __name__)
        self.blueprint.add_url_rule(
            "/stream",
            "stream",
            self._stream_view,
            methods=["GET", "OPTIONS"],
            provide_automatic_options=False,
        )
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Configure ``app``: create its broker and register the stream blueprint.

        Raises :class:`ValueError` or :class:`TypeError` for a configuration that cannot
        work, such as ``SSE_CORS_ORIGINS="*"`` with ``SSE_CORS_CREDENTIALS=True``.
        """
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        config = app.config
        cors, public = _cors(config), _public_channels(config)
        _check_stream_options(config)
        broker = self._broker
        if broker is None:
            options: dict[str, Any] = {
                "max_pending": config["SSE_MAX_PENDING"],
                "max_event_size": config["SSE_MAX_EVENT_SIZE"],
            }
            if not str(config["SSE_BROKER_URL"]).startswith("memory:"):
                options["prefix"] = config["SSE_REDIS_PREFIX"]
            broker = broker_from_url(
                config["SSE_BROKER_URL"], history=config["SSE_HISTORY"], **options
            )
        default = config["SSE_DEFAULT_CHANNEL"]
        if default is not None:
            check_channel(default)
        app.extensions["sse_sync"] = _State(broker, cors, public)
        if config["SSE_REGISTER_BLUEPRINT"]:
            app.register_blueprint(self.blueprint, url_prefix=config["SSE_URL_PREFIX"] or None)

    def _state(self) -> _State:
        app = self.app
        if app is None:
            if not has_app_context():
                msg = (
                    "The SSE extension can only find its app when an app context is active, "
                    "such as in a view function; push one with 'with app.app_context():', or "
                    "pass the app to SSE(app)."
                )
                raise RuntimeError(msg)
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        state = app.extensions.get("sse_sync")
        if state is None:
            msg = f"Expected sse.init_app(app) to have been called for app {app.name!r}"
            raise RuntimeError(msg)
        assert isinstance(state, _State)
        return state

    @property
    def broker(self) -> Broker:
        """The broker of the app (``SSE(app)``'s, else the current app's)."""
        return self._state().broker

    def authorize(self, func: Authorize) -> Authorize:
        """Decorator: set the function that decides, per channel, who may subscribe.

        It is called inside the stream request (``request``, ``g``, the session and login
        helpers work) with each channel asked for; ``False`` for any answers 403. It decides
        every channel, ``SSE_PUBLIC_CHANNELS`` included.
        """
        self._authorize = func
        return func

    def publish(
        self,
        channel: str,
        data: Any = None,
        *,
        event: str | None = None,
        raw_data: str | None = None,
        retry: int | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Publish one event on ``channel`` through the app's broker; return its id.

        See :meth:`MemoryBroker.publish <sse_sync.MemoryBroker.publish>`: its outcomes, and
        ``idempotency_key`` to retry an unknown outcome without storing the event twice.
        """
        return self.broker.publish(
            channel,
            data,
            event=event,
            raw_data=raw_data,
            retry=retry,
            idempotency_key=idempotency_key,
        )

    def subscribe(
        self, channel: str | Iterable[str], last_event_id: str | None = None
    ) -> Subscription:
        """Subscribe through the app's broker; see :class:`~sse_sync.Broker`."""
        return self.broker.subscribe(channel, last_event_id)

    # -- the view ------------------------------------------------------------------------

    def _error(self, status: int, message: str, headers: list[tuple[str, str]]) -> Response:
        return Response(message + "\n", status=status, mimetype="text/plain", headers=headers)

    def _may_subscribe(self, state: _State, channel: str) -> bool:
        if self._authorize is not None:
            return self._authorize(channel)
        if state.public is None or channel in state.public:
            return True
        if not self._refused_logged:
            self._refused_logged = True
            logger.warning(
                "Refused a stream of channel %r: without an authorize hook only "
                "SSE_PUBLIC_CHANNELS (%s) may be subscribed to. Decide per channel with "
                "@sse.authorize, or list public channels in SSE_PUBLIC_CHANNELS "
                "(see docs/security.md). Logged once.",
                channel,
                sorted(state.public),
            )
        return False

    def _stream_view(self) -> Response:
        route_records(request.environ)  # before any warning this view logs
        state = self._state()
        config = current_app.config
        if request.method == "OPTIONS":
            return preflight(state.cors, request.environ, ("GET", "HEAD"))
        cors = state.cors.headers(request.headers.get("Origin")) if state.cors else []
        channels = list(
            dict.fromkeys(
                name
                for value in request.args.getlist("channel")
                for name in value.split(",")
                if name
            )
        )
        if not channels:
            default = config["SSE_DEFAULT_CHANNEL"]
            if default is None:
                return self._error(
                    400, "Expected at least one channel, such as ?channel=news", cors
                )
            channels = [default]
        limit = int(config["SSE_MAX_CHANNELS"])
        if len(channels) > limit:
            return self._error(
                400, f"Expected at most {limit} channels in one stream, got {len(channels)}", cors
            )
        for name in channels:
            try:
                check_channel(name)
            except ValueError as exc:
                return self._error(400, str(exc), cors)
        for name in channels:
            if not self._may_subscribe(state, name):
                hint = (
                    ""
                    if self._authorize is not None
                    else ": it is not in SSE_PUBLIC_CHANNELS and no authorize hook is set"
                )
                return self._error(403, f"Not allowed to subscribe to channel {name!r}{hint}", cors)
        subscription = state.broker.subscribe(
            channels[0] if len(channels) == 1 else channels, last_event_id=last_event_id()
        )
        return sse_response(
            subscription,
            ping=config["SSE_PING"],
            max_lifetime=config["SSE_MAX_LIFETIME"],
            headers=cors,
        )
