"""The command line: ``python -m sse_sync check URL`` (see docs/operations.md, "Self-check")."""

from __future__ import annotations

import argparse
import sys

from ._check import run_check


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        msg = f"expected seconds > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or any(c in text for c in "\r\n\0"):
        msg = f"expected a header as 'Name: value' on one line, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return name.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sse_sync")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="check an event stream as a browser receives it, through the proxies in between",
        description=(
            "Open the event stream at URL as a browser's EventSource does, listen, reconnect "
            "with Last-Event-ID, and report what would break it: status, content type, caching, "
            "compression, buffering, missing pings, resume, HTTP version. Exits with 1 when "
            "there is a problem. Needs httpx: pip install 'sse_sync[client]'."
        ),
    )
    check.add_argument("url", help="the event stream's URL")
    check.add_argument(
        "--duration",
        type=_seconds,
        metavar="SECONDS",
        help="how long to listen (default: the idle timeout plus 5 s)",
    )
    check.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="the shortest idle timeout of the proxies in between; no silence may be longer "
        "(default: 30)",
    )
    check.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header, e.g. for auth; repeatable",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--no-resume", action="store_true", help="do not reconnect with Last-Event-ID"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    :param argv: the arguments after ``python -m sse_sync``.
    """
    args = _parser().parse_args(argv)
    try:
        report = run_check(
            args.url,
            duration=args.duration,
            idle_timeout=args.idle_timeout,
            headers=dict(args.header),
            resume=not args.no_resume,
        )
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.to_text())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
