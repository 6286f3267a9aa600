"""Row ids: 16 hex digits of the OS's CSPRNG after the prefix, fetched in batches; never
the same id for two threads, nor for a forked child and its parent."""

from __future__ import annotations

import os
import re
import sys
import threading

import pytest

from app import models
from app.models import new_id

ID = re.compile(r"^cnv_[0-9a-f]{16}$")


def test_an_id_is_the_prefix_and_sixteen_hex_digits_of_os_urandom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetched: list[int] = []

    def urandom(size: int) -> bytes:
        fetched.append(size)
        return bytes(range(256)) * (size // 256) + bytes(range(size % 256))

    monkeypatch.setattr(models, "_batches", models._Batches())
    monkeypatch.setattr(models.os, "urandom", urandom)
    ids = [new_id("cnv") for _ in range(models._IDS_PER_FETCH + 1)]
    assert ids[:2] == ["cnv_0001020304050607", "cnv_08090a0b0c0d0e0f"]
    assert all(ID.match(one) for one in ids)
    # One read of the CSPRNG per batch of ids, and a new read when a batch runs out.
    assert fetched == [models._IDS_PER_FETCH * 8] * 2


def test_threads_never_share_an_id() -> None:
    found: list[list[str]] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        found.append([new_id("cnv") for _ in range(3 * models._IDS_PER_FETCH)])

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [one for batch in found for one in batch]
    assert len(ids) == 8 * 3 * models._IDS_PER_FETCH
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_does_not_take_ids_from_its_parents_batch() -> None:
    new_id("cnv")  # the parent's batch holds ids it has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, " ".join(new_id("cnv") for _ in range(5)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    parent = [new_id("cnv") for _ in range(5)]
    assert len(child) == 5
    assert not set(child) & set(parent)
