"""Fault injection at the device layer: failed writes and reads, torn writes, power cuts."""

from __future__ import annotations

import errno
import os

import pytest

import p2k
from p2k.etfs import DriveSpecError, EtfsRegistry, FaultPlan, parse_drivespec

SECTOR = 512


def _device(tmp_path, plan: FaultPlan, size: int = 64 * SECTOR):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(size))
    reg = EtfsRegistry()
    dev = reg.register("/dev/dk", str(path), p2k.ETFS_BLK)
    inj = dev.set_faults(plan)
    return path, dev, inj


def test_nth_write_fails_and_the_device_stays_usable(tmp_path):
    path, dev, inj = _device(tmp_path, FaultPlan(fail_write=2))
    dev.pwrite(0, b"a" * SECTOR)
    with pytest.raises(OSError) as e:
        dev.pwrite(SECTOR, b"b" * SECTOR)
    assert e.value.errno == errno.EIO
    dev.pwrite(2 * SECTOR, b"c" * SECTOR)
    data = path.read_bytes()
    assert data[:SECTOR] == b"a" * SECTOR
    assert data[SECTOR:2 * SECTOR] == bytes(SECTOR)
    assert data[2 * SECTOR:3 * SECTOR] == b"c" * SECTOR
    assert inj.state.writes == 3


def test_read_range_fails_only_where_asked(tmp_path):
    _, dev, _ = _device(tmp_path, FaultPlan(fail_read=(4 * SECTOR, 8 * SECTOR)))
    assert dev.pread(0, 4 * SECTOR) == bytes(4 * SECTOR)
    assert dev.pread(8 * SECTOR, SECTOR) == bytes(SECTOR)
    with pytest.raises(OSError) as e:
        dev.pread(7 * SECTOR, 2 * SECTOR)
    assert e.value.errno == errno.EIO


def test_torn_write_lands_partly_and_kills_the_device(tmp_path):
    path, dev, inj = _device(tmp_path, FaultPlan(tear_write=1, tear_bytes=SECTOR))
    with pytest.raises(OSError):
        dev.pwrite(0, b"x" * (4 * SECTOR))
    data = path.read_bytes()
    assert data[:SECTOR] == b"x" * SECTOR
    assert data[SECTOR:4 * SECTOR] == bytes(3 * SECTOR)
    with pytest.raises(OSError, match="lost power"):
        dev.pread(0, SECTOR)
    assert inj.state.dead


def test_power_cut_keeps_flushed_writes_and_a_subset_of_the_rest(tmp_path):
    path, dev, inj = _device(tmp_path, FaultPlan(power_cut=12, seed=7))
    for i in range(4):
        dev.pwrite(i * SECTOR, bytes([i + 1]) * SECTOR)
    dev.fsync()
    # Unflushed writes are visible to reads (a write cache), but not on the host yet.
    for i in range(4, 11):
        dev.pwrite(i * SECTOR, bytes([i + 1]) * SECTOR)
    assert dev.pread(5 * SECTOR, SECTOR) == bytes([6]) * SECTOR
    assert path.read_bytes()[5 * SECTOR:6 * SECTOR] == bytes(SECTOR)
    with pytest.raises(OSError):
        dev.pwrite(11 * SECTOR, bytes([12]) * SECTOR)
    data = path.read_bytes()
    for i in range(4):
        assert data[i * SECTOR:(i + 1) * SECTOR] == bytes([i + 1]) * SECTOR
    landed = [data[i * SECTOR] == i + 1 for i in range(4, 12)]
    assert sum(landed) == inj.state.kept
    assert inj.state.kept + inj.state.dropped == 8
    assert 0 < inj.state.kept < 8  # seed 7 keeps some and drops some
    with pytest.raises(OSError):
        dev.fsync()


def test_same_seed_same_cut(tmp_path):
    outcomes = []
    for run in range(2):
        d = tmp_path / str(run)
        d.mkdir()
        path, dev, _ = _device(d, FaultPlan(power_cut=6, seed=42))
        for i in range(6):
            try:
                dev.pwrite(i * SECTOR, b"z" * SECTOR)
            except OSError:
                pass
        outcomes.append(path.read_bytes())
    assert outcomes[0] == outcomes[1]


def test_drivespec_fault_options(tmp_path):
    spec = parse_drivespec(f"key=/dev/dk,hostpath={tmp_path}/d.img,size=1m,failwrite=3,failread=1k-2k,seed=9")
    assert spec.faults is not None
    assert spec.faults.fail_write == 3
    assert spec.faults.fail_read == (1024, 2048)
    assert spec.faults.seed == 9
    with pytest.raises(DriveSpecError, match="invalid failwrite"):
        parse_drivespec(f"key=/dev/dk,hostpath={tmp_path}/d.img,size=1m,failwrite=0")
    with pytest.raises(DriveSpecError, match="START-END"):
        parse_drivespec(f"key=/dev/dk,hostpath={tmp_path}/d.img,size=1m,failread=5")
    dev = spec.register(EtfsRegistry())
    assert dev.faults is not None


def test_eio_reaches_the_syscall_and_the_kernel_stays_usable(tmp_path):
    host = tmp_path / "f.bin"
    host.write_bytes(bytes(8192))
    with p2k.Kernel() as k:
        dev = k.etfs_register("/dev/f", str(host), p2k.ETFS_REG)
        dev.set_faults(FaultPlan(fail_write=1))
        fd = k.sys.open("/dev/f", os.O_RDWR)
        with pytest.raises(OSError) as e:
            k.sys.write(fd, b"data")
        assert e.value.errno == errno.EIO
        assert k.sys.pwrite(fd, b"more", 0) == 4
        k.sys.close(fd)
        k.sys.mkdir("/still-works", 0o755)
        assert "still-works" in k.sys.listdir("/")
    assert host.read_bytes()[:4] == b"more"
