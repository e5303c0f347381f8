"""One orchestrator per SQLite file (``orchestrator.store.claim``): a second claim of the same
file is refused with a message naming the holder, a closed store's claim is free again, two
names of one file are one claim, and other stores (PostgreSQL, memory) claim nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.store import StoreError, open_store


async def test_a_second_orchestrator_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'weir.db'}"
    first, second = open_store(url), open_store(url)
    await first.open()
    await second.open()  # reading the file is allowed; serving from it is claimed
    try:
        await first.claim("orch-a")
        with pytest.raises(StoreError) as refused:
            await second.claim("orch-b")
        message = str(refused.value)
        assert "another orchestrator (orch-a, pid " in message
        assert "postgresql://" in message and str(tmp_path / "weir.db") in message
        await first.close()
        await second.claim("orch-b")  # free once the first one closed
    finally:
        await first.close()
        await second.close()
    third = open_store(url)
    await third.open()
    await third.claim("orch-c")
    await third.close()


async def test_two_names_of_one_file_are_one_claim(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    first = open_store(f"sqlite:///{tmp_path / 'real' / 'weir.db'}")
    second = open_store(f"sqlite:///{tmp_path / 'alias' / 'weir.db'}")
    await first.open()
    await second.open()
    try:
        await first.claim("a")
        with pytest.raises(StoreError, match="another orchestrator"):
            await second.claim("b")
    finally:
        await first.close()
        await second.close()


async def test_the_memory_store_claims_nothing() -> None:
    store = open_store("memory://")
    await store.open()
    await store.claim("a")
    await store.claim("b")
    await store.close()
