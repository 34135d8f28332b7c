"""Disks inside containers made by qemu-img, gzip and xz: found by content, read right, never written.

One whole disk (a NetBSD label in an MBR slice, around a real makefs FFS) goes into every container
p2k reads; each must list the same map as the raw disk and give back the source files. A qcow2
with compressed clusters and a qcow2 overlay on a backing file are among them. Asking to write
into any container is refused with one line naming the conversion to run, and the file is not
touched.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import diskimg as d
import pytest

from p2k.hyper import RawFileBackend, open_backend
from p2k.hyper.containers import _open_qcow2_dissect
from p2k.hyper.qcow2 import L2_COMPRESSED, Qcow2Backend

pytestmark = pytest.mark.skipif(not (d.HAVE_TOOLS and shutil.which("qemu-img") and shutil.which("xz")),
                                reason="needs makefs, sfdisk, sgdisk, mmls, qemu-img and xz")
P2K = str(Path(sys.executable).with_name("p2k"))


def qemu(src: Path, dst: Path, fmt: str, *opts: str) -> Path:
    subprocess.run(["qemu-img", "convert", "-O", fmt, *opts, str(src), str(dst)], check=True, capture_output=True)
    return dst


def _gzip(src: Path, dst: Path) -> Path:
    with open(dst, "wb") as out:
        subprocess.run(["gzip", "-c", str(src)], stdout=out, check=True)
    return dst


def _xz(src: Path, dst: Path) -> Path:
    with open(dst, "wb") as out:  # -T2: several blocks, so reads seek by the block index
        subprocess.run(["xz", "-T2", "--block-size=1MiB", "-c", str(src)], stdout=out, check=True)
    return dst


def _overlay(src: Path, dst: Path) -> Path:
    base = qemu(src, dst.with_name("base.qcow2"), "qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", str(dst)],
                   check=True, cwd=dst.parent)
    return dst


MAKERS = {
    "qcow2-compressed": lambda s, t: qemu(s, t / "c.qcow2", "qcow2", "-c"),
    "qcow2-v2": lambda s, t: qemu(s, t / "v2.qcow2", "qcow2", "-o", "compat=0.10"),
    "qcow2-backing": lambda s, t: _overlay(s, t / "overlay.qcow2"),
    "vmdk-sparse": lambda s, t: qemu(s, t / "s.vmdk", "vmdk", "-o", "subformat=monolithicSparse"),
    "vmdk-stream": lambda s, t: qemu(s, t / "so.vmdk", "vmdk", "-o", "subformat=streamOptimized"),
    "vhd-fixed": lambda s, t: qemu(s, t / "f.vhd", "vpc", "-o", "subformat=fixed,force_size=on"),
    "vhd-dynamic": lambda s, t: qemu(s, t / "d.vhd", "vpc", "-o", "subformat=dynamic,force_size=on"),
    "vhdx": lambda s, t: qemu(s, t / "x.vhdx", "vhdx"),
    "gzip": lambda s, t: _gzip(s, t / "disk.img.gz"),
    "xz": lambda s, t: _xz(s, t / "disk.img.xz"),
}


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> d.Disk:
    return d.netbsd_mbr(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module", params=list(MAKERS))
def container(request: pytest.FixtureRequest, raw: d.Disk, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return MAKERS[request.param](raw.path, tmp_path_factory.mktemp(request.param))


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    r = subprocess.run([P2K, *args], capture_output=True, timeout=120)
    assert b"Traceback" not in r.stderr
    return r


def test_same_bytes_as_the_raw_disk(container: Path, raw: d.Disk) -> None:
    backend = open_backend(str(container), readonly=True)
    try:
        assert backend.kind != "raw"
        size = backend.size()
        assert size == raw.path.stat().st_size
        digest = hashlib.sha256()
        for off in range(0, size, 1 << 20):
            digest.update(backend.pread(off, 1 << 20))
        assert digest.hexdigest() == d.digest(raw.path)
    finally:
        backend.close()


def test_qcow2_fast_reader_agrees_with_dissect(container: Path, raw: d.Disk) -> None:
    """p2k's own qcow2 reader against dissect.hypervisor's, and compressed clusters really used."""
    if container.suffix != ".qcow2":
        pytest.skip("not a qcow2")
    backend = open_backend(str(container), readonly=True)
    reference = _open_qcow2_dissect(RawFileBackend(str(container), readonly=True), 0)
    try:
        assert isinstance(backend, Qcow2Backend)
        entries = [backend._l2_entry(c) for c in range(backend.size() // backend.csize)]
        if container.name == "c.qcow2":
            assert any(e & L2_COMPRESSED for e in entries)
        for off, n in ((0, 1 << 20), (1081344 + 8192, 300_000), (backend.size() - 5000, 5000), (12345, 77777)):
            assert backend.pread(off, n) == reference.pread(off, n)
    finally:
        backend.close()
        reference.close()


def test_parts_and_cat_through_the_container(container: Path, raw: d.Disk) -> None:
    listing = run("parts", str(container))
    assert listing.returncode == 0, listing.stderr
    body = [line for line in listing.stdout.decode().splitlines()[1:]]
    assert body == run("parts", str(raw.path)).stdout.decode().splitlines()[1:]
    fs = raw.filesystems[0]
    files = d.tree_files(fs.tree)
    r = run("cat", str(container), *("/" + f for f in files))  # no suffix: the one FFS, s1a
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"".join(files.values())


def test_writing_is_refused_with_the_conversion(container: Path) -> None:
    before = d.digest(container)
    r = run("mkdir", str(container), "/newdir")
    err = r.stderr.decode().strip()
    assert r.returncode != 0
    assert len(err.splitlines()) == 1
    assert "read-only" in err and ("qemu-img convert -O raw" in err or "gunzip -k" in err or "unxz -k" in err)
    assert d.digest(container) == before


@pytest.mark.fuse
@pytest.mark.skipif(not (Path("/dev/fuse").exists() and shutil.which("fusermount3")), reason="no FUSE")
def test_mount_a_partition_of_a_vm_image(raw: d.Disk, tmp_path: Path) -> None:
    """The README's example: mount -o ro of partition s1a inside a compressed qcow2 disk."""
    image = MAKERS["qcow2-compressed"](raw.path, tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run("mount", "-o", "ro", f"{image}:s1a", str(mnt))
    assert r.returncode == 0, r.stderr
    try:
        diff = subprocess.run(["diff", "-r", "--no-dereference", str(raw.filesystems[0].tree), str(mnt)],
                              capture_output=True, text=True)
        assert diff.returncode == 0, diff.stdout + diff.stderr
    finally:
        assert run("umount", str(mnt)).returncode == 0


def test_backing_file_loop_is_a_one_line_error(tmp_path: Path) -> None:
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(b), "1M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", str(a)], check=True,
                   cwd=tmp_path)
    subprocess.run(["qemu-img", "rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", str(b)], check=True, cwd=tmp_path)
    r = run("parts", str(a))
    assert r.returncode != 0
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "backing-file chain deeper than 16 (ELOOP)" in lines[0], lines
