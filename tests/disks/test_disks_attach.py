"""``p2k.etfs.attach``: a whole disk given as an open file object (as fsspec hands one over) or a path.

The file-object path must find the same partitions as the host-path path and read the same files;
the no-name rule applies only when a detector is given; ``partition=""`` is the whole image.
"""

from __future__ import annotations

import os
from pathlib import Path

import diskimg as d
import pytest

import p2k
from p2k.etfs.attach import attach_fileobj, attach_path
from p2k.etfs.resolve import split_image_arg
from p2k.fs.ffs.fs import probe

pytestmark = pytest.mark.skipif(not d.HAVE_TOOLS, reason="needs makefs, sfdisk, sgdisk and mmls")


def read_all(k: p2k.Kernel, path: str) -> bytes:
    fd = k.sys.open(path, os.O_RDONLY)
    out = b""
    while chunk := k.sys.read(fd, 1 << 16):
        out += chunk
    k.sys.close(fd)
    return out


@pytest.mark.parametrize("how", ["fileobj", "path"])
def test_attach_a_partition(tmp_path: Path, how: str) -> None:
    disk = d.gpt_disk(tmp_path, "a", [("8300", 1, None), ("a503", 5, "v2le")], total=8 * d.MiB)
    fs = disk.filesystems[0]
    k = p2k.Kernel(env={})
    try:
        if how == "fileobj":
            dev = attach_fileobj(k.etfs, "/dev/dk", open(disk.path, "rb"), name="fileobj.img",  # noqa: SIM115
                                 partition=None, detect=probe)
        else:
            dev = attach_path(k.etfs, "/dev/dk", disk.path, readonly=True, detect=probe)
        assert (dev.offset, dev.size) == (fs.start, 5 * d.MiB)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        for rel, data in d.tree_files(fs.tree).items():
            assert read_all(k, f"/mnt/{rel}") == data
    finally:
        k.halt()


def test_whole_image_and_names(tmp_path: Path) -> None:
    disk = d.gpt_disk(tmp_path, "b", [("a503", 5, "v1be")], total=8 * d.MiB)
    k = p2k.Kernel(env={})
    try:
        whole = attach_path(k.etfs, "/dev/w", disk.path, readonly=True, partition="")
        assert (whole.offset, whole.size) == (0, 8 * d.MiB)
        p1 = attach_path(k.etfs, "/dev/p", f"{disk.path}:p1", readonly=True)
        assert p1.offset == disk.filesystems[0].start
    finally:
        k.halt(sync=False)
    assert split_image_arg("x.img:s1a", exists=lambda _: False) == ("x.img", "s1a")
    assert split_image_arg("x.img:s1a", exists=lambda _: True) == ("x.img:s1a", None)
    assert split_image_arg("dir:with/colon.img", exists=lambda _: False) == ("dir:with/colon.img", None)
