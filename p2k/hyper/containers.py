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

What each library keeps in memory is bounded by its own knobs where it has them, and stated as an
estimate charged to the kernel's memory limit once the image is registered (``p2k.hyper.libmem``).

Writing into a container is refused with a one-line message naming the conversion to run: p2k's
data path writes raw bytes at offsets, which a container cannot take in place.
"""

from __future__ import annotations

import errno
import os

from p2k.hints import cast
from p2k.hyper.backend import Backend, BackendIO, FileObjBackend, RawFileBackend

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, BinaryIO

    # Annotations' names only, like every alias of a Callable: collections.abc (with the
    # collections package it imports first, ~1.2 ms) stays out of every command's start-up.
    Progress = Callable[[str, int, int], None]
    """``progress(what, done, total)``, the callback every long library step takes (the CLI draws it)."""

    Resident = int | tuple[int, Callable[[int], int]]
    """Bytes a library keeps while the image is open; or those and a ``FileObjBackend.fit``, for a
    reader that can keep less."""
    StreamMaker = Callable[[BinaryIO, Progress | None], tuple[BinaryIO, int | None, Resident]]
    """Makes the decoding stream: returns it, the disk's size, and what the library keeps."""
    Opener = Callable[[RawFileBackend, int, Progress | None], Backend]

    SiblingOpener = Callable[[str], IO[bytes]]
    """Opens a file named relative to an image that is not a host file (a qcow2 backing file)."""

GZIP_INDEX = "gzip index"
"""The ``what`` of a gzip image's first pass: bytes of the compressed file read so far."""

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


def open_backend(path: str, *, readonly: bool = False, create: bool = False, progress: Progress | None = None,
                 _depth: int = 0) -> Backend:
    """The backend for the image at ``path``: raw, or a container's disk, recognised by content.

    EROFS (with the conversion to run) when ``readonly`` is False and the file is a container.
    ``progress`` hears about the one opening step that reads the whole file (a gzip index).
    """
    raw = RawFileBackend(path, readonly=readonly, create=create)
    try:
        kind = _container_of(raw, path, readonly)
        if kind is None:
            return raw
        if _depth > MAX_BACKING_DEPTH:
            raise OSError(errno.ELOOP, f"{path}: backing-file chain deeper than {MAX_BACKING_DEPTH}")
        try:
            return _OPENERS[kind](raw, _depth, progress)
        except ModuleNotFoundError as e:
            raise _reader_missing(kind, e, path) from None
    except BaseException:
        raw.close()
        raise


def _container_of(backend: Backend, name: str, readonly: bool) -> str | None:
    """The container ``backend`` holds (None for a raw image), judged by its first and last
    sectors; a container opened for writing is refused with the conversion to run."""
    size = backend.size()
    kind = sniff(backend.pread(0, 512), backend.pread(max(0, size - 512), 512)) if size else None
    if kind is not None and not readonly:
        raise ContainerReadOnly(errno.EROFS, refusal(kind, name))
    return kind


def _reader_missing(kind: str | None, e: ModuleNotFoundError, name: str) -> OSError:
    """The readers are the [containers] extra: a plain install reads raw images only."""
    return OSError(errno.ENOTSUP, f"a {kind} image: its reader ({e.name}) is not installed; "
                                  "pip install 'p2k[containers]'", name)


def _hostfile(raw: RawFileBackend) -> BinaryIO:
    """A buffered Python file on the same host file, by name: the VMDK reader finds a snapshot's
    parent and a descriptor's extents next to it."""
    return open(raw.name, "rb")  # noqa: SIM115 - the backend closes it


def _wrap(raw: RawFileBackend, kind: str, fn: StreamMaker, progress: Progress | None) -> Backend:
    fh = _hostfile(raw)
    try:
        stream, size, resident = fn(fh, progress)
    except (OSError, ModuleNotFoundError):  # a missing reader is the [containers] extra, not damage
        fh.close()
        raise
    except Exception as e:  # the libraries raise their own types on damaged containers
        fh.close()
        raise OSError(errno.EINVAL, f"{raw.name}: damaged {kind} image ({e})") from None
    finally:
        raw.close()
    return _resident(FileObjBackend(stream, raw.name, kind=kind, readonly=True, size=size, closers=(stream, fh)),
                     resident)


