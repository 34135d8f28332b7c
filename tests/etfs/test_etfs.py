"""p2k.etfs: drivespecs word for word as rump_server, windows, disklabels, the etfs table."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2k.etfs import (
    ETFS_BLK,
    ETFS_CHR,
    ETFS_REG,
    DriveSpec,
    DriveSpecError,
    EtfsRegistry,
    build_disklabel,
    parse_drivespec,
    parse_size,
    scan_disklabel,
)
from p2k.etfs.disklabel import FS_BSDFFS, FS_SWAP, LABEL_BYTE_OFFSET

SPEC = "key=/dev/dk,hostpath=dk.img"


@pytest.fixture
def reg() -> Iterator[EtfsRegistry]:
    registry = EtfsRegistry()
    yield registry
    registry.close_all()


def image(tmp_path: Path, size: int, name: str = "dk.img", pattern: bool = True) -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(i % 251 for i in range(size)) if pattern else bytes(size))
    return path


@pytest.mark.parametrize(("spec", "message"), [
    ("", "incomplete drivespec"),
    ("hostpath=dk.img,size=1m", "incomplete drivespec"),
    ("key=/dev/dk,size=1m", "incomplete drivespec"),
    (SPEC, "incomplete drivespec"),
    (SPEC + ",size=0", "incomplete drivespec"),
    (SPEC + ",type=blk", "incomplete drivespec"),
    ("key,hostpath=dk.img,size=1m", "incomplete drivespec"),
    (SPEC + ",size=1m,disklabel=a", "disklabel needs to be used alone"),
    (SPEC + ",offset=1k,disklabel=a", "disklabel needs to be used alone"),
    (SPEC + ",disklabel=a,size=1m", "disklabel needs to be used alone"),
    (SPEC + ",disklabel=a,offset=8", "disklabel needs to be used alone"),
    (SPEC + ",disklabel=ab", "invalid label part"),
    (SPEC + ",disklabel=A", "invalid label part"),
    (SPEC + ",disklabel", "invalid label part"),
    (SPEC + ",size=1m,colour=red", "invalid dtoken"),
    (SPEC + ",size=1m,Key=/x", "invalid dtoken"),
    (",", "invalid dtoken"),
    ("key=/a,key=/b,hostpath=dk.img,size=1m", "key already given"),
    (SPEC + ",hostpath=x.img,size=1m", "hostpath already given"),
    (SPEC + ",size=1m,size=2m", "size already given"),
    (SPEC + ",size=host,size=2m", "size already given"),
    (SPEC + ",size=1m,offset=1k,offset=2k", "offset already given"),
    (SPEC + ",size=1m,type=blk,type=chr", "type already specified"),
    (SPEC + ",size=1m,type=fifo", "invalid type fifo"),
    (SPEC + ",size=1m,type=BLK", "invalid type BLK"),
    (SPEC + ",offset=1k,size=host", "cannot specify offset with size=host"),
    (SPEC + ",size=host,offset=1k", "cannot specify offset with size=host"),
    (SPEC + ",size=host,offset=0", "cannot specify offset with size=host"),
    (SPEC + ",size=1q", "-d size `1q': illegal number"),
    (SPEC + ",size=lots", "-d size `lots': illegal number"),
    (SPEC + ",size=2x3q", "-d size `3q': illegal number"),
    (SPEC + ",size=", "-d size `': illegal number"),
    (SPEC + ",size=-1", "-d size -1 is less than 0."),
    (SPEC + ",size=9223372036854775808", "-d size: Result too large"),
    (SPEC + ",size=1m,offset=1z", "-d offset `1z': illegal number"),
    (SPEC + ",size=1m,offset=-512", "-d offset -512 is less than 0."),
])
def test_drivespec_errors_are_rump_servers_words(spec: str, message: str) -> None:
    with pytest.raises(DriveSpecError) as info:
        parse_drivespec(spec)
    assert str(info.value) == message


@pytest.mark.parametrize(("spec", "expected"), [
    (SPEC + ",size=1g", DriveSpec("/dev/dk", "dk.img", 1 << 30, 0, ETFS_BLK)),
    (SPEC + ",size=1m,offset=4k,type=chr", DriveSpec("/dev/dk", "dk.img", 1 << 20, 4096, ETFS_CHR)),
    ("key=/m.kmod,hostpath=m.kmod,type=reg", DriveSpec("/m.kmod", "m.kmod", None, 0, ETFS_REG)),
    (SPEC + ",size=host", DriveSpec("/dev/dk", "dk.img", None, 0, ETFS_BLK, size_host=True)),
    (SPEC + ",offset=0,size=host", DriveSpec("/dev/dk", "dk.img", None, 0, ETFS_BLK, size_host=True)),
    (SPEC + ",disklabel=e", DriveSpec("/dev/dk", "dk.img", None, 0, ETFS_BLK, disklabel="e")),
    (SPEC + ",offset=0,disklabel=a", DriveSpec("/dev/dk", "dk.img", None, 0, ETFS_BLK, disklabel="a")),
    # getsubopt quirks: blanks separate like commas, empty items vanish, a value may hold '='.
    ("key=/dev/dk hostpath=dk.img\tsize=2k", DriveSpec("/dev/dk", "dk.img", 2048, 0, ETFS_BLK)),
    (",,key=/dev/dk,,hostpath=a=b.img,size=1k,", DriveSpec("/dev/dk", "a=b.img", 1024, 0, ETFS_BLK)),
    # rump_server's 0-means-unset: a zero size does not count as "already given".
    (SPEC + ",size=0,size=8", DriveSpec("/dev/dk", "dk.img", 8, 0, ETFS_BLK)),
])
def test_drivespec_parses(spec: str, expected: DriveSpec) -> None:
    assert parse_drivespec(spec) == expected


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("4096", 4096), ("  17", 17), ("+5", 5), ("3b", 1536), ("2k", 2048), ("5m", 5 << 20),
    ("1g", 1 << 30), ("2t", 2 << 40), ("3w", 12), ("2x3", 6), ("2x3k", 6144), ("2*4m", 8 << 20),
    ("1kx1kx2", 2 << 20), ("0x5", 0), ("8388607t", 8388607 << 40),
])
def test_parse_size_suffixes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(("text", "message"), [
    ("k", "size `k': illegal number"), ("1kb", "size `1kb': illegal number"),
    ("1K", "size `1K': illegal number"), ("8388608t", "size: Result too large"),
    ("-1b", "size: Result too large"), ("5x0", "size: Result too large"),
    ("5x-1", "size -1 is less than 0."),
])
def test_parse_size_errors(text: str, message: str) -> None:
    with pytest.raises(DriveSpecError) as info:
        parse_size(text)
    assert str(info.value) == message


def test_missing_hostpath_is_created_0644_less_umask(tmp_path: Path, reg: EtfsRegistry) -> None:
    path = tmp_path / "new.img"
    old = os.umask(0o027)
    try:
        dev = parse_drivespec(f"key=/dev/dk,hostpath={path},size=3m").register(reg)
    finally:
        os.umask(old)
    assert (os.stat(path).st_mode & 0o7777, os.stat(path).st_size) == (0o640, 3 << 20)
    assert (dev.key, dev.offset, dev.size, dev.type) == ("/dev/dk", 0, 3 << 20, ETFS_BLK)


def test_short_file_is_extended_keeping_its_bytes(tmp_path: Path, reg: EtfsRegistry) -> None:
    path = image(tmp_path, 1000)
    dev = parse_drivespec(f"key=/dev/dk,hostpath={path},size=64k,offset=4k").register(reg)
    assert path.stat().st_size == 4096 + 65536
    assert path.read_bytes()[:1000] == bytes(i % 251 for i in range(1000))
    assert dev.pread(0, 4) == bytes(4)


def test_long_file_is_not_truncated(tmp_path: Path, reg: EtfsRegistry) -> None:
    path = image(tmp_path, 1 << 20)
    dev = parse_drivespec(f"key=/dev/dk,hostpath={path},size=8k,offset=1k").register(reg)
    assert (path.stat().st_size, dev.size, dev.pread(0, 3)) == (1 << 20, 8192, bytes([20, 21, 22]))


def test_size_host(tmp_path: Path, reg: EtfsRegistry) -> None:
    path = image(tmp_path, 3 << 20)
    dev = parse_drivespec(f"key=/dev/dk,hostpath={path},size=host").register(reg)
    assert (dev.offset, dev.size) == (0, 3 << 20)
    empty = tmp_path / "empty.img"
    empty.write_bytes(b"")
    with pytest.raises(OSError) as info:
        parse_drivespec(f"key=/dev/e,hostpath={empty},size=host").register(reg)
    assert info.value.errno == errno.EINVAL
    assert info.value.strerror == "size=host, but cannot query non-zero size"
    missing = tmp_path / "missing.img"
    with pytest.raises(OSError) as info:
        parse_drivespec(f"key=/dev/m,hostpath={missing},size=host").register(reg)
    assert (info.value.errno, info.value.strerror) == (errno.ENOENT, "etfs hostpath open")
    assert not missing.exists()
    assert reg.keys() == ["/dev/dk"]


def test_window_confines_io(tmp_path: Path, reg: EtfsRegistry) -> None:
    path = image(tmp_path, 8192)
    before = path.read_bytes()
    dev = reg.register("/dev/dk", str(path), ETFS_BLK, size=1024, offset=2048)
    assert dev.pread(1020, 4) == before[3068:3072]
    for off, n in ((1021, 4), (1024, 1), (-1, 2), (0, 1025)):
        with pytest.raises(OSError) as info:
            dev.pread(off, n)
        assert info.value.errno == errno.EIO
    with pytest.raises(OSError) as info:
        dev.pwrite(1020, b"\xff" * 8)
    assert info.value.errno == errno.EIO
    with pytest.raises(OSError) as info:
        dev.preadinto(1000, memoryview(bytearray(100)))
    assert info.value.errno == errno.EIO
    assert path.read_bytes() == before
    dev.pwrite(0, b"\xee" * 1024)
    after = path.read_bytes()
    assert after[:2048] == before[:2048] and after[3072:] == before[3072:]
    assert after[2048:3072] == b"\xee" * 1024
    assert (dev.reads, dev.writes, dev.bytes_read, dev.bytes_written) == (1, 1, 4, 1024)


def test_readonly_device_refuses_writes(tmp_path: Path, reg: EtfsRegistry) -> None:
    path = image(tmp_path, 4096)
    dev = reg.register("/dev/ro", str(path), ETFS_BLK, readonly=True)
    with pytest.raises(OSError) as info:
        dev.pwrite(0, b"x")
    assert (info.value.errno, dev.readonly, dev.size) == (errno.EROFS, True, 4096)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a mode 0444 file")
def test_unwritable_host_file_registers_readonly(tmp_path: Path, reg: EtfsRegistry) -> None:
    path = image(tmp_path, 4096)
    path.chmod(0o444)
    assert reg.register("/dev/dk", str(path), ETFS_BLK).readonly is True


def test_registry_keys_and_lifetime(tmp_path: Path, reg: EtfsRegistry) -> None:
    path = image(tmp_path, 4096)
    dev = reg.register("//dev//dk", str(path), ETFS_BLK)
    assert dev.key == "/dev//dk"
    assert reg.lookup("/dev//dk") is dev and reg.lookup("///dev//dk") is dev
    assert reg.lookup("dev//dk") is None and reg.lookup("/dev/dk") is None
    for key, type_, kwargs, code in [
        ("dev/x", ETFS_BLK, {}, errno.EINVAL), ("/", ETFS_BLK, {}, errno.EINVAL),
        ("/dev//dk", ETFS_CHR, {}, errno.EEXIST), ("/x", 7, {}, errno.EINVAL),
        ("/x", ETFS_BLK, {"size": 4097}, errno.EINVAL), ("/x", ETFS_BLK, {"offset": 4097}, errno.EINVAL),
        ("/x", ETFS_BLK, {"offset": 4000, "size": 97}, errno.EINVAL),
        ("/x", ETFS_BLK, {"offset": -1}, errno.EINVAL),
    ]:
        with pytest.raises(OSError) as info:
            reg.register(key, str(path), type_, **kwargs)
        assert info.value.errno == code, (key, kwargs)
    with pytest.raises(OSError) as info:
        reg.register("/x", str(tmp_path / "absent"), ETFS_BLK)
    assert info.value.errno == errno.ENOENT
    other = reg.register("/x", str(path), ETFS_REG, offset=4000)
    assert (other.size, reg.keys(), other.dev_id != dev.dev_id) == (96, ["/dev//dk", "/x"], True)
    dev.acquire()
    with pytest.raises(OSError) as info:
        reg.remove("//dev//dk")
    assert (info.value.errno, reg.lookup("/dev//dk") is dev, dev.pread(0, 1)) == (errno.EBUSY, True, b"\x00")
    dev.release()
    reg.remove("/dev//dk")
    assert reg.keys() == ["/x"] and dev.closed
    for call in (lambda: dev.pread(0, 1), dev.acquire):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.ENXIO
    with pytest.raises(OSError) as info:
        reg.remove("/dev//dk")
    assert info.value.errno == errno.ENOENT
    reg.close_all()
    assert (reg.keys(), other.closed, other.reads) == ([], True, 0)


def labelled_image(tmp_path: Path, label: bytes, at: int = LABEL_BYTE_OFFSET, size: int = 1 << 20) -> Path:
    path = image(tmp_path, size, pattern=False)
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(label)
    return path


PARTS = [(64, 16, FS_BSDFFS), (32, 80, FS_SWAP), (2048, 0, 0)]


@pytest.mark.parametrize("order", ["little", "big"])
def test_disklabel_partition_window(tmp_path: Path, reg: EtfsRegistry, order: str) -> None:
    path = labelled_image(tmp_path, build_disklabel(PARTS, byteorder=order))  # type: ignore[arg-type]
    dev = parse_drivespec(f"key=/dev/dka,hostpath={path},disklabel=a").register(reg)
    assert (dev.offset, dev.size) == (16 * 512, 64 * 512)
    dev = parse_drivespec(f"key=/dev/dkb,hostpath={path},disklabel=b,type=chr").register(reg)
    assert (dev.offset, dev.size, dev.type) == (80 * 512, 32 * 512, ETFS_CHR)
    label = scan_disklabel(path.read_bytes()[:65536])
    assert label is not None
    assert (label.position, label.byteorder, label.npartitions) == (512, order, 3)
    assert label.header.d_secperunit == 2048
    assert [p.p_fstype for p in label.partitions] == [FS_BSDFFS, FS_SWAP, 0]


@pytest.mark.parametrize(("label", "at", "letter", "message"), [
    (build_disklabel(PARTS), 512, "d", "partition not available"),
    (build_disklabel(PARTS, npartitions=3), 512, "z", "partition not available"),
    (b"", 512, "a", "disklabel not found"),
    (build_disklabel(PARTS, checksum=0x1234), 512, "a", "disklabel not found"),
    (build_disklabel(PARTS), 514, "a", "disklabel not found"),
    (build_disklabel(PARTS, npartitions=23), 512, "a", "disklabel not found"),
    (build_disklabel(PARTS), 65040, "a", "disklabel not found"),
    (build_disklabel(PARTS, checksum=1) + bytes(3072 - 148 - 48) + build_disklabel(PARTS), 512, "a",
     "disklabel not found"),
])
def test_disklabel_failures(tmp_path: Path, reg: EtfsRegistry, label: bytes, at: int, letter: str,
                            message: str) -> None:
    path = labelled_image(tmp_path, label, at)
    with pytest.raises(OSError) as info:
        parse_drivespec(f"key=/dev/dk,hostpath={path},disklabel={letter}").register(reg)
    assert (info.value.errno, info.value.strerror, reg.keys()) == (errno.ENOENT, message, [])


def test_disklabel_scan_limits(tmp_path: Path, reg: EtfsRegistry) -> None:
    # The last candidate position is 65536 - sizeof(struct rumpserver_disklabel) = 65036.
    path = labelled_image(tmp_path, build_disklabel(PARTS, npartitions=22), at=65036)
    assert parse_drivespec(f"key=/dev/dk,hostpath={path},disklabel=c").register(reg).size == 2048 * 512
    # A short file reads as zero-padded; a missing one is not created.
    assert scan_disklabel(bytes(600) + build_disklabel(PARTS)) is not None
    missing = tmp_path / "nolabel.img"
    with pytest.raises(OSError) as info:
        parse_drivespec(f"key=/dev/x,hostpath={missing},disklabel=a").register(reg)
    assert (info.value.strerror, missing.exists()) == ("disklabel not found", False)
