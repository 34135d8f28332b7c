"""p2k.hyper: kernel parameters from RUMP_*, memory accounting, the host-file window."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from p2k.hyper import DEFAULT_NCPU, DEFAULT_NVNODES, HostFile, KernelParams, MemAccount, ParamError, parse_memsize
from p2k.hyper.hostio import create_host_file, host_path_exists


def test_defaults_with_empty_environment() -> None:
    params = KernelParams.from_env({})
    assert (DEFAULT_NCPU, DEFAULT_NVNODES) == (2, 1024)
    assert params == KernelParams(ncpu=2, verbose=False, threads=True, memlimit=None, nvnodes=1024)


@pytest.mark.parametrize(("value", "ncpu"), [("1", 1), ("4", 4), (" 3 ", 3), ("", 2)])
def test_rump_ncpu(value: str, ncpu: int) -> None:
    assert KernelParams.from_env({"RUMP_NCPU": value}).ncpu == ncpu


def test_rump_ncpu_host_is_the_hosts_count() -> None:
    assert KernelParams.from_env({"RUMP_NCPU": "host"}).ncpu == (os.cpu_count() or 1)


@pytest.mark.parametrize("value", ["0", "x", "-1", "2.5", "hosts"])
def test_rump_ncpu_refused_naming_variable_and_value(value: str) -> None:
    with pytest.raises(ParamError) as info:
        KernelParams.from_env({"RUMP_NCPU": value})
    assert str(info.value).startswith(f"RUMP_NCPU: invalid value {value!r}")


@pytest.mark.parametrize(("value", "limit"), [
    ("12345", 12345), ("4k", 4096), ("64m", 64 << 20), ("1g", 1 << 30), (" 2m ", 2 << 20), ("", None),
])
def test_rump_memlimit(value: str, limit: int | None) -> None:
    assert KernelParams.from_env({"RUMP_MEMLIMIT": value}).memlimit == limit


@pytest.mark.parametrize("value", ["64q", "m", "0", "-1", "1.5m", "64mb", "0k", "1t"])
def test_rump_memlimit_refused_naming_variable_and_value(value: str) -> None:
    with pytest.raises(ParamError) as info:
        KernelParams.from_env({"RUMP_MEMLIMIT": value})
    assert str(info.value).startswith(f"RUMP_MEMLIMIT: invalid value {value!r}")


def test_parse_memsize_names_the_variable_it_is_given() -> None:
    assert parse_memsize("3k", "-r") == 3072
    with pytest.raises(ParamError) as info:
        parse_memsize("lots", "-r")
    assert str(info.value) == "-r: invalid value 'lots' (bytes with optional k/m/g suffix)"


@pytest.mark.parametrize(("value", "nvnodes"), [("1", 1), ("4096", 4096), ("", 1024)])
def test_rump_nvnodes(value: str, nvnodes: int) -> None:
    assert KernelParams.from_env({"RUMP_NVNODES": value}).nvnodes == nvnodes


@pytest.mark.parametrize("value", ["0", "many", "-5"])
def test_rump_nvnodes_refused(value: str) -> None:
    with pytest.raises(ParamError) as info:
        KernelParams.from_env({"RUMP_NVNODES": value})
    assert str(info.value) == f"RUMP_NVNODES: invalid value {value!r} (integer >= 1)"


@pytest.mark.parametrize(("value", "verbose"), [("1", True), ("0", False), ("yes", True), ("", False)])
def test_rump_verbose(value: str, verbose: bool) -> None:
    assert KernelParams.from_env({"RUMP_VERBOSE": value}).verbose is verbose


def test_explicit_arguments_win_over_environment() -> None:
    env = {"RUMP_NCPU": "8", "RUMP_MEMLIMIT": "1g", "RUMP_NVNODES": "10", "RUMP_THREADS": "0"}
    params = KernelParams.from_env(env, ncpu=3, memlimit="2m", nvnodes=20)
    assert (params.ncpu, params.memlimit, params.nvnodes, params.threads) == (3, 2 << 20, 20, False)
    assert KernelParams.from_env({}, memlimit=5000).memlimit == 5000
    with pytest.raises(ParamError):
        KernelParams.from_env({}, memlimit=0)
    with pytest.raises(ParamError):
        KernelParams.from_env({}, ncpu=0)


def test_memaccount_unlimited_and_peak() -> None:
    mem = MemAccount(None)
    mem.charge(1 << 40)
    mem.uncharge((1 << 40) - 10)
    assert (mem.used, mem.peak, mem.available()) == (10, 1 << 40, None)
    mem.uncharge(100)
    assert mem.used == 0


def test_memaccount_refuses_without_reclaimers() -> None:
    mem = MemAccount(100)
    assert mem.try_charge(60) is True
    assert mem.try_charge(41) is False
    assert (mem.used, mem.available()) == (60, 40)
    with pytest.raises(OSError) as info:
        mem.charge(41)
    assert info.value.errno == errno.ENOMEM
    assert mem.try_charge(40) is True and mem.available() == 0


def test_memaccount_asks_reclaimers_in_order_until_enough() -> None:
    mem = MemAccount(100)
    mem.charge(90)
    asked: list[tuple[str, int]] = []

    def reclaimer(name: str, frees: int) -> Callable[[int], int]:
        def reclaim(n: int) -> int:
            asked.append((name, n))
            mem.uncharge(frees)
            return frees
        return reclaim

    mem.add_reclaimer(reclaimer("clean", 5))
    mem.add_reclaimer(reclaimer("dirty", 20))
    mem.add_reclaimer(reclaimer("never", 50))
    assert mem.try_charge(30) is True
    # 90 + 30 - 100 = 20 needed: "clean" frees 5, "dirty" is asked for the remaining 15 and frees 20.
    assert asked == [("clean", 20), ("dirty", 15)]
    assert (mem.used, mem.peak) == (95, 95)


def test_memaccount_shortages_start_with_each_reclaimer_in_turn() -> None:
    """The caches compete: the buffer cache is not always the first to give (nor the last)."""
    mem = MemAccount(100)
    mem.charge(100)
    asked: list[str] = []

    def reclaimer(name: str) -> Callable[[int], int]:
        def reclaim(n: int) -> int:
            asked.append(name)
            mem.uncharge(n)
            return n
        return reclaim

    first, second = reclaimer("buffers"), reclaimer("l2")
    mem.add_reclaimer(first)
    mem.add_reclaimer(second)
    for _ in range(3):
        assert mem.try_charge(10)
    assert asked == ["buffers", "l2", "buffers"]
    mem.remove_reclaimer(first)
    mem.remove_reclaimer(first)  # twice: nothing
    assert mem.try_charge(10) and asked[-1] == "l2"


def test_memaccount_reclaim_that_falls_short_refuses() -> None:
    mem = MemAccount(100)
    mem.charge(100)
    def reclaim_ten(n: int) -> int:
        mem.uncharge(10)
        return 10

    mem.add_reclaimer(reclaim_ten)
    assert mem.try_charge(50) is False
    assert mem.used == 90


def test_hostfile_window_and_bytes_outside_untouched(tmp_path: Path) -> None:
    path = tmp_path / "img"
    path.write_bytes(bytes(range(256)) * 16)
    before = path.read_bytes()
    host = HostFile(str(path), offset=1024, size=512)
    try:
        assert host.pread(508, 4) == before[1532:1536]
        for off, n in ((509, 4), (512, 1), (-4, 4)):
            with pytest.raises(OSError) as info:
                host.pread(off, n)
            assert info.value.errno == errno.EIO
        with pytest.raises(OSError) as info:
            host.pwrite(500, b"\xff" * 16)
        assert info.value.errno == errno.EIO
        assert path.read_bytes() == before
        host.pwrite(500, b"\xff" * 12)
        after = path.read_bytes()
        assert after[1524:1536] == b"\xff" * 12 and after[1536:] == before[1536:]
    finally:
        host.close()


def test_hostfile_reads_zeros_past_eof_and_extends(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"abc")
    host = HostFile(str(path), offset=1, size=10)
    try:
        assert host.pread(0, 10) == b"bc" + bytes(8)
        host.extend_to_window()
        assert path.stat().st_size == 11
    finally:
        host.close()
    ro = HostFile(str(path), readonly=True)
    try:
        assert ro.size == 11
        with pytest.raises(OSError) as info:
            ro.pwrite(0, b"x")
        assert info.value.errno == errno.EROFS
    finally:
        ro.close()
    with pytest.raises(OSError) as info:
        HostFile(str(path), offset=-1)
    assert info.value.errno == errno.EINVAL


def test_create_host_file_applies_umask_and_keeps_existing(tmp_path: Path) -> None:
    path = tmp_path / "new"
    assert not host_path_exists(str(path))
    old = os.umask(0o077)
    try:
        create_host_file(str(path))
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777, path.stat().st_size, host_path_exists(str(path))) == (0o600, 0, True)
    path.write_bytes(b"keep")
    create_host_file(str(path), 0o600)
    assert path.read_bytes() == b"keep"
