"""What the container readers keep counts toward RUMP_MEMLIMIT, as the buffer cache does.

A real FFS (NetBSD makefs) is converted by ``qemu-img`` to qcow2 with small clusters, so that the
image has many L2 tables, and read whole through a kernel with a small memory limit: the L2 cache
is charged table by table (``kern.mem.used`` is buffers plus tables, exactly), the limit holds, and
the L2 cache gives tables back under the buffer cache's pressure, down to one. gzip, xz, VMDK, VHD,
VHDX copies (and a qcow2 with subclusters, left to dissect.hypervisor) charge their readers' stated
estimate while registered and give it back when removed; an image whose reader cannot fit in the
limit is refused with one line.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import p2k
from p2k.hyper import open_backend
from p2k.hyper.qcow2 import Qcow2Backend

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("makefs", "qemu-img", "gzip", "xz")),
                                reason="needs makefs, qemu-img, gzip and xz")
P2K = str(Path(sys.executable).with_name("p2k"))
LIMIT = 256 << 10
FILES = {f"f{i}": os.urandom((1 << 20) + i * 40960) for i in range(6)}


@pytest.fixture(scope="module")
def ffs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 MiB FFS holding ~6.6 MiB of random files, made by NetBSD's makefs."""
    work = tmp_path_factory.mktemp("memcharge")
    tree = work / "tree"
    tree.mkdir()
    for name, data in FILES.items():
        (tree / name).write_bytes(data)
    img = work / "fs.img"
    subprocess.run(["makefs", "-t", "ffs", "-B", "le", "-o", "version=2,bsize=16384,fsize=2048", "-s", "12m",
                    str(img), str(tree)], check=True, capture_output=True)
    return img


def qcow2(src: Path, name: str, *opts: str) -> Path:
    out = src.with_name(name)
    if not out.exists():
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", *opts, str(src), str(out)], check=True,
                       capture_output=True)
    return out


def mounted(backend: p2k.Backend, memlimit: int | None) -> p2k.Kernel:
    k = p2k.Kernel(memlimit=memlimit, env={})
    k.etfs_register("/dev/dk", backend, p2k.ETFS_BLK, readonly=True)
    k.sys.mkdir("/mnt", 0o755)
    k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
    return k


def read_all(k: p2k.Kernel, each: object = None) -> dict[str, str]:
    """Every file's digest, read in 64 KiB pieces; ``each()`` is called after every piece."""
    sums = {}
    for name in FILES:
        fd = k.sys.open(f"/mnt/{name}", os.O_RDONLY)
        h = hashlib.sha256()
        while chunk := k.sys.read(fd, 64 << 10):
            h.update(chunk)
            if callable(each):
                each()
        k.sys.close(fd)
        sums[name] = h.hexdigest()
    return sums


EXPECTED = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


def test_qcow2_l2_tables_share_the_limit_with_the_buffer_cache(ffs: Path) -> None:
    image = qcow2(ffs, "small-clusters.qcow2", "-o", "cluster_size=1024")  # a 1 KiB table per 128 KiB
    backend = open_backend(str(image), readonly=True)
    assert isinstance(backend, Qcow2Backend)
    k = mounted(backend, LIMIT)
    held: list[int] = []
    root = k.mem.used - k.bufcache.bytes - backend.l2_cached_bytes  # the root tmpfs's /mnt

    def sample() -> None:
        l2 = backend.l2_cached_bytes
        assert k.mem.used == root + k.bufcache.bytes + l2  # every table held is charged, and only those
        assert k.sysctl("kern.mem.used") == k.mem.used
        held.append(l2)

    try:
        assert read_all(k, sample) == EXPECTED
        tables = (ffs.stat().st_size + 128 * 1024 - 1) // (128 * 1024)
        assert backend.l2_loads > tables // 2  # the data spans most of the image's tables...
        assert max(held) < backend.l2_loads * backend.csize  # ...which were never all held at once
        assert any(b < a for a, b in zip(held, held[1:], strict=False))  # given back under pressure
        assert k.mem.peak <= LIMIT
        # A shortage nothing can meet: the buffer cache empties, the L2 cache keeps its newest table.
        assert not k.mem.try_charge(LIMIT)
        assert backend.l2_cached_bytes == backend.csize
        assert k.mem.used == root + backend.csize + k.bufcache.bytes
    finally:
        k.halt(sync=False)
    assert k.mem.used == root


def test_qcow2_without_a_kernel_keeps_its_fixed_cap(ffs: Path) -> None:
    """``p2k parts`` and fsck read an image with no kernel: the cache is capped, not charged."""
    image = qcow2(ffs, "small-clusters.qcow2", "-o", "cluster_size=1024")
    backend = open_backend(str(image), readonly=True)
    try:
        for off in range(0, backend.size(), 64 << 10):
            backend.pread(off, 512)
        assert backend.l2_cached_bytes == backend.l2_loads * backend.csize  # all 96 kept: under the cap
    finally:
        backend.close()


