"""``p2k.open_image``: a BSD disk image as a pathlib-style tree, for scripts.

The rump-style API (``Kernel``, ``etfs_register``, ``k.sys.mount``) is right for testing a kernel,
but a script that wants a file out of an image should not have to pick device keys and mount points
or remember to halt. This is a thin layer over ``k.sys``: one private kernel per image, the image
mounted at ``/mnt``, paths relative to the image's root, and a context manager that unmounts and
halts on the way out — also when the block raised, so a read-write image is never left half
written by an exception.
"""

from __future__ import annotations

import errno
import os
import stat as st
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from typing import IO, Any

from p2k.etfs.attach import attach_fileobj, attach_path
from p2k.fs.ffs.fs import probe
from p2k.kernel import Kernel
from p2k.kfile import open_kernel_file
from p2k.vfs.mount import MNT_RDONLY

DEVKEY = "/dev/image0"
MOUNTPOINT = "/mnt"
_CHUNK = 1 << 20


def open_image(image: str | os.PathLike[str] | IO[bytes], mode: str = "r", *, fstype: str = "ffs",
               partition: str | None = None, name: str | None = None, memlimit: int | str | None = None,
               nvnodes: int | str | None = None, options: dict[str, str] | None = None,
               close_fileobj: bool = False, open_sibling: Callable[[str], IO[bytes]] | None = None) -> ImageFS:
    """Mount ``image`` (``"disk.img"``, ``"disk.img:a"``, or a seekable binary file object) in a
    private kernel. ``mode`` is ``"r"`` (read-only, the default) or ``"rw"``; a file object is
    written only when it was opened for writing, and is left open for its owner unless
    ``close_fileobj``. ``open_sibling(name)`` opens a file the image names beside itself (a qcow2
    overlay's backing file) when the image is a file object. Use it as a context manager."""
    if mode not in ("r", "rw"):
        raise ValueError(f"open_image: mode must be 'r' or 'rw', not {mode!r}")
    readonly = mode == "r"
    k = Kernel(memlimit=memlimit, nvnodes=nvnodes, env={})
    try:
        if isinstance(image, str | os.PathLike):
            dev = attach_path(k.etfs, DEVKEY, image, readonly=readonly, partition=partition, detect=probe)
        else:
            writable = bool(getattr(image, "writable", lambda: False)())
            if not readonly and not writable:
                raise OSError(errno.EROFS, "the image's file object is not writable")
            label = name or str(getattr(image, "path", None) or getattr(image, "name", None) or "<file object>")
            dev = attach_fileobj(k.etfs, DEVKEY, image, name=label, readonly=readonly, partition=partition,
                                 close_fileobj=close_fileobj, detect=probe, open_sibling=open_sibling)
        readonly = readonly or dev.readonly
        k.sys.mkdir(MOUNTPOINT, 0o755)
        k.sys.mount(fstype, MOUNTPOINT, MNT_RDONLY if readonly else 0, {"fspec": dev.key, **(options or {})})
    except BaseException:
        k.halt(sync=False)
        raise
    return ImageFS(k, readonly, dev.hostpath)


