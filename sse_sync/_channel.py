"""Channel names, and the cursor: one ``Last-Event-ID`` for a subscription to several channels.

A single-channel subscription sends each event with the channel's own id. A subscription to
several sends a *cursor* as the id: ``"<channel>=<id>,<channel>=<id>"``, sorted by channel, with
the position of every channel, so one ``Last-Event-ID`` resumes all of them. Channel names
cannot contain ``=`` or ``,``, so a cursor always splits back into its parts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["check_channel", "format_cursor", "parse_last_event_id"]

_CHANNEL = re.compile(r"[A-Za-z0-9_.:/@-]{1,200}")


def check_channel(channel: object) -> str:
    """Return ``channel`` if it is a valid channel name; raise ``TypeError``/``ValueError``.

    A channel name is 1 to 200 letters, digits and ``_ . : / @ -``.
    """
    if not isinstance(channel, str):
        msg = f"Expected a channel name (str), got {type(channel).__name__!r}"
        raise TypeError(msg)
    if not _CHANNEL.fullmatch(channel):
        msg = f"Expected a channel name of 1 to 200 letters, digits and '_.:/@-', got {channel!r}"
        raise ValueError(msg)
    return channel


def format_cursor(positions: Iterable[tuple[str, str]]) -> str:
    """The cursor of ``(channel, id)`` pairs, given sorted by channel."""
    return ",".join(f"{channel}={id}" for channel, id in positions)


def parse_last_event_id(
    channels: tuple[str, ...], last_event_id: str | None
) -> tuple[dict[str, str | None], bool]:
    """Split a ``Last-Event-ID`` into an id per channel (``None``: live), and whether it could be.

    A plain id resumes a single channel. A cursor is valid when it is ``channel=id`` pairs of
    valid, distinct channel names and names at least one of ``channels`` (the others start
    live: the page added them). Anything else is not valid: every channel then gets a reset.
    """
    if last_event_id is None:
        return dict.fromkeys(channels), True
    if "=" not in last_event_id:
        if len(channels) == 1:
            return {channels[0]: last_event_id}, True
        return dict.fromkeys(channels), False  # one channel's id cannot resume several
    pairs: dict[str, str] = {}
    for piece in last_event_id.split(","):
        channel, sep, id = piece.partition("=")
        if not sep or not id or channel in pairs or not _CHANNEL.fullmatch(channel):
            return dict.fromkeys(channels), False
        pairs[channel] = id
    ids = {channel: pairs.get(channel) for channel in channels}
    if all(id is None for id in ids.values()):
        return ids, False  # a cursor of other channels: nothing to resume from
    return ids, True
