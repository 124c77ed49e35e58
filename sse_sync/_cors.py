"""CORS: which other sites may read an event stream, with or without cookies, in one place.

The extension's ``SSE_CORS_ORIGINS``/``SSE_CORS_CREDENTIALS``, ``sse_response(cors=...)``,
``sse_view(cors=...)`` and ``EventStreamView.cors`` all build or take a :class:`CORS`, so one
value means the same thing everywhere. Fetch standard, "CORS protocol":
https://fetch.spec.whatwg.org/#http-cors-protocol
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec

from werkzeug.wrappers import Request, Response

__all__ = ["CORS", "add_to_flask_response", "cors_view", "preflight"]

P = ParamSpec("P")

# A serialized origin as browsers send it in the Origin header (RFC 6454, section 6.1):
# lowercase scheme and host, an optional port, nothing after.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.\-]*://(?:\[[0-9a-f:.]+\]|[a-z0-9_.\-]+)(?::[0-9]{1,5})?")


def _check_origin(origin: object) -> str:
    if origin == "null" or (isinstance(origin, str) and _ORIGIN.fullmatch(origin)):
        return origin
    msg = (
        f"Expected each CORS origin to be scheme://host[:port] in lowercase with no path, as "
        f"browsers send it in the Origin header (such as 'https://app.example.com'), or "
        f"'null', got {origin!r}"
    )
    raise ValueError(msg)


class CORS:
    """Which other sites (origins) may read an event stream, and whether with cookies.

    .. code-block:: python

        cors = CORS(["https://app.example.com"], credentials=True)

        @app.get("/feed")
        @sse_view(cors=cors)
        def feed(): ...

        return sse_response(gen(), cors=cors)          # in a view of your own

    A browser lets a page read a response from another origin only if the response names the
    page's origin (or ``*``) in ``Access-Control-Allow-Origin``. ``EventSource`` sends no
    preflight; ``fetch()`` with a custom header (``Authorization``) or a JSON ``POST`` does:
    :func:`~sse_sync.sse_view` and :class:`~sse_sync.EventStreamView` answer it for you, and
    :meth:`preflight` builds the answer for a view of your own.

    :param origins: ``"*"`` for any site, or one origin, or an iterable of origins, each exactly
        as browsers send it: ``scheme://host[:port]``, lowercase, no path (``"https://a.example"``,
        ``"http://localhost:5173"``). The ``null`` origin (sandboxed iframes, ``file:`` pages) is
        allowed only if listed, as ``"null"``; ``"*"`` never reflects it.
    :param credentials: let pages send cookies and HTTP authentication
        (``new EventSource(url, {withCredentials: true})``, ``fetch(url, {credentials:
        "include"})``). Not allowed with ``"*"``: any site could then read your users' streams
        with their cookies.
    :raises ValueError: for ``"*"`` with credentials, a malformed origin, or no origin at all.
    :raises TypeError: for origins that are not strings, or credentials that is not a bool.
    """

    __slots__ = ("_allowed", "credentials", "origins")

    #: ``"*"``, or the allowed origins in the order given.
    origins: str | tuple[str, ...]
    #: Whether cookies and HTTP authentication may be sent.
    credentials: bool
    _allowed: frozenset[str]

    def __init__(self, origins: str | Iterable[str], *, credentials: bool = False) -> None:
        if not isinstance(credentials, bool):
            msg = f"Expected CORS credentials to be True or False, got {credentials!r}"
            raise TypeError(msg)
        if isinstance(origins, str) and origins != "*":
            origins = (origins,)
        if origins == "*":
            if credentials:
                msg = (
                    "Expected a list of origins with credentials, got '*': any site could read "
                    "the streams with its visitors' cookies. List the origins that may, such "
                    "as ['https://app.example.com'], or allow '*' without credentials."
                )
                raise ValueError(msg)
            checked: str | tuple[str, ...] = "*"
        elif isinstance(origins, Iterable) and not isinstance(origins, (bytes, Mapping)):
            checked = tuple(_check_origin(origin) for origin in origins)
            if not checked:
                msg = "Expected at least one CORS origin, got none: to allow none, pass no CORS"
                raise ValueError(msg)
        else:
            msg = f"Expected CORS origins to be '*', an origin or a list of them, got {origins!r}"
            raise TypeError(msg)
        object.__setattr__(self, "origins", checked)
        object.__setattr__(self, "credentials", credentials)
        object.__setattr__(self, "_allowed", frozenset(checked))

    def __setattr__(self, name: str, value: object) -> None:
        msg = f"CORS is immutable: cannot set {name!r}; build a new CORS(...)"
        raise AttributeError(msg)

    def __repr__(self) -> str:
        return f"CORS({self.origins!r}, credentials={self.credentials!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CORS):
            return NotImplemented
        return (self.origins, self.credentials) == (other.origins, other.credentials)

    def __hash__(self) -> int:
        return hash((self.origins, self.credentials))

    def headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The CORS headers of a response to a request whose ``Origin`` header is ``origin``.

        No ``Access-Control-Allow-Origin`` for an origin not allowed, nor for a request without
        ``Origin`` (same-origin); a list of origins always adds ``Vary: Origin``, as the answer
        depends on it.
        """
        if self.origins == "*":
            return [] if origin is None else [("Access-Control-Allow-Origin", "*")]
        headers = [("Vary", "Origin")]
        if origin is not None and origin in self._allowed:
            headers.append(("Access-Control-Allow-Origin", origin))
            if self.credentials:
                headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def preflight(
        self, request: Request | Mapping[str, Any], methods: Iterable[str] = ("GET",)
    ) -> Response:
        """Answer a preflight (``OPTIONS``) request: a 204 allowing ``methods`` to this origin.

        A browser sends one before a cross-origin ``fetch()`` with headers or a method
        ``EventSource`` never uses; the headers it asks for are allowed (the origin is trusted
        already). For a view of your own, route ``OPTIONS`` to it as well:

        .. code-block:: python

            @app.route("/chat", methods=["POST", "OPTIONS"], provide_automatic_options=False)
            def chat():
                if request.method == "OPTIONS":
                    return cors.preflight(request, methods=["POST"])
                return sse_response(answer(request.json), cors=cors)

        :param request: the Werkzeug/Flask request or its WSGI environ.
        :param methods: the methods the route serves.
        """
        environ = request.environ if isinstance(request, Request) else request
        return preflight(self, environ, methods)


