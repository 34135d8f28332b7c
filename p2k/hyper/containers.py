"""Disk images stored in containers — qcow2, VMDK, VHD, VHDX, gzip, xz — opened read-only.

``open_backend(path)`` looks at the file's bytes (never its name) and returns the backend that
reads the disk inside: a ``RawFileBackend`` for a plain image, a read-only backend that decodes
the container otherwise.

- qcow2 (v2/v3, backing files, compressed clusters) has p2k's own reader on the fast path
  (``p2k.hyper.qcow2``, which says why), with ``dissect.hypervisor`` for the variants it leaves out.
- VMDK (monolithic sparse, stream-optimized), VHD (fixed, dynamic) and VHDX go through
  ``dissect.hypervisor``.
- gzip goes through ``indexed_gzip`` and xz through ``python-xz``: both seek by an index of restart
  points, so a read in the middle of a large compressed disk decompresses one stretch, never the
  whole disk into memory or a temporary file. A gzip stream's index is built by one streaming pass
  when the image is opened (its size is known only at the end); an xz file is random-access per
  block, so ``xz -T0`` or ``--block-size`` output seeks fast, while a single-block file only
  streams forward (every backward seek restarts it).

Writing into a container is refused with a one-line message naming the conversion to run: p2k's
data path writes raw bytes at offsets, which a container cannot take in place.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import BinaryIO, cast

from p2k.hyper.backend import Backend, BackendIO, FileObjBackend, RawFileBackend
from p2k.hyper.qcow2 import Qcow2Backend, backing_name, backing_path, read_header

MAX_BACKING_DEPTH = 16
"""A longer qcow2 backing chain is taken for a loop."""

_CONVERT = {
    "gzip": "gunzip -k {path}",
    "xz": "unxz -k {path}",
}


class ContainerReadOnly(OSError):
    """EROFS for a write asked of a container; its message names the conversion to run."""


def sniff(head: bytes, tail: bytes) -> str | None:
    """The container format of a file starting with ``head`` and ending with ``tail``, or None."""
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if head.startswith(b"KDMV") or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if head.startswith(b"vhdxfile"):
        return "vhdx"
    if head.startswith(b"conectix") or tail[-512:].startswith(b"conectix") or tail[-511:].startswith(b"conectix"):
        return "vhd"
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def refusal(kind: str, path: str) -> str:
    """The one line that says how to make a writable raw image out of a container."""
    stem = os.path.splitext(path)[0]
    how = _CONVERT.get(kind, "qemu-img convert -O raw {path} {stem}.img").format(path=path, stem=stem)
    return f"{path}: {kind} image, which p2k opens read-only; to write, convert it: {how}"


def container_kind(path: str) -> str | None:
    """The container format of the host file at ``path`` (None for a raw image or no file)."""
    try:
        raw = RawFileBackend(path, readonly=True)
    except OSError:
        return None
    try:
        size = raw.size()
        return sniff(raw.pread(0, 512), raw.pread(max(0, size - 512), 512)) if size else None
    finally:
        raw.close()


def open_backend(path: str, *, readonly: bool = False, create: bool = False, _depth: int = 0) -> Backend:
    """The backend for the image at ``path``: raw, or a container's disk, recognised by content.

    EROFS (with the conversion to run) when ``readonly`` is False and the file is a container.
    """
    raw = RawFileBackend(path, readonly=readonly, create=create)
    try:
        size = raw.size()
        kind = sniff(raw.pread(0, 512), raw.pread(max(0, size - 512), 512)) if size else None
        if kind is None:
            return raw
        if not readonly:
            raise ContainerReadOnly(errno.EROFS, refusal(kind, path))
        if _depth > MAX_BACKING_DEPTH:
            raise OSError(errno.ELOOP, f"{path}: backing-file chain deeper than {MAX_BACKING_DEPTH}")
        return _OPENERS[kind](raw, _depth)
    except BaseException:
        raw.close()
        raise


def _hostfile(raw: RawFileBackend) -> BinaryIO:
    """A buffered Python file on the same host file, by name: the VMDK reader finds a snapshot's
    parent and a descriptor's extents next to it."""
    return open(raw.name, "rb")  # noqa: SIM115 - the backend closes it


