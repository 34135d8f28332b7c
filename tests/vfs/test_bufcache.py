"""The buffer cache: bounded by the memory limit, coalesced reads, and data-before-metadata order."""

from __future__ import annotations

import pytest

from p2k.hyper import MemAccount
from p2k.vfs import bufcache
from p2k.vfs.bufcache import BufCache

BS = 4096


class RecordingDevice:
    """A device in memory that records every call, to check what reaches the disk and in what order."""

    def __init__(self, size: int = 1 << 22) -> None:
        self.dev_id = id(self)
        self.size = size
        self.readonly = False
        self.mem = bytearray(size)
        self.log: list[tuple[str, int, int]] = []

    def pread(self, off: int, n: int) -> bytes:
        self.log.append(("read", off, n))
        return bytes(self.mem[off:off + n])

    def pwrite(self, off: int, data) -> None:
        self.log.append(("write", off, len(data)))
        self.mem[off:off + len(data)] = data

    def fsync(self) -> None:
        self.log.append(("fsync", 0, 0))


def test_hits_and_misses_are_counted():
    dev = RecordingDevice()
    bc = BufCache(MemAccount(None))
    bc.bread(dev, 0, BS)
    bc.bread(dev, 0, BS)
    assert (bc.hits, bc.misses) == (1, 1)
    assert [e[0] for e in dev.log] == ["read"]


def test_contiguous_run_is_one_host_read_and_cached_blocks_are_reused():
    dev = RecordingDevice()
    dev.mem[BS:2 * BS] = b"b" * BS
    bc = BufCache(MemAccount(None))
    bp = bc.bread(dev, 2 * BS, BS)
    bp.data[:] = b"d" * BS
    bc.bdwrite(bp)  # a dirty cached block in the middle must win over the disk copy
    dev.log.clear()
    data = bc.read_extent(dev, 0, 8 * BS, BS)
    assert data[BS:2 * BS] == b"b" * BS
    assert data[2 * BS:3 * BS] == b"d" * BS
    assert [e for e in dev.log if e[0] == "read"] == [("read", 0, 2 * BS), ("read", 3 * BS, 5 * BS)]


def test_flush_writes_data_then_flushes_then_metadata():
    dev = RecordingDevice()
    bc = BufCache(MemAccount(None))
    meta = bc.getblk(dev, 0, BS)  # metadata by default
    meta.data[:4] = b"meta"
    bc.bdwrite(meta)
    data = bc.getblk(dev, 10 * BS, BS, meta=False)
    data.data[:4] = b"data"
    bc.bdwrite(data)
    bc.flush_dev(dev)
    assert dev.log == [("write", 10 * BS, BS), ("fsync", 0, 0), ("write", 0, BS), ("fsync", 0, 0)]
    assert bc.dirty_bytes == 0


def test_memory_limit_bounds_the_cache():
    dev = RecordingDevice()
    mem = MemAccount(16 * BS)
    bc = BufCache(mem)
    for i in range(200):
        bc.bread(dev, i * BS, BS)
        assert mem.used <= 14 * BS  # 7/8 of the limit is the cache's share
    assert bc.bytes <= 14 * BS
    data = bc.read_extent(dev, 0, 128 * BS, BS)
    assert len(data) == 128 * BS
    assert mem.used <= 16 * BS


def test_pressure_writes_data_alone_but_metadata_only_through_the_checkpoint():
    dev = RecordingDevice()
    mem = MemAccount(4 * BS)
    bc = BufCache(mem)
    calls = []

    def checkpoint() -> None:
        calls.append("checkpoint")
        bc.flush_dev(dev)

    bc.set_checkpoint(dev, checkpoint)
    for i in range(3):  # buffers keep to 7/8 of the limit: three fit, a fourth needs room
        bp = bc.getblk(dev, i * BS, BS)
        bp.data[:] = b"m" * BS
        bc.bdwrite(bp)
    assert dev.log == []
    bc.bread(dev, 100 * BS, BS)  # needs room: only the checkpoint may write the metadata
    assert calls == ["checkpoint"]
    writes = [e for e in dev.log if e[0] == "write"]
    assert writes == [("write", 0, 3 * BS)]  # the three adjacent buffers, in one write
    assert dev.log[-2][0] == "write" and dev.log[-1][0] == "fsync" and dev.mem[:3 * BS] == b"m" * 3 * BS
    assert mem.used <= 4 * BS


def test_invalidate_forgets_freed_blocks_without_writing_them():
    dev = RecordingDevice()
    bc = BufCache(MemAccount(None))
    bp = bc.getblk(dev, 8 * BS, BS)
    bc.bdwrite(bp)
    bc.invalidate(dev, 8 * BS, BS, step=1024)
    bc.flush_dev(dev)
    assert [e for e in dev.log if e[0] == "write"] == []
    assert bc.dirty_bytes == 0 and bc.bytes == 0


