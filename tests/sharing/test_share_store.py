"""The share store on real SQLite and real files: round trips, restarts, hostile ids, limits,
expiry, deletion, threads and processes writing at once, and a writer killed halfway."""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from shared.share_store import DELETED, NotOwner, ShareNotFound, ShareStore, StoreFull, default_folder

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]

PUTTER = """
import sys; sys.path.insert(0, sys.argv[1])
from pathlib import Path
from shared.share_store import ShareStore
store = ShareStore(Path(sys.argv[2]))
print("ready", flush=True)
for i in range(int(sys.argv[3])):
    print(store.put("chat", {"from": "process", "i": i}, {"img": b"x" * 1000}).id, flush=True)
"""

CRASHER = """
import os, sys, time; sys.path.insert(0, sys.argv[1])
from pathlib import Path
from shared import share_store
def pause(share_id, *_):
    print(share_id, flush=True)
    time.sleep(60)
if sys.argv[3] == "before-rename":
    share_store._after_files_written = pause
else:
    real_rename = os.rename
    def rename(src, dst):
        real_rename(src, dst)
        pause(Path(dst).name)
    share_store.os.rename = rename
store = share_store.ShareStore(Path(sys.argv[2]))
store.put("text-to-image", {"prompt": "a cat"}, {"image": b"\\x89PNG" + b"x" * 100_000})
"""


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path):
    return ShareStore(tmp_path / "store")


def test_a_snapshot_comes_back_byte_for_byte_under_names_the_store_chose(store, tmp_path):
    images = {"../../escape.png": png("red"), "grid": png("blue")}
    first = store.put("text-to-image", {"prompt": "a cat", "steps": 4}, images)
    second = store.put("chat", {"messages": [{"role": "user", "content": "hé \ud800"}]})
    for share in (first, second):
        assert len(share.id) == 22 and share.id.replace("-", "").replace("_", "").isalnum()
    assert first.id != second.id and first.delete_token != second.delete_token
    got = store.get(first.id)
    assert got["kind"] == "text-to-image" and got["payload"] == {"prompt": "a cat", "steps": 4}
    assert got["files"] == images and got["created_at"] == first.created_at and got["expires_at"] is None
    assert store.get(second.id)["payload"]["messages"][0]["content"] == "hé \ud800"
    assert sorted(p.name for p in (tmp_path / "store" / "files" / first.id).iterdir()) == ["0.png", "1.png"]
    assert not (tmp_path / "escape.png").exists()
    assert store.stats()["count"] == 2 and store.stats()["total_bytes"] > sum(map(len, images.values()))


def test_a_restarted_store_finds_every_snapshot(tmp_path):
    before = ShareStore(tmp_path / "store")
    shares = {kind: before.put(kind, {"kind": kind}, {"f": kind.encode()}) for kind in ("chat", "latent", "attention")}
    after = ShareStore(tmp_path / "store")
    for kind, share in shares.items():
        assert after.get(share.id) == {**before.get(share.id), "files": {"f": kind.encode()}}
    assert after.stats()["count"] == 3


def test_a_snapshot_whose_files_were_lost_is_not_served_and_the_sweep_drops_its_row(store):
    share = store.put("latent", {"n": 1}, {"a": b"1"})
    shutil.rmtree(store.folder / "files" / share.id)
    with pytest.raises(ShareNotFound, match="No shared snapshot"):
        store.get(share.id)
    store.sweep()
    assert store.stats() == {"count": 0, "total_bytes": 0}


def test_an_unknown_id_says_so(store):
    with pytest.raises(ShareNotFound, match="No shared snapshot has this link"):
        store.get("A" * 22)


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "..%2F..", "../sentinel", "", None, 42, "x" * 10_000, "A" * 21, "A" * 22 + "\n"]
)
def test_a_malformed_id_is_refused_before_the_disk(store, tmp_path, monkeypatch, bad):
    (tmp_path / "sentinel").write_text("keep")

    def untouchable(*args):
        raise AssertionError("a malformed id reached the disk")

    monkeypatch.setattr(store, "_conn", untouchable)
    monkeypatch.setattr(store, "_dir", untouchable)
    for attempt in (lambda: store.get(bad), lambda: store.delete(bad, "token")):
        with pytest.raises(ShareNotFound, match="not valid") as refused:
            attempt()
        assert len(str(refused.value)) < 100 and "etc" not in str(refused.value) and "xxx" not in str(refused.value)
    assert (tmp_path / "sentinel").read_text() == "keep"


@pytest.mark.parametrize(
    "kind, payload, files, ttl_s",
    [
        ("video", {}, None, None),
        ("chat", {"x": float("nan")}, None, None),
        ("chat", {"x": object()}, None, None),
        ("chat", ["not", "a", "dict"], None, None),
        ("chat", {}, {"a": "not bytes"}, None),
        ("chat", {}, {"": b"unnamed"}, None),
        ("chat", {}, None, -1),
        ("chat", {}, None, "soon"),
    ],
)
def test_what_cannot_be_stored_is_refused_and_leaves_nothing(store, kind, payload, files, ttl_s):
    with pytest.raises(ValueError):
        store.put(kind, payload, files, ttl_s=ttl_s)
    assert store.stats() == {"count": 0, "total_bytes": 0}
    assert list((store.folder / "files").iterdir()) == []


