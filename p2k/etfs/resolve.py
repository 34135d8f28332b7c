"""``IMAGE[:NAME]`` → the backend and the byte window a command works on. One function for all.

Every command that takes an image (through ``p2k.cli.imagearg``), rump_server's ``-d ...,part=NAME``
and the Python-level openers call ``resolve``. ``NAME`` is a volume name from ``scan_volumes``
(``p2``, ``s1a``, ``a``) or a raw byte window ``@OFFSET[,SIZE]``. Without a name: the whole image if
it is itself a file system the caller recognises; else its only such volume; else an error that
lists the candidates — never a guess. An image without any partition map is taken whole, so that
the file system's own message ("no valid FFS superblock found") reaches the user.
"""

from __future__ import annotations

import errno

from p2k.hyper import Backend, open_backend
from p2k.hyper.containers import ContainerReadOnly
from p2k.hyper.hostio import host_path_exists
from p2k.slotted import Slotted

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable

    from p2k.etfs.volumes import Volume, VolumeMap
    from p2k.hyper.containers import Progress

    Detect = Callable[[Callable[[int, int], bytes], int], str | None]  # annotations only (p2k.hyper.containers)
    """``detect(pread, size)`` names the file system in a window (``"FFSv2 LE"``) or returns None."""

_READONLY_FALLBACK = (errno.EACCES, errno.EPERM, errno.EROFS)
# Patterns, not compiled objects, and re imported where they are used: re (with enum, 2.5 ms) and
# the compiling (0.15 ms) are paid on the first image name with a suffix, not at every command's
# start-up (most image names have none).
NAME_RE = r"^(?:[ps][1-9][0-9]*[a-z]?|[a-z])$"
WINDOW_RE = r"^@(?P<off>[^,]+)(?:,(?P<size>.+))?$"


def is_volume_name(text: str) -> bool:
    """Whether ``text`` has the form of a volume name or a ``@OFFSET[,SIZE]`` window."""
    import re

    return bool(re.match(NAME_RE, text) or re.match(WINDOW_RE, text))


def parse_window(text: str, parse_size: Callable[[str, str], int]) -> tuple[int, int | None] | None:
    """``@OFFSET[,SIZE]`` → (offset, size or None); None if ``text`` is not of that form."""
    import re

    m = re.match(WINDOW_RE, text)
    if not m:
        return None
    off = parse_size(m.group("off"), "offset")
    size = parse_size(m.group("size"), "size") if m.group("size") else None
    return off, size


class Target(Slotted):
    """What to register: ``size`` bytes of ``backend`` from ``offset``; ``name`` the volume chosen
    (None: the whole image, or a window given by offset)."""

    __slots__ = ("backend", "offset", "size", "name", "warnings")
    backend: Backend
    offset: int
    size: int
    name: str | None
    warnings: list[str]

    def __init__(self, backend: Backend, offset: int, size: int, name: str | None = None,
                 warnings: list[str] | None = None) -> None:
        self.backend = backend
        self.offset = offset
        self.size = size
        self.name = name
        self.warnings = [] if warnings is None else warnings


def split_image_arg(text: str, exists: Callable[[str], bool] = host_path_exists) -> tuple[str, str | None]:
    """``disk.img:p2`` → (``disk.img``, ``p2``). A path that exists as given is never split, and
    only a suffix of a volume name's form counts (so ``a:b/c.img`` stays a path); ``exists`` lets
    a remote file system answer for a URL."""
    path, sep, name = text.rpartition(":")
    if sep and path and is_volume_name(name) and not exists(text):
        return path, name
    return text, None


def open_source(path: str, readonly: bool, progress: Progress | None = None) -> Backend:
    """The backend for ``path``; a raw file the user may only read is opened read-only (the
    write then fails later with EROFS, as a registration in NetBSD does)."""
    try:
        return open_backend(path, readonly=readonly, progress=progress)
    except OSError as e:
        if readonly or e.errno not in _READONLY_FALLBACK or isinstance(e, ContainerReadOnly):
            raise
    return open_backend(path, readonly=True)


def _window_reader(backend: Backend, start: int, size: int) -> Callable[[int, int], bytes]:
    def pread(off: int, n: int) -> bytes:
        if off < 0 or off >= size:
            return b""
        return backend.pread(start + off, min(n, size - off))
    return pread


def resolve(source: str | Backend, name: str | None, *, readonly: bool, detect: Detect | None = None,
            parse_size: Callable[[str, str], int] | None = None, progress: Progress | None = None) -> Target:
    """Open ``source`` (a path, recognised by content, or a backend, which is then owned) and
    find the window ``name`` designates; OSError with a one-line message otherwise. ``progress``
    hears about a container's first full pass (see ``p2k.hyper.containers``)."""
    backend = open_source(source, readonly, progress) if isinstance(source, str) else source
    try:
        return _resolve(backend, name, detect, parse_size)
    except BaseException:
        backend.close()
        raise


def _resolve(backend: Backend, name: str | None, detect: Detect | None,
             parse_size: Callable[[str, str], int] | None) -> Target:
    disk_size = backend.size()
    where = backend.name
    if name is not None and name.startswith("@"):
        window = parse_window(name, parse_size or _plain_int)
        if window is None:
            raise OSError(errno.EINVAL, f"bad window {name!r} (want @OFFSET[,SIZE])", where)
        off, size = window
        size = disk_size - off if size is None else size
        if off < 0 or size <= 0 or off + size > disk_size:
            raise OSError(errno.EINVAL, f"window {name} is not inside the image ({disk_size} bytes)", where)
        return Target(backend, off, size, None)
    if name is None and detect is not None and detect(_window_reader(backend, 0, disk_size), disk_size):
        return Target(backend, 0, disk_size, None)
    from p2k.etfs.volumes import scan_volumes  # here: an image that is itself an FFS never needs it

    vm = scan_volumes(backend.pread, disk_size)
    if name is not None:
        v = vm.find(name)
        if v is None:
            known = ", ".join(vm.names) or "none"
            raise OSError(errno.ENOENT, f"no partition {name} ({vm.scheme} map; partitions: {known})", where)
        return Target(backend, v.start, v.size, v.name, vm.warnings)
    if not vm.volumes or detect is None:
        return Target(backend, 0, disk_size, None, vm.warnings)
    return _only_fs(backend, vm, detect)


def _only_fs(backend: Backend, vm: VolumeMap, detect: Detect) -> Target:
    """The no-suffix rule when the image is not itself a file system: its one file system."""
    found: dict[int, tuple[Volume, str]] = {}
    for v in vm.volumes:
        if v.container:
            continue
        fs = detect(_window_reader(backend, v.start, v.size), v.size)
        if fs and v.start not in found:
            found[v.start] = (v, fs)
        elif fs and v.scheme != "mbr":
            found[v.start] = (v, fs)  # a label partition names it more precisely than its slice
    if len(found) == 1:
        v, _ = next(iter(found.values()))
        return Target(backend, v.start, v.size, v.name, vm.warnings)
    if found:
        listing = ", ".join(f"{v.name} ({fs})" for v, fs in found.values())
        why = f"{len(found)} file systems in the {vm.scheme} map: {listing}"
    else:
        listing = ", ".join(f"{v.name} ({v.type})" for v in vm.volumes)
        why = f"no file system found in the {vm.scheme} map: {listing}"
    raise OSError(errno.EINVAL, f"{why}; name one as IMAGE:NAME", backend.name)


def _plain_int(text: str, desc: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise OSError(errno.EINVAL, f"{desc} {text!r} is not a number") from None