def test_failed_write_back_is_counted_reported_and_does_not_wedge_the_cache():
    dev = RecordingDevice()
    bc = BufCache(MemAccount(None))
    real_pwrite = dev.pwrite

    def failing(off: int, data) -> None:  # a bad sector in block 3: any write over it fails
        if off <= 3 * BS < off + len(data):
            raise OSError(5, "injected")
        real_pwrite(off, data)

    dev.pwrite = failing  # type: ignore[method-assign]
    for i in range(5):
        bp = bc.getblk(dev, i * BS, BS)
        bp.data[:] = bytes([i + 1]) * BS
        bc.bdwrite(bp)
    try:
        bc.flush_dev(dev)
    except OSError as e:
        assert e.errno == 5 and "1 delayed write(s) lost" in str(e)
    else:
        raise AssertionError("flush_dev hid a lost write")
    assert bc.lost_writes == 1
    assert bc.dirty_bytes == 0
    assert dev.mem[4 * BS] == 5 and dev.mem[3 * BS] == 0
    bc.flush_dev(dev)  # nothing left to write: a second sync succeeds


def test_ordered_device_defers_bwrite_and_writes_new_blocks_before_the_barrier():
    dev = RecordingDevice()
    bc = BufCache(MemAccount(None))
    bc.set_checkpoint(dev, lambda: bc.flush_dev(dev))
    inode = bc.bread(dev, 0, BS)  # an existing metadata block, rewritten in place
    inode.data[:4] = b"inod"
    bc.bwrite(inode)
    newdir = bc.getblk(dev, 20 * BS, BS)  # a block allocated in this epoch
    bc.mark_new(dev, 20 * BS)
    newdir.data[:4] = b"dir!"
    bc.bwrite(newdir)
    assert [e for e in dev.log if e[0] == "write"] == []  # deferred on an ordered device
    dev.log.clear()
    bc.flush_dev(dev)
    assert dev.log == [("write", 20 * BS, BS), ("fsync", 0, 0), ("write", 0, BS), ("fsync", 0, 0)]
    sb = bc.getblk(dev, 2 * BS, BS)
    bc.bwrite(sb, barrier=True)  # the clean flag: on stable storage at once
    assert dev.log[-2:] == [("write", 2 * BS, BS), ("fsync", 0, 0)]


def test_leaving_ordered_mode_writes_what_it_deferred():
    dev = RecordingDevice()
    bc = BufCache(MemAccount(None))
    bc.set_checkpoint(dev, lambda: bc.flush_dev(dev))
    sb = bc.getblk(dev, 16 * BS, BS)
    sb.data[:5] = b"clean"
    bc.bwrite(sb)  # deferred while ordered
    bc.set_checkpoint(dev, None)
    bc.invalidate_dev(dev)
    assert bytes(dev.mem[16 * BS:16 * BS + 5]) == b"clean"


def test_write_back_joins_adjacent_buffers_and_a_failed_run_loses_all_it_carried():
    """A sync writes each run of adjacent dirty buffers as one host write (makefs's thousands of
    fragments), never across a gap or past the run limit; a run the device fails is lost whole
    and reported, the rest still written."""
    dev = RecordingDevice()
    bc = BufCache(MemAccount(None))
    for off in (0, BS, 2 * BS, 5 * BS, 6 * BS):
        bp = bc.getblk(dev, off, BS, meta=False)
        bp.data[:] = bytes([off // BS + 1]) * BS
        bc.bdwrite(bp)
    bc.flush_dev(dev)
    assert [e for e in dev.log if e[0] == "write"] == [("write", 0, 3 * BS), ("write", 5 * BS, 2 * BS)]
    assert bytes(dev.mem[6 * BS:7 * BS]) == b"\x07" * BS and bc.dirty_bytes == 0

    dev.log.clear()
    n = bufcache._RUN_MAX // BS + 1
    for i in range(n):
        bc.bdwrite(bc.getblk(dev, (100 + i) * BS, BS, meta=False))
    bc.flush_dev(dev)
    assert [e[2] for e in dev.log if e[0] == "write"] == [bufcache._RUN_MAX, BS]

    class BadSector(RecordingDevice):  # block 0 cannot be written; any write over it fails
        def pwrite(self, off: int, data) -> None:
            if off == 0:
                self.log.append(("failed", off, len(data)))
                raise OSError(5, "Input/output error")
            super().pwrite(off, data)

    bad = BadSector()
    bc = BufCache(MemAccount(None))
    for off in (0, BS, 4 * BS):
        bc.bdwrite(bc.getblk(bad, off, BS, meta=False))
    with pytest.raises(OSError, match="1 delayed write"):
        bc.flush_dev(bad)
    assert bc.lost_writes == 1  # the run [0, 2 BS) failed; alone, block 1 went and block 0 did not
    assert [e for e in bad.log if e[0] != "fsync"] == [
        ("failed", 0, 2 * BS), ("failed", 0, BS), ("write", BS, BS), ("write", 4 * BS, BS)]
