"""A broker of one's own on ``sse_sync.brokers`` (tests/sqlite_broker.py) meets the contract."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

# The shared contract's asserts get pytest's introspection too.
pytest.register_assert_rewrite("tests.broker_contract")

import sse_sync.brokers  # noqa: E402

from .broker_contract import BrokerContract, MakeBroker, datas, made_by, take  # noqa: E402
from .conftest import ROOT  # noqa: E402
from .sqlite_broker import SQLiteBroker  # noqa: E402

EXTENSION_POINT = {
    "IDEMPOTENCY_WINDOW",
    "MAX_EVENT_SIZE",
    "RESET_EVENT",
    "Broker",
    "ChannelLog",
    "Counters",
    "Entry",
    "Order",
    "Position",
    "ResetReason",
    "Store",
    "Subscription",
    "Wakeup",
    "check_channel",
    "check_idempotency_key",
    "check_limits",
    "check_sizes",
    "prepare_event",
}


@pytest.fixture
def make_broker() -> Iterator[MakeBroker]:
    """A factory of SQLiteBrokers on in-memory databases, closed afterwards."""
    yield from made_by(
        lambda history, max_pending, **options: SQLiteBroker(
            ":memory:", history, max_pending=max_pending, **options
        )
    )


class TestSQLiteBroker(BrokerContract):
    """The contract, through the public extension point alone."""


def test_history_outlives_the_broker(tmp_path: Path) -> None:
    """A broker on the same database file, as after a restart, resumes ids issued before."""
    path = str(tmp_path / "events.db")
    before = SQLiteBroker(path)
    ids = [before.publish("news", i) for i in range(3)]
    before.close()
    after = SQLiteBroker(path)
    try:
        with after.subscribe("news", last_event_id=ids[0]) as sub:
            assert datas(take(sub, 2)) == [1, 2]
            assert after.publish("news", 3) not in ids
            assert datas(take(sub, 1)) == [3]
    finally:
        after.close()


def test_the_extension_point_is_exported() -> None:
    """sse_sync.brokers exports exactly the extension point, sorted, each name defined."""
    assert set(sse_sync.brokers.__all__) == EXTENSION_POINT
    assert sse_sync.brokers.__all__ == sorted(sse_sync.brokers.__all__)
    for name in sse_sync.brokers.__all__:
        assert getattr(sse_sync.brokers, name) is not None
    assert sse_sync.brokers.Subscription is sse_sync.Subscription
    assert sse_sync.brokers.Broker is sse_sync.Broker


def test_docs_quote_the_broker_verbatim() -> None:
    """Each part of docs/brokers.md's SQLite broker excerpt appears as is in its source."""
    source = (ROOT / "tests" / "sqlite_broker.py").read_text()
    text = (ROOT / "docs" / "brokers.md").read_text()
    [excerpt] = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "SQLite" in b]
    pieces = [p for p in re.split(r"^\s*\.\.\.\n", excerpt, flags=re.M) if p.strip()]
    assert len(pieces) > 3
    for piece in pieces:
        assert piece in source, piece