def _resident(backend: FileObjBackend, resident: Resident) -> FileObjBackend:
    backend.resident, backend.fit = resident if isinstance(resident, tuple) else (resident, None)
    return backend


def _open_qcow2(raw: RawFileBackend, depth: int, progress: Progress | None = None) -> Backend:
    # Here, not at the top: every command opens a raw image through this module, few a qcow2 one.
    from p2k.hyper.qcow2 import Qcow2Backend, backing_name, backing_path, read_header

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


def _open_qcow2_dissect(raw: RawFileBackend, depth: int, progress: Progress | None = None) -> Backend:
    """qcow2 variants the fast reader leaves alone (subclusters, zstd, external data file)."""
    from dissect.hypervisor.disk.qcow2 import QCow2

    from p2k.hyper.libmem import bound_dissect_qcow2

    backing: Backend | None = None

    def make(fh: BinaryIO, progress: Progress | None) -> tuple[BinaryIO, int | None, int]:
        nonlocal backing
        probe = QCow2(fh, allow_no_backing_file=True)
        if not probe.needs_backing_file:
            return probe.open(), probe.header.size, bound_dissect_qcow2(probe)
        name = probe.auto_backing_file
        bpath = name if os.path.isabs(name) else os.path.join(os.path.dirname(raw.name) or ".", name)
        backing = open_backend(bpath, readonly=True, _depth=depth + 1)
        fh.seek(0)
        disk = QCow2(fh, backing_file=BackendIO(backing))
        return disk.open(), disk.header.size, bound_dissect_qcow2(disk)

    try:
        backend = _wrap(raw, "qcow2", make, progress)
    except BaseException:
        if backing is not None:
            backing.close()
        raise
    if backing is not None and isinstance(backend, FileObjBackend):
        backend.add_closer(backing)
    return backend


def _vmdk(fh: BinaryIO, progress: Progress | None = None) -> tuple[BinaryIO, int | None, int]:
    from dissect.hypervisor.disk.vmdk import VMDK

    from p2k.hyper.libmem import vmdk_resident

    disk = VMDK(fh)
    return disk, disk.size, vmdk_resident(disk)


def _vhd(fh: BinaryIO, progress: Progress | None = None) -> tuple[BinaryIO, int | None, int]:
    from dissect.hypervisor.disk.vhd import VHD

    from p2k.hyper.libmem import vhd_resident

    disk = VHD(fh)
    return disk, disk.size, vhd_resident(disk)


def _vhdx(fh: BinaryIO, progress: Progress | None = None) -> tuple[BinaryIO, int | None, int]:
    from dissect.hypervisor.disk.vhdx import VHDX

    from p2k.hyper.libmem import vhdx_resident

    disk = VHDX(fh)
    return disk, disk.size, vhdx_resident(disk)


def _gzip(fh: BinaryIO, progress: Progress | None = None) -> tuple[BinaryIO, int | None, int]:
    import indexed_gzip

    from p2k.hyper.libmem import gzip_options, gzip_resident

    # The size is known only at the end of the stream (ISIZE is modulo 4 GiB): one streaming pass,
    # taken as seeks 64 MiB apart (each extends the index; the pass costs what build_full_index
    # costs) so that a multi-gigabyte release image can say how far it has got.
    total = fh.seek(0, os.SEEK_END)
    fh.seek(0)
    stream = indexed_gzip.IndexedGzipFile(fileobj=fh, **gzip_options())
    pos = 0
    while True:
        want = pos + (64 << 20)
        pos = stream.seek(want)
        if progress is not None:
            progress(GZIP_INDEX, total if pos < want else min(fh.tell(), total - 1), total)
        if pos < want:
            return stream, pos, gzip_resident(stream)