def preflight(cors: CORS | None, environ: Mapping[str, Any], methods: Iterable[str]) -> Response:
    """The answer to an ``OPTIONS`` request; without ``cors``, one that allows no other site."""
    allow = ", ".join(sorted({*methods, "OPTIONS"}))
    response = Response(status=204, headers=[("Allow", allow)])
    if cors is None:
        return response
    headers = cors.headers(environ.get("HTTP_ORIGIN"))
    response.headers.extend(headers)
    if any(name == "Access-Control-Allow-Origin" for name, _ in headers):
        response.headers["Access-Control-Allow-Methods"] = allow
        asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        if asked:
            response.headers["Access-Control-Allow-Headers"] = asked
            response.headers.add("Vary", "Access-Control-Request-Headers")
        # Browsers cap it (Chromium: 2 hours); it saves a round trip per stream.
        response.headers["Access-Control-Max-Age"] = "7200"
    return response


def cors_view(view: Callable[P, Response], cors: CORS) -> Callable[P, Response]:
    """Wrap a Flask view: answer preflights, and add ``cors``'s headers to what it returns.

    The wrapper asks Flask to route ``OPTIONS`` to it (``required_methods``) instead of
    answering it itself (``provide_automatic_options``), which would allow no other site.
    """
    from flask import request

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        if request.method == "OPTIONS":
            rule = request.url_rule
            methods = rule.methods if rule is not None and rule.methods else ("GET",)
            return preflight(cors, request.environ, methods)
        add_to_flask_response(cors)
        return view(*args, **kwargs)

    wrapper.required_methods = {"OPTIONS"}  # type: ignore[attr-defined]
    wrapper.provide_automatic_options = False  # type: ignore[attr-defined]
    return wrapper


def add_to_flask_response(cors: CORS) -> None:
    """Add ``cors``'s headers to the response this Flask request ends with, whatever it is.

    Registered with ``after_this_request``, so an error answered instead of the stream (an
    ``abort(403)`` in the source before its first item) carries them too, and a page's
    ``fetch()`` can read its status. Once per request: the first registration wins.
    """
    from flask import after_this_request, request

    environ = request.environ
    if environ.get("sse_sync.cors") is not None:
        return
    environ["sse_sync.cors"] = cors
    headers = cors.headers(request.headers.get("Origin"))

    def add(response: Response) -> Response:
        if "Access-Control-Allow-Origin" not in response.headers:
            response.headers.extend(headers)
        return response

    after_this_request(add)
