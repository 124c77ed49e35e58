"""Which peer's rules turn the items of one stream into frames, and its one warning.

The rules themselves are pure and live in :mod:`sse_sync._event`; this module binds one of
them to a stream, with a warning that is logged at most once per stream when an item looks
like another rule's idiom (a dict of event fields under the default rules, a frame that is
not complete, ...): one line in the log names the fix, without flooding it once per event.
"""

from __future__ import annotations

import reprlib
from typing import Any, get_args

from ._event import ENCODERS, Encoder, ItemRules
from ._logging import logger

__all__ = ["ITEM_RULES", "ItemRules", "check_items", "item_encoder"]

#: Every value ``items=`` accepts.
ITEM_RULES: tuple[str, ...] = get_args(ItemRules)

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 80


def check_items(items: object) -> ItemRules:
    """Return ``items`` if it names an item rule, else raise :class:`ValueError`."""
    if items not in ITEM_RULES:
        msg = (
            f"Expected items to be one of {', '.join(map(repr, ITEM_RULES))}, got {items!r}: "
            f"see docs/migrating.md for what each rule does"
        )
        raise ValueError(msg)
    return items  # type: ignore[return-value]


class _WarnOnce:
    """Logs the first warning it is given, then nothing more: one per stream."""

    __slots__ = ("warned",)

    def __init__(self) -> None:
        self.warned = False

    def __call__(self, message: str, item: Any) -> None:
        if not self.warned:
            self.warned = True
            text = message.format(item=_repr.repr(item))
            logger.warning("The event stream's source %s (logged once per stream)", text)


def item_encoder(items: ItemRules = "default") -> Encoder:
    """A fresh encoder for one stream: each item to wire bytes by ``items``' rules.

    It logs (logger ``sse_sync``) at most one warning, the first time an item looks like
    another rule's idiom. Raises :class:`ValueError` for an unknown rule.
    """
    return ENCODERS[check_items(items)](_WarnOnce())
