"""kflow.store's public surface is exactly its __all__ (httpx's pattern)."""

from __future__ import annotations

import kflow.store


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(kflow.store)
              if not name.startswith("_") and not isinstance(
                  getattr(kflow.store, name), type(kflow.store))}
    public.discard("annotations")
    assert set(kflow.store.__all__) == public
    assert kflow.store.__all__ == sorted(kflow.store.__all__, key=lambda n: (not n.isupper(), n))