def test_a_snapshot_too_large_and_a_full_store_are_refused_until_there_is_room(tmp_path):
    store = ShareStore(tmp_path / "store", max_snapshot_bytes=2**20, max_total_bytes=int(2.5 * 2**20))
    with pytest.raises(ValueError, match="at most 1 MB") as too_big:
        store.put("latent", {}, {"big": b"x" * (2**20 + 1)})
    assert not isinstance(too_big.value, StoreFull)
    first, _ = (store.put("latent", {"n": n}, {"walk": b"x" * (2**20 - 100)}) for n in range(2))
    with pytest.raises(StoreFull, match=r"The share store is full \(2.5 MB\)"):
        store.put("latent", {}, {"walk": b"x" * (2**20 - 100)})
    assert store.stats()["count"] == 2
    store.delete(first.id, first.delete_token)
    third = store.put("latent", {}, {"walk": b"x" * (2**20 - 100)})
    assert store.get(third.id)["files"]["walk"] == b"x" * (2**20 - 100)


def test_an_expired_link_says_when_and_the_sweep_removes_its_files(tmp_path):
    store = ShareStore(tmp_path / "store", default_ttl_s=3600)
    soon = store.put("attention", {"t": 1}, {"map": b"abc"}, ttl_s=0.05)
    later = store.put("chat", {"t": 2}, {"f": b"def"})
    assert later.expires_at == pytest.approx(later.created_at + 3600)
    assert store.get(soon.id)["payload"] == {"t": 1}
    time.sleep(0.1)
    with pytest.raises(ShareNotFound, match=r"This link expired on 20\d\d-"):
        store.get(soon.id)
    assert store.stats()["count"] == 1 and (store.folder / "files" / soon.id).is_dir()
    store.sweep()
    assert not (store.folder / "files" / soon.id).exists()
    with pytest.raises(ShareNotFound, match="expired"):
        ShareStore(tmp_path / "store").get(soon.id)  # the tombstone outlives a restart
    store.sweep(now=time.time() + 7200)
    assert store.stats() == {"count": 0, "total_bytes": 0}
    with pytest.raises(ShareNotFound, match="expired"):
        store.get(later.id)


def test_only_the_token_deletes_and_a_deleted_link_says_so(store):
    share = store.put("chat", {"m": ["hi"]}, {"a": b"1"})
    for wrong in ("wrong", "", None, share.delete_token[:-1]):
        with pytest.raises(NotOwner, match="Only the person who shared this can delete it"):
            store.delete(share.id, wrong)
    assert store.get(share.id)["files"] == {"a": b"1"}
    rows = sqlite3.connect(store.folder / "shares.sqlite3").execute("SELECT * FROM shares").fetchall()
    assert len(rows) == 1 and share.delete_token not in repr(rows)  # only its hash is kept
    store.delete(share.id, share.delete_token)
    with pytest.raises(ShareNotFound, match=DELETED):
        store.get(share.id)
    assert not (store.folder / "files" / share.id).exists() and store.stats()["count"] == 0
    with pytest.raises(ShareNotFound, match=DELETED):
        ShareStore(store.folder).get(share.id)


def test_threads_and_processes_put_at_once_and_every_snapshot_is_kept(tmp_path):
    folder = tmp_path / "store"
    store = ShareStore(folder)
    command = [sys.executable, "-c", PUTTER, str(ROOT), str(folder), "4"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    assert [proc.stdout.readline().strip() for proc in procs] == ["ready", "ready"]
    barrier = threading.Barrier(4)

    def work(n: int) -> list[str]:
        barrier.wait()
        return [store.put("chat", {"thread": n, "i": i}, {"img": png("green")}).id for i in range(3)]

    with ThreadPoolExecutor(4) as pool:
        ids = [share_id for batch in pool.map(work, range(4)) for share_id in batch]
    for proc in procs:
        ids += proc.stdout.read().split()  # not communicate(): it would skip what readline buffered
        assert proc.wait(60) == 0
    assert len(ids) == len(set(ids)) == 20
    assert all(store.get(share_id)["kind"] == "chat" for share_id in ids)
    assert store.stats()["count"] == 20 and ShareStore(folder).stats()["count"] == 20


@pytest.mark.parametrize("moment", ["before-rename", "after-rename"])
def test_a_writer_killed_halfway_leaves_the_store_consistent(tmp_path, moment):
    folder = tmp_path / "store"
    store = ShareStore(folder)
    earlier = store.put("chat", {"kept": True}, {"a": png("red")})
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(ROOT), str(folder), moment], stdout=subprocess.PIPE, text=True
    )
    try:
        doomed = proc.stdout.readline().strip()
        assert len(doomed) == 22, "the writer did not reach its pause"
        assert store.get(earlier.id)["payload"] == {"kept": True}  # readers don't wait for a writer
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait(10)
    leftovers = {p.name for p in (folder / "files").iterdir()} - {earlier.id}
    if moment == "after-rename":
        assert leftovers == {doomed}  # its folder, with no row
    else:
        assert len(leftovers) == 1 and leftovers.pop().startswith(".tmp-")
    with pytest.raises(ShareNotFound, match="No shared snapshot"):
        store.get(doomed)
    reopened = ShareStore(folder)  # opening sweeps
    assert {p.name for p in (folder / "files").iterdir()} == {earlier.id}
    assert reopened.get(earlier.id)["files"] == {"a": png("red")}
    assert reopened.stats()["count"] == 1
    fresh = reopened.put("chat", {"after": "crash"})
    assert reopened.get(fresh.id)["payload"] == {"after": "crash"} and reopened.stats()["count"] == 2


def test_a_space_volume_is_preferred_then_the_user_data_folder(tmp_path):
    assert default_folder({}, volume=tmp_path) == tmp_path / "genai-playground-shares"
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert default_folder(env, volume=tmp_path / "missing") == tmp_path / "xdg" / "genai-playground" / "shares"
    assert default_folder({}, volume=tmp_path / "missing") == Path.home() / ".local/share/genai-playground/shares"
