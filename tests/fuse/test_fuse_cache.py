"""The host's caches in front of the bridge never serve stale names, attributes or data.

The bridge lets the host kernel cache a lot to spare requests: positive and negative entries and
attributes for ``attr_timeout``, file pages across opens (``keep_cache``). That is safe for a
local image because every change comes through the mount, and the host drops what a change
through the mount makes stale. A server's tree has other writers: there the host may serve what
it cached until ``attr_timeout`` runs out, and not a moment longer. Both are checked through a
real /dev/fuse mount; each check would fail if the bridge cached something the host is not told
about (a longer timeout than asked for, pages kept across a change of the file).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

import pytest
from fuse_harness import start_mount, stop
from server_harness import ServerProc

pytestmark = pytest.mark.fuse


def _missing(p: Path) -> None:
    with pytest.raises(FileNotFoundError):
        os.lstat(p)


def test_changes_through_the_mount_are_seen_at_once(work: Path) -> None:
    # Negative entries: each name is looked up (and the miss cached) before it is made.
    for name in ("renamed", "linked", "dir", "sym", "fifo", "made"):
        _missing(work / name)
    (work / "src").write_bytes(b"one")
    os.rename(work / "src", work / "renamed")
    os.link(work / "renamed", work / "linked")
    (work / "dir").mkdir()
    os.symlink("renamed", work / "sym")
    os.mkfifo(work / "fifo")
    fd = os.open(work / "made", os.O_CREAT | os.O_WRONLY, 0o640)
    os.close(fd)
    assert (work / "renamed").read_bytes() == b"one" and (work / "linked").read_bytes() == b"one"
    assert os.lstat(work / "renamed").st_nlink == 2  # the cached attributes of the first name too
    assert stat.S_ISDIR(os.lstat(work / "dir").st_mode) and stat.S_ISFIFO(os.lstat(work / "fifo").st_mode)
    assert os.readlink(work / "sym") == "renamed"
    _missing(work / "src")

    # Positive entries and attributes, cached by the stats above.
    os.unlink(work / "linked")
    _missing(work / "linked")
    assert os.lstat(work / "renamed").st_nlink == 1
    os.chmod(work / "made", 0o604)
    assert stat.S_IMODE(os.lstat(work / "made").st_mode) == 0o604
    os.utime(work / "made", ns=(5_000_000_001, 7_000_000_003))
    assert os.lstat(work / "made").st_mtime_ns == 7_000_000_003
    os.rmdir(work / "dir")
    _missing(work / "dir")

    # Pages kept across opens: a file read, then changed through another descriptor, in place
    # (same size) and by truncation, is read back as it is now.
    f = work / "renamed"
    assert f.read_bytes() == b"one"
    fd = os.open(f, os.O_WRONLY)
    os.pwrite(fd, b"two", 0)
    os.close(fd)
    assert f.read_bytes() == b"two"
    os.truncate(f, 1)
    assert f.read_bytes() == b"t" and os.lstat(f).st_size == 1


def test_another_writer_is_seen_once_attr_timeout_passes(tmp_path: Path, server: ServerProc) -> None:
    """A rump_server's tree changed by another client: the mount shows it once the host's cached
    entries, attributes and pages are older than ``attr_timeout`` (here 0.2 s)."""
    with server.connect() as c:
        fd = c.sys.open("/mnt/f", os.O_WRONLY | os.O_CREAT, 0o644)
        c.sys.write(fd, b"before")
        c.sys.close(fd)
        c.sys.mkdir("/mnt/gone", 0o755)
    m = start_mount(tmp_path / "m", "-o", "attr_timeout=0.2", "--server", server.url, "/mnt")
    try:
        mnt = m.path
        assert (mnt / "f").read_bytes() == b"before"  # pages, entry and attributes now cached
        assert (mnt / "gone").is_dir()
        _missing(mnt / "new")  # a negative entry
        with server.connect() as c:
            fd = c.sys.open("/mnt/f", os.O_WRONLY)
            c.sys.pwrite(fd, b"AFTER!", 0)  # same size: only the data and mtime change
            c.sys.close(fd)
            c.sys.rmdir("/mnt/gone")
            c.sys.mkdir("/mnt/new", 0o700)
        time.sleep(0.5)
        assert (mnt / "f").read_bytes() == b"AFTER!"
        assert (mnt / "new").is_dir() and stat.S_IMODE(os.lstat(mnt / "new").st_mode) == 0o700
        with pytest.raises(OSError) as e:
            os.lstat(mnt / "gone")
        assert e.value.errno in (errno.ENOENT, errno.ESTALE)
    finally:
        try:
            m.umount()
        finally:
            stop(m)