class ImageFS:
    """A mounted image. Paths are the image's own (``/etc/motd``): ``sys`` is the syscall object of
    a process chrooted to the image's root, so the image's absolute symlinks and ``..`` resolve
    inside it, as they would on the system it came from; use it for anything this layer does not
    wrap."""

    def __init__(self, kernel: Kernel, readonly: bool, source: str) -> None:
        self.kernel = kernel
        self.readonly = readonly
        self.source = source
        self.sys = kernel.newproc()
        try:
            self.sys.chdir(MOUNTPOINT)
            self.sys.chroot(MOUNTPOINT)
        except BaseException:
            kernel.release_proc(self.sys)
            raise

    def __repr__(self) -> str:
        return f"<ImageFS {self.source!r} {'ro' if self.readonly else 'rw'}{' closed' if self.closed else ''}>"

    def kpath(self, p: str | ImagePath) -> str:
        """Image path → the path ``sys`` takes: always absolute (relative paths start at the
        image's root too), ``..`` left to the kernel, which stops it at the root."""
        parts = [c for c in str(p).split("/") if c and c != "."]
        return "/" + "/".join(parts)

    def path(self, p: str = "/") -> ImagePath:
        return ImagePath(self, p)

    def __iter__(self) -> Iterator[ImagePath]:
        """The root directory's entries."""
        return self.path("/").iterdir()

    def names(self, kpath: str) -> list[str]:
        """The sorted entry names of kernel directory ``kpath`` (a str path gives str names)."""
        return sorted(os.fsdecode(n) for n in self.sys.listdir(kpath))

    def walk(self, top: str = "/") -> Iterator[tuple[str, list[str], list[str]]]:
        """Like ``os.walk`` (top-down, symlinks to directories not followed)."""
        names = self.names(self.kpath(top))
        dirs: list[str] = []
        files: list[str] = []
        for n in names:
            s = self.sys.lstat(self.kpath(f"{top}/{n}"))
            (dirs if st.S_ISDIR(s.st_mode) else files).append(n)
        yield top, dirs, files
        for d in dirs:
            yield from self.walk(top.rstrip("/") + "/" + d)

    def stat(self, p: str) -> os.stat_result:
        return self.sys.stat(self.kpath(p))

    def lstat(self, p: str) -> os.stat_result:
        return self.sys.lstat(self.kpath(p))

    def statvfs(self) -> os.statvfs_result:
        return self.sys.statvfs("/")

    def copy_out(self, src: str, dest: str | os.PathLike[str], *, preserve: bool = True) -> None:
        """Copy ``src`` (a file, or a directory with everything below it) to host path ``dest``."""
        from p2k.fscopy import copy_one
        from p2k.hyper.hostio import HostSide

        copy_one(self._side(), self.kpath(str(src)), HostSide(), os.fspath(dest), recursive=True,
                 preserve=preserve)

    def copy_in(self, src: str | os.PathLike[str], dest: str, *, preserve: bool = True) -> None:
        """Copy host path ``src`` (recursively) to image path ``dest``; needs ``mode="rw"``."""
        from p2k.fscopy import copy_one
        from p2k.hyper.hostio import HostSide

        copy_one(HostSide(), os.fspath(src), self._side(), self.kpath(str(dest)), recursive=True,
                 preserve=preserve)

    def _side(self) -> Any:
        """This image as one end of ``p2k cp``'s copy loop (modes, times, links, extended
        attributes), so ``copy_out``/``copy_in`` copy exactly what the command does."""
        from p2k.fscopy import ImageSide
        from p2k.fsview import FsView

        return ImageSide(FsView(self.sys, ""))

    def sync(self) -> None:
        self.sys.sync()

    @property
    def closed(self) -> bool:
        return self.kernel.halted

    def close(self, sync: bool = True) -> None:
        """Unmount (syncing a read-write image, which marks it clean) and halt the kernel; the
        process exits first, so that its open files and directories hold nothing up."""
        if not self.kernel.halted:
            self.kernel.release_proc(self.sys)
        self.kernel.halt(sync=sync)

    def __enter__(self) -> ImageFS:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # The data written before the exception is still the user's: sync it, so the image is
        # consistent and clean; a failing sync itself must not hide the original exception.
        try:
            self.close(sync=True)
        except OSError:
            if exc_type is None:
                raise
            self.kernel.halt(sync=False)


