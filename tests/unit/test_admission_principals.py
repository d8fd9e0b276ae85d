"""What the process remembers of API keys: bounded in time and in number."""

from __future__ import annotations

from uuid import uuid4

from common.admission import Principals
from common.auth import Principal


def principal(name: str = "k") -> Principal:
    return Principal(key_id=uuid4(), prefix="abcdefgh", name=name, user_id=uuid4(), user="u")


def test_a_remembered_principal_expires_after_its_ttl() -> None:
    remembered = Principals(ttl_s=30)
    p = principal()
    remembered.put(b"k", p, b"epoch-1", now=100.0)

    hit = remembered.get(b"k", now=129.9)
    assert hit is not None and hit.principal == p and hit.epoch == b"epoch-1"
    assert remembered.get(b"k", now=130.0) is None
    assert remembered.get(b"k", now=100.0) is None  # expired entries are dropped


def test_the_least_recently_used_goes_first_when_full() -> None:
    remembered = Principals(ttl_s=30, size=2)
    remembered.put(b"a", principal("a"), b"e", now=0)
    remembered.put(b"b", principal("b"), b"e", now=0)
    assert remembered.get(b"a", now=1) is not None  # a is now the most recent
    remembered.put(b"c", principal("c"), b"e", now=1)

    assert remembered.get(b"b", now=1) is None
    assert remembered.get(b"a", now=1) is not None
    assert remembered.get(b"c", now=1) is not None


def test_forget_and_clear() -> None:
    remembered = Principals()
    remembered.put(b"a", principal(), b"e", now=0)
    remembered.put(b"b", principal(), b"e", now=0)
    remembered.forget(b"a")
    assert remembered.get(b"a", now=0) is None
    remembered.clear()
    assert remembered.get(b"b", now=0) is None
