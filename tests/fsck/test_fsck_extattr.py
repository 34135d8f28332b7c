"""fsck and the UFS2 extended-attribute area: its blocks are owned and counted like data (a block
shared with a file's data is a DUP, one out of range is BAD, a cleared inode gives them back), an
oversized area condemns the inode as fsck_ffs does, and a broken record chain is reported and
truncated to its well-formed prefix. Each repair with -y is followed by a clean -n."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from ffs_check import assert_consistent
from ffs_work import mount_rw, newfs

from p2k.cli.main import main
from p2k.fs.ffs.dinode import DinodeCodec
from p2k.fs.ffs.fs import find_superblock, ino_to_fsba, ino_to_fsbo
from p2k.vfs.extattr import EXTATTR_NAMESPACE_USER as U


def _image(tmp_path: Path, endian: str = "le") -> tuple[Path, dict[str, int]]:
    img = newfs(tmp_path / "e.img", "16m", "-O", "2", "-B", endian)
    k = mount_rw(img)
    inos = {}
    for name in ("a", "b"):
        fd = k.sys.open(f"/mnt/{name}", os.O_CREAT | os.O_RDWR, 0o644)
        k.sys.write(fd, name.encode() * 20000)
        for i in range(5):
            k.sys.extattr_set_fd(fd, U, b"n%d" % i, b"value %d " % i * 40)
        inos[name] = k.sys.fstat(fd).st_ino
        k.sys.close(fd)
    k.halt()
    return img, inos


def _edit_inode(img: Path, ino: int, **fields: object) -> dict[str, object]:
    with open(img, "r+b") as f:
        def pread(off: int, n: int) -> bytes:
            f.seek(off)
            return f.read(n)

        fs = find_superblock(pread, os.path.getsize(img))
        codec = DinodeCodec(True, fs.endian)
        off = ino_to_fsba(fs, ino) * fs.fs_fsize + ino_to_fsbo(fs, ino) * 256
        ip = codec.decode(pread(off, 256), 0, ino)
        before = {"extb": list(ip.extb), "db": list(ip.db), "extsize": ip.extsize, "fsize": fs.fs_fsize,
                  "endian": fs.endian}
        for k, v in fields.items():
            setattr(ip, k, v)
        buf = bytearray(256)
        codec.encode_into(ip, buf, 0)
        f.seek(off)
        f.write(buf)
    return before


def _fsck(img: Path, flag: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["fsck", flag, str(img)])
    return rc, capsys.readouterr().out


def _repaired(img: Path, capsys: pytest.CaptureFixture[str]) -> str:
    rc, out = _fsck(img, "-fy", capsys)
    rc2, out2 = _fsck(img, "-fn", capsys)
    assert rc2 == 0 and "INCORRECT" not in out2 and "DUP" not in out2 and "BAD" not in out2, out2
    assert_consistent(img)
    return out


@pytest.mark.parametrize("endian", ["le", "be"])
def test_record_chain_truncated(tmp_path: Path, endian: str, capsys: pytest.CaptureFixture[str]) -> None:
    img, inos = _image(tmp_path, endian)
    info = _edit_inode(img, inos["a"])
    # the third record's length: a multiple of 8 running past the area
    with open(img, "r+b") as f:
        off = info["extb"][0] * info["fsize"]  # type: ignore[index,operator]
        f.seek(off)
        area = f.read(2048)
        pos = 0
        for _ in range(2):
            pos += struct.unpack_from(info["endian"] + "I", area, pos)[0]  # type: ignore[operator]
        f.seek(off + pos)
        f.write(struct.pack(info["endian"] + "I", 1 << 20))  # type: ignore[operator]
    rc, out = _fsck(img, "-fn", capsys)
    assert rc != 0 and f"BAD EXTATTR AREA I={inos['a']}" in out, out
    out = _repaired(img, capsys)
    assert "TRUNCATE" in out
    k = mount_rw(img, ro=True)
    assert k.sys.extattr_list_file("/mnt/a", U) == [b"n0", b"n1"]
    assert k.sys.extattr_list_file("/mnt/b", U) == [b"n%d" % i for i in range(5)]
    k.halt()


def test_ext_block_shared_with_data_is_dup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img, inos = _image(tmp_path)
    a = _edit_inode(img, inos["a"])
    _edit_inode(img, inos["b"], extb=[a["db"][0], 0])  # type: ignore[index]
    rc, out = _fsck(img, "-fn", capsys)
    assert rc != 0 and f"DUP I={inos['b']}" in out, out
    _repaired(img, capsys)


def test_ext_block_out_of_range_is_bad_and_leak_is_freed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img, inos = _image(tmp_path)
    _edit_inode(img, inos["a"], extb=[1 << 40, 0])
    _edit_inode(img, inos["b"], extb=[0, 0], extsize=0)  # its old ext block is now nobody's
    rc, out = _fsck(img, "-fn", capsys)
    assert rc != 0 and f"BAD I={inos['a']}" in out, out
    _repaired(img, capsys)


def test_oversized_area_condemns_the_inode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img, inos = _image(tmp_path)
    _edit_inode(img, inos["b"], extsize=1 << 30)
    rc, out = _fsck(img, "-fn", capsys)
    assert rc != 0 and f"UNKNOWN FILE TYPE I={inos['b']}" in out and "ext area size" in out, out
    _repaired(img, capsys)
