"""Checking durations, which are seconds as ``float`` everywhere (only ``retry`` is in ms)."""

from __future__ import annotations

import math

__all__ = ["check_seconds", "check_timeout"]


def check_seconds(value: object, name: str) -> None:
    """Reject anything but ``None`` or a finite number of seconds > 0, naming ``name``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        msg = f"Expected {name} to be finite seconds > 0 or None, got {value!r}"
        raise ValueError(msg)


def check_timeout(value: object, name: str) -> None:
    """Reject anything but a finite number of seconds >= 0, naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        msg = f"Expected {name} to be finite seconds >= 0, got {value!r}"
        raise ValueError(msg)