def _xz(fh: BinaryIO, progress: Progress | None = None) -> tuple[BinaryIO, int | None, Resident]:
    import xz

    from p2k.hyper.libmem import xz_decoder_bytes, xz_fit, xz_strategy

    strategy = xz_strategy()
    stream = xz.open(fh, "rb", block_read_strategy=strategy)
    most, each = xz_decoder_bytes(fh, stream)
    return cast("BinaryIO", stream), len(stream), (most * each, xz_fit(strategy, most, each))


_STREAMS: dict[str, StreamMaker] = {
    "vmdk": _vmdk, "vhd": _vhd, "vhdx": _vhdx, "gzip": _gzip, "xz": _xz,
}
"""The containers whose library decodes a Python file object: one maker each, for host files and
file objects alike."""

def _stream_opener(kind: str) -> Opener:
    def opener(raw: RawFileBackend, depth: int, progress: Progress | None) -> Backend:
        return _wrap(raw, kind, _STREAMS[kind], progress)
    return opener


_OPENERS: dict[str, Opener] = {
    "qcow2": _open_qcow2, **{kind: _stream_opener(kind) for kind in _STREAMS},
}


def open_fileobj(fileobj: IO[bytes], name: str, *, readonly: bool = True, close_fileobj: bool = True,
                 progress: Progress | None = None, open_sibling: SiblingOpener | None = None,
                 _depth: int = 0) -> Backend:
    """The image behind a file object (an fsspec remote file, a BytesIO): raw, or a container
    decoded as ``open_backend`` decodes a host file's — a gzip'd release image over https reads in
    place. A qcow2 overlay's backing file is another file the caller must open: ``open_sibling(name)``
    gets the name stored in the overlay (fsspec resolves it beside the overlay's URL); without it,
    an overlay is refused. VMDK extent files are not followed."""
    outer = FileObjBackend(fileobj, name, readonly=readonly, close_fileobj=close_fileobj)
    kind = None
    try:
        kind = _container_of(outer, name, readonly)
        if kind is None:
            return outer
        if kind == "qcow2":
            return _qcow2_fileobj(outer, name, open_sibling, _depth)
        stream, dsize, resident = _STREAMS[kind](cast("BinaryIO", fileobj), progress)
        return _resident(FileObjBackend(stream, name, kind=kind, readonly=True, size=dsize, closers=(stream, outer)),
                         resident)
    except ModuleNotFoundError as e:
        outer.close()
        raise _reader_missing(kind, e, name) from None
    except OSError:
        outer.close()
        raise
    except Exception as e:  # the libraries raise their own types on damaged containers
        outer.close()
        raise OSError(errno.EINVAL, f"{name}: damaged {kind} image ({e})") from None


def _qcow2_fileobj(outer: FileObjBackend, name: str, open_sibling: SiblingOpener | None, depth: int) -> Backend:
    from p2k.hyper.qcow2 import Qcow2Backend, backing_name, read_header

    found = read_header(outer)
    if found is None:
        raise OSError(errno.ENOTSUP, "a qcow2 variant p2k's own reader leaves out (subclusters, zstd, an "
                                     "external data file) cannot be read through a file object", name)
    bname = backing_name(outer, found[0])
    backing: Backend | None = None
    if bname:
        if open_sibling is None:
            raise OSError(errno.ENOTSUP, f"a qcow2 overlay (backing file {bname!r}) needs its backing file "
                                         "opened beside it; this file object has no way to", name)
        if depth >= MAX_BACKING_DEPTH:
            raise OSError(errno.ELOOP, f"{name}: backing-file chain deeper than {MAX_BACKING_DEPTH}")
        backing = open_fileobj(open_sibling(bname), bname, readonly=True, open_sibling=open_sibling,
                               _depth=depth + 1)
    try:
        return Qcow2Backend(outer, found[0], backing)
    except BaseException:
        if backing is not None:
            backing.close()
        raise