def _wrap(raw: RawFileBackend, kind: str, fn: Callable[[BinaryIO], tuple[BinaryIO, int | None]]) -> Backend:
    fh = _hostfile(raw)
    try:
        stream, size = fn(fh)
    except OSError:
        fh.close()
        raise
    except Exception as e:  # the libraries raise their own types on damaged containers
        fh.close()
        raise OSError(errno.EINVAL, f"{raw.name}: damaged {kind} image ({e})") from None
    finally:
        raw.close()
    return FileObjBackend(stream, raw.name, kind=kind, readonly=True, size=size, closers=(stream, fh))


def _open_qcow2(raw: RawFileBackend, depth: int) -> Backend:
    found = read_header(raw)
    if found is not None:
        hdr = found[0]
        name = backing_name(raw, hdr)
        backing = open_backend(backing_path(raw.name, name), readonly=True, _depth=depth + 1) if name else None
        try:
            return Qcow2Backend(raw, hdr, backing)
        except BaseException:
            if backing is not None:
                backing.close()
            raise
    return _open_qcow2_dissect(raw, depth)


def _open_qcow2_dissect(raw: RawFileBackend, depth: int) -> Backend:
    """qcow2 variants the fast reader leaves alone (subclusters, zstd, external data file)."""
    from dissect.hypervisor.disk.qcow2 import QCow2

    backing: Backend | None = None

    def make(fh: BinaryIO) -> tuple[BinaryIO, int | None]:
        nonlocal backing
        probe = QCow2(fh, allow_no_backing_file=True)
        if not probe.needs_backing_file:
            return probe.open(), probe.header.size
        name = probe.auto_backing_file
        bpath = name if os.path.isabs(name) else os.path.join(os.path.dirname(raw.name) or ".", name)
        backing = open_backend(bpath, readonly=True, _depth=depth + 1)
        fh.seek(0)
        disk = QCow2(fh, backing_file=BackendIO(backing))
        return disk.open(), disk.header.size

    try:
        backend = _wrap(raw, "qcow2", make)
    except BaseException:
        if backing is not None:
            backing.close()
        raise
    if backing is not None and isinstance(backend, FileObjBackend):
        backend.add_closer(backing)
    return backend


def _open_vmdk(raw: RawFileBackend, depth: int) -> Backend:
    from dissect.hypervisor.disk.vmdk import VMDK

    def make(fh: BinaryIO) -> tuple[BinaryIO, int | None]:
        disk = VMDK(fh)
        return disk, disk.size

    return _wrap(raw, "vmdk", make)


def _open_vhd(raw: RawFileBackend, depth: int) -> Backend:
    from dissect.hypervisor.disk.vhd import VHD

    def make(fh: BinaryIO) -> tuple[BinaryIO, int | None]:
        disk = VHD(fh)
        return disk, disk.size

    return _wrap(raw, "vhd", make)


def _open_vhdx(raw: RawFileBackend, depth: int) -> Backend:
    from dissect.hypervisor.disk.vhdx import VHDX

    def make(fh: BinaryIO) -> tuple[BinaryIO, int | None]:
        disk = VHDX(fh)
        return disk, disk.size

    return _wrap(raw, "vhdx", make)


def _open_gzip(raw: RawFileBackend, depth: int) -> Backend:
    import indexed_gzip

    def make(fh: BinaryIO) -> tuple[BinaryIO, int | None]:
        # 4 MiB between restart points: each costs a 32 KiB window, so 8 MiB of index per GiB. The
        # size is known only at the end of the stream (ISIZE is modulo 4 GiB): one streaming pass.
        stream = indexed_gzip.IndexedGzipFile(fileobj=fh, spacing=4 << 20)
        stream.build_full_index()
        return stream, stream.seek(0, os.SEEK_END)

    return _wrap(raw, "gzip", make)


def _open_xz(raw: RawFileBackend, depth: int) -> Backend:
    import xz

    def make(fh: BinaryIO) -> tuple[BinaryIO, int | None]:
        stream = xz.open(fh, "rb")
        return cast(BinaryIO, stream), len(stream)

    return _wrap(raw, "xz", make)


_OPENERS: dict[str, Callable[[RawFileBackend, int], Backend]] = {
    "qcow2": _open_qcow2,
    "vmdk": _open_vmdk,
    "vhd": _open_vhd,
    "vhdx": _open_vhdx,
    "gzip": _open_gzip,
    "xz": _open_xz,
}