class ImagePath:
    """A path inside an image, in the manner of ``pathlib.PurePosixPath`` plus I/O."""

    def __init__(self, fs: ImageFS, p: str) -> None:
        self.fs = fs
        self._p = "/" + "/".join(c for c in str(p).split("/") if c and c != ".")

    def __str__(self) -> str:
        return self._p

    def __repr__(self) -> str:
        return f"ImagePath({self._p!r})"

    def __fspath__(self) -> str:
        return self._p

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImagePath) and other.fs is self.fs and other._p == self._p

    def __hash__(self) -> int:
        return hash(self._p)

    def __truediv__(self, name: str) -> ImagePath:
        return ImagePath(self.fs, self._p.rstrip("/") + "/" + name)

    @property
    def name(self) -> str:
        return self._p.rsplit("/", 1)[-1]

    @property
    def parent(self) -> ImagePath:
        return ImagePath(self.fs, self._p.rsplit("/", 1)[0] or "/")

    @property
    def suffix(self) -> str:
        n = self.name
        i = n.rfind(".")
        return n[i:] if 0 < i < len(n) - 1 else ""

    # ---- queries ---------------------------------------------------------------------------------
    def stat(self) -> os.stat_result:
        return self.fs.stat(self._p)

    def lstat(self) -> os.stat_result:
        return self.fs.lstat(self._p)

    def _mode(self, follow: bool = True) -> int | None:
        try:
            return (self.stat() if follow else self.lstat()).st_mode
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise

    def exists(self) -> bool:
        return self._mode() is not None

    def is_dir(self) -> bool:
        m = self._mode()
        return m is not None and st.S_ISDIR(m)

    def is_file(self) -> bool:
        m = self._mode()
        return m is not None and st.S_ISREG(m)

    def is_symlink(self) -> bool:
        m = self._mode(follow=False)
        return m is not None and st.S_ISLNK(m)

    def readlink(self) -> str:
        """The link's target as stored (a relative target stays relative to the link's folder)."""
        return os.fsdecode(self.fs.sys.readlink(self.fs.kpath(self._p)))

    def iterdir(self) -> Iterator[ImagePath]:
        for n in self.fs.names(self.fs.kpath(self._p)):
            yield self / n

    def __iter__(self) -> Iterator[ImagePath]:
        return self.iterdir()

    def rglob(self, pattern: str = "*") -> Iterator[ImagePath]:
        """Everything below this directory whose name matches ``pattern`` (fnmatch rules)."""
        for top, dirs, files in self.fs.walk(self._p):
            for n in dirs + files:
                if fnmatchcase(n, pattern):
                    yield ImagePath(self.fs, top.rstrip("/") + "/" + n)

    # ---- data ------------------------------------------------------------------------------------
    def open(self, mode: str = "r", encoding: str | None = None) -> IO[Any]:
        """A file object on this path (``r``, ``rb``, ``w``, ``wb``, ``a``, ``ab``)."""
        return open_kernel_file(self.fs.sys, self.fs.kpath(self._p), mode, encoding=encoding)

    def read_bytes(self) -> bytes:
        fd = self.fs.sys.open(self.fs.kpath(self._p), os.O_RDONLY)
        try:
            parts = []
            while chunk := self.fs.sys.read(fd, _CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        finally:
            self.fs.sys.close(fd)

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes().decode(encoding, errors)

    def write_bytes(self, data: bytes) -> int:
        fd = self.fs.sys.open(self.fs.kpath(self._p), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view, done = memoryview(data), 0
            while done < len(view):
                done += self.fs.sys.write(fd, view[done:done + _CHUNK])
            return done
        finally:
            self.fs.sys.close(fd)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    # ---- changes ---------------------------------------------------------------------------------
    def mkdir(self, mode: int = 0o755, parents: bool = False, exist_ok: bool = False) -> None:
        try:
            self.fs.sys.mkdir(self.fs.kpath(self._p), mode)
        except FileNotFoundError:
            if not parents or self.parent == self:
                raise
            self.parent.mkdir(mode, parents=True, exist_ok=True)
            self.mkdir(mode, exist_ok=exist_ok)
        except FileExistsError:
            if not exist_ok or not self.is_dir():
                raise

    def unlink(self) -> None:
        self.fs.sys.unlink(self.fs.kpath(self._p))

    def rmdir(self) -> None:
        self.fs.sys.rmdir(self.fs.kpath(self._p))

    def rename(self, target: str | ImagePath) -> ImagePath:
        self.fs.sys.rename(self.fs.kpath(self._p), self.fs.kpath(str(target)))
        return ImagePath(self.fs, str(target))

    def symlink_to(self, target: str) -> None:
        self.fs.sys.symlink(target, self.fs.kpath(self._p))

    def chmod(self, mode: int) -> None:
        self.fs.sys.chmod(self.fs.kpath(self._p), mode)

    def copy_out(self, dest: str | os.PathLike[str], *, preserve: bool = True) -> None:
        """Copy this file or tree to host path ``dest``."""
        self.fs.copy_out(self._p, dest, preserve=preserve)