def test_backing_image_tables_are_charged_too(ffs: Path) -> None:
    base = qcow2(ffs, "base-1k.qcow2", "-o", "cluster_size=1024")
    overlay = ffs.with_name("overlay-1k.qcow2")
    if not overlay.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=1024", "-b", base.name,
                        "-F", "qcow2", str(overlay)], check=True, cwd=overlay.parent)
    backend = open_backend(str(overlay), readonly=True)
    assert isinstance(backend, Qcow2Backend) and isinstance(backend.backing, Qcow2Backend)
    lower = backend.backing
    k = mounted(backend, None)
    root = k.mem.used - k.bufcache.bytes - backend.l2_cached_bytes - lower.l2_cached_bytes
    try:
        assert read_all(k) == EXPECTED
        assert lower.l2_cached_bytes > 0
        assert k.mem.used == root + k.bufcache.bytes + backend.l2_cached_bytes + lower.l2_cached_bytes
    finally:
        k.halt(sync=False)
    assert k.mem.used == root


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_library_reader_charges_its_estimate(ffs: Path, kind: str) -> None:
    image = ffs.with_name(f"fs.img.{'gz' if kind == 'gzip' else 'xz'}")
    if not image.exists():
        cmd = ["gzip", "-c"] if kind == "gzip" else ["xz", "-T2", "--block-size=1MiB", "-c"]
        with open(image, "wb") as out:
            subprocess.run([*cmd, str(ffs)], stdout=out, check=True)
    backend = open_backend(str(image), readonly=True)
    resident = backend.resident  # type: ignore[attr-defined]
    assert resident > 2 << 20  # two 1 MiB buffers and the index; or eight decoders of 1 MiB blocks
    k = p2k.Kernel(env={})
    root = k.mem.used
    k.etfs_register("/dev/dk", backend, p2k.ETFS_BLK, readonly=True)
    assert k.sysctl("kern.mem.used") == root + resident
    k.etfs_remove("/dev/dk")
    assert k.mem.used == root
    k.halt()
    # Too small a limit for the reader (xz: for one decoder): refused in one line, nothing left charged.
    k = p2k.Kernel(memlimit="1m", env={})
    backend = open_backend(str(image), readonly=True)
    with pytest.raises(OSError) as info:
        k.etfs_register("/dev/dk", backend, p2k.ETFS_BLK, readonly=True)
    assert info.value.errno == errno.ENOMEM and k.mem.used == root
    k.halt()
    r = subprocess.run([P2K, "ls", "-o", "memlimit=1m", str(image), "/"], capture_output=True, timeout=60)
    err = r.stderr.decode().strip()
    assert r.returncode != 0 and len(err.splitlines()) == 1 and "raise memlimit" in err, err
    # Within a limit: xz keeps the decoders a quarter of it holds; everything reads back under it.
    limit = 8 << 20
    backend = open_backend(str(image), readonly=True)
    k = mounted(backend, limit)
    try:
        if kind == "xz":
            assert backend.resident < resident and backend.resident <= limit // 4  # type: ignore[attr-defined]
        assert read_all(k) == EXPECTED
        assert k.mem.peak <= limit
    finally:
        k.halt(sync=False)


DISSECT_KINDS = {
    "vmdk": ("vmdk", "-o", "subformat=monolithicSparse"),
    "vhd": ("vpc", "-o", "subformat=dynamic,force_size=on"),
    "vhdx": ("vhdx",),
    "qcow2-subclusters": ("qcow2", "-o", "extended_l2=on"),  # left to dissect.hypervisor's reader
}


@pytest.mark.parametrize("kind", list(DISSECT_KINDS))
def test_dissect_readers_charge_their_tables_while_registered(ffs: Path, kind: str) -> None:
    fmt, *opts = DISSECT_KINDS[kind]
    image = ffs.with_name(f"fs-{kind}.img")
    if not image.exists():
        subprocess.run(["qemu-img", "convert", "-O", fmt, *opts, str(ffs), str(image)], check=True,
                       capture_output=True)
    backend = open_backend(str(image), readonly=True)
    assert not isinstance(backend, Qcow2Backend)
    resident = backend.resident  # type: ignore[attr-defined]
    assert 0 < resident <= 4 << 20
    k = p2k.Kernel(memlimit=4 << 20, env={})
    k.sys.mkdir("/mnt", 0o755)
    root = k.mem.used
    try:
        k.etfs_register("/dev/dk", backend, p2k.ETFS_BLK, readonly=True)
        assert k.sysctl("kern.mem.used") == root + resident
        if kind != "qcow2-subclusters":  # dissect.hypervisor 3.21 fails to read these (ValueError)
            k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
            assert read_all(k) == EXPECTED
            assert k.mem.peak <= 4 << 20
            k.unmount_mp(k.mounts[0])
        k.etfs_remove("/dev/dk")
        assert k.mem.used == root
    finally:
        k.halt(sync=False)
