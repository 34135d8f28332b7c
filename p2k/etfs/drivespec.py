"""rump_server(1)'s ``-d`` drivespec: parsing with its exact words, and registration with its rules.

``key=/dev/dk,hostpath=dk.img,size=1g[,offset=N][,type=blk|chr|reg]`` or
``key=...,hostpath=...,disklabel=a``, or p2k's extension ``key=...,hostpath=...,part=NAME``, which
takes any partition name ``p2k parts`` prints (``p2``, ``s1a``, ``a``, ``@OFFSET[,SIZE]``) and reads
MBR, GPT and BSD labels in slices (``p2k.etfs.resolve``); an image in a container (qcow2, VMDK,
VHD(X), gzip, xz) is recognised by content and may only be registered read-only.

Parsing follows NetBSD's ``rump_allserver.c`` (1.39) and the
two libc routines it leans on, ``getsubopt(3)`` and ``strsuftoll(3)``, quirks included — a value of 0
counts as "not given", whitespace separates options like commas — because scripts written for
rump_server must get the same answer here. Each ``DriveSpecError`` carries rump_server's message
without the program name; the CLI adds that.

One deliberate difference: rump_server refuses ``disklabel`` only when it comes *after* a non-zero
size or offset, and silently lets the label win when it comes first; p2k refuses both orders with
the same message, since the second is never what the user meant.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from p2k.etfs.device import ETFS_BLK, ETFS_CHR, ETFS_REG, Device
from p2k.etfs.disklabel import LABEL_SCAN_BYTES, scan_disklabel
from p2k.etfs.fault import FAULT_TOKENS, FaultPlan, parse_fault_option
from p2k.etfs.registry import EtfsRegistry
from p2k.etfs.resolve import is_volume_name, resolve
from p2k.hyper import Backend, HostFile, container_kind
from p2k.hyper.hostio import create_host_file, host_path_exists

LLONG_MAX = (1 << 63) - 1
_SUFFIXES = {"b": 512, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "w": 4}
"""strsuftoll's multipliers; ``w`` is ``sizeof(int)``, 4 on every NetBSD port (GNU dd says 2)."""
_C_SPACE = " \t\n\v\f\r"
_SUBOPT_SEPARATORS = ", \t"
_TYPES = {"blk": ETFS_BLK, "chr": ETFS_CHR, "reg": ETFS_REG}
_TOKENS = ("key", "hostpath", "size", "offset", "disklabel", "type", "part")
_SIZE_HOST = -1  # rump_server's DSIZE_E
P = ParamSpec("P")
T = TypeVar("T")


class DriveSpecError(ValueError):
    """A drivespec rump_server would refuse; ``str()`` is its message, without the program name."""


def _wrap64(value: int) -> int:
    """C's signed 64-bit wrap-around, which strsuftoll's overflow test (``t > num``) relies on."""
    return ((value + (1 << 63)) % (1 << 64)) - (1 << 63)


def _strtoll(text: str) -> tuple[int, str] | None:
    """Leading ``[+-]digits`` of ``text`` and the rest; None when there are no digits. Saturates like
    strtoll on overflow (the caller reports ERANGE)."""
    i = 1 if text[:1] in ("+", "-") else 0
    j = i
    while j < len(text) and text[j] in "0123456789":
        j += 1
    if j == i:
        return None
    return int(text[:j]), text[j:]


def parse_size(text: str | int, desc: str = "size", minimum: int = 0, maximum: int = LLONG_MAX) -> int:
    """A dd(1)-style number as NetBSD's strsuftoll reads it: ``N[bkmgtw]`` and products ``AxB``.

    ``b`` is 512, ``k``/``m``/``g``/``t`` powers of 1024, ``w`` 4; ``x`` (or ``*``) multiplies. The
    error messages are strsuftoll's, naming ``desc`` (rump_server passes ``-d size``/``-d offset``).
    """
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    val = str(text).lstrip(_C_SPACE)
    parsed = _strtoll(val)
    if parsed is None:
        raise DriveSpecError(f"{desc} `{val}': illegal number")
    num, rest = parsed
    erange = DriveSpecError(f"{desc}: Result too large")
    if not -(1 << 63) <= num <= LLONG_MAX:
        raise erange
    if rest[:1] in _SUFFIXES:
        t, num = num, _wrap64(num * _SUFFIXES[rest[0]])
        if t > num:
            raise erange
        rest = rest[1:]
    if rest[:1] in ("x", "*"):
        t = num
        num = _wrap64(t * parse_size(rest[1:], desc, minimum, maximum))
        if t > num:
            raise erange
    elif rest:
        raise DriveSpecError(f"{desc} `{val}': illegal number")
    if num < minimum:
        raise DriveSpecError(f"{desc} {num} is less than {minimum}.")
    if num > maximum:
        raise DriveSpecError(f"{desc} {num} is greater than {maximum}.")
    return num


def _getsubopt(text: str) -> list[tuple[str | None, str | None]]:
    """Split like getsubopt(3): ``name[=value]`` items separated by runs of commas and blanks.

    A value ends at a comma or blank too; an item made only of separators comes back as
    ``(None, None)``, which rump_server reports as an invalid token.
    """
    items: list[tuple[str | None, str | None]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in _SUBOPT_SEPARATORS:
            i += 1
        if i >= n:
            items.append((None, None))
            break
        start = i
        i += 1  # the first character always belongs to the name, even a '='
        while i < n and text[i] not in _SUBOPT_SEPARATORS + "=":
            i += 1
        name, value = text[start:i], None
        if i < n and text[i] == "=":
            vstart = i + 1
            i = vstart
            while i < n and text[i] not in _SUBOPT_SEPARATORS:
                i += 1
            value = text[vstart:i]
        while i < n and text[i] in _SUBOPT_SEPARATORS:
            i += 1
        items.append((name, value))
    return items


@dataclass(slots=True)
class DriveSpec:
    """A parsed drivespec. ``size`` None means: the whole host file (``size=host``, recorded in
    ``size_host``, or a ``type=reg`` spec without a size). ``readonly`` is never set by the parser
    (rump_server has no such option); ``p2k mount -o ro`` sets it."""

    key: str
    hostpath: str
    size: int | None = None
    offset: int = 0
    type: int = ETFS_BLK
    disklabel: str | None = None
    readonly: bool = False
    size_host: bool = False
    faults: FaultPlan | None = None  # p2k extension: failwrite=, failread=, tearwrite=, powercut=, seed=
    part: str | None = None  # p2k extension: part=p2, s1a, a or @OFFSET[,SIZE] (any partition map)

    def register(self, registry: EtfsRegistry) -> Device:
        """Do what rump_server does with a drivespec, then register it.

        Creates a missing host file (mode 0644 less the umask) unless the size is ``host``, a
        disklabel is asked for, or the spec is read-only; reads the label; grows a too-short regular
        file to ``offset + size``. Failures are ``OSError(errno, reason)`` with rump_server's reason
        (``etfs hostpath open``, ``disklabel not found``, ``partition not available``,
        ``size=host, but cannot query non-zero size``, ``truncate``, ``etfs register``).
        """
        if self.part is not None or container_kind(self.hostpath):
            return self._register_resolved(registry)
        if not host_path_exists(self.hostpath):
            if self.disklabel is not None:
                # rump_server would create an empty file first, then fail to find a label in it.
                raise OSError(errno.ENOENT, "disklabel not found", self.hostpath)
            if not (self.size_host or self.readonly):
                _host_call("etfs hostpath open", self.hostpath, create_host_file, self.hostpath, 0o644)
        probe = _host_call("etfs hostpath open", self.hostpath, HostFile, self.hostpath,
                           readonly=self.readonly)
        try:
            offset, size = self.offset, self.size
            if self.disklabel is not None:
                label = scan_disklabel(probe.pread(0, min(LABEL_SCAN_BYTES, probe.size)))
                if label is None:
                    raise OSError(errno.ENOENT, "disklabel not found", self.hostpath)
                offset, size = label.window(self.disklabel)
            fsize = probe.host_size()
            if self.size_host:
                if fsize == 0:
                    raise OSError(errno.EINVAL, "size=host, but cannot query non-zero size", self.hostpath)
                size = fsize
            if size is not None and probe.is_regular and fsize < offset + size and not self.readonly:
                window = _host_call("truncate", self.hostpath, HostFile, self.hostpath, offset=offset,
                                    size=size)
                try:
                    _host_call("truncate", self.hostpath, window.extend_to_window)
                finally:
                    window.close()
        finally:
            probe.close()
        return self._register_window(registry, self.hostpath, size, offset)


    def _register_resolved(self, registry: EtfsRegistry) -> Device:
        """p2k's ``part=`` and images in containers: the window comes from ``resolve``, which
        reads any partition map (and refuses to write into a container, saying how to convert)."""
        if not host_path_exists(self.hostpath):
            raise OSError(errno.ENOENT, "etfs hostpath open", self.hostpath)
        target = resolve(self.hostpath, self.part or self.disklabel, readonly=self.readonly, parse_size=parse_size)
        offset, size = target.offset, target.size
        if self.part is None and self.disklabel is None:
            offset = self.offset
            size = self.size if self.size is not None else max(target.size - offset, 0)
        return self._register_window(registry, target.backend, size, offset)

    def _register_window(self, registry: EtfsRegistry, source: str | Backend, size: int | None,
                         offset: int) -> Device:
        """The registration both paths end in, with rump_etfs's error wording and the faults."""
        try:
            dev = registry.register(self.key, source, self.type, size=size, offset=offset,
                                    readonly=self.readonly)
        except OSError as e:
            raise OSError(e.errno, "etfs register", self.key) from e
        if self.faults is not None:
            dev.set_faults(self.faults)
        return dev


def _host_call(reason: str, path: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a host operation, renaming its failure to rump_server's ``reason`` (errno kept)."""
    try:
        return fn(*args, **kwargs)
    except OSError as e:
        raise OSError(e.errno, reason, path) from e


def parse_drivespec(text: str) -> DriveSpec:
    """Parse a ``-d`` argument; DriveSpecError with rump_server's message on any mistake."""
    key: str | None = None
    hostpath: str | None = None
    flen = foffset = 0
    partition: str | None = None
    part: str | None = None
    ftype = -1
    faults: FaultPlan | None = None
    for name, value in _getsubopt(text):
        if name in FAULT_TOKENS:
            faults = faults or FaultPlan()
            try:
                parse_fault_option(faults, name, value or "", parse_size)
            except ValueError as e:
                raise DriveSpecError(str(e)) from None
            continue
        token = _TOKENS.index(name) if name in _TOKENS else -1
        if token == 0:
            if key is not None:
                raise DriveSpecError("key already given")
            key = value
        elif token == 1:
            if hostpath is not None:
                raise DriveSpecError("hostpath already given")
            hostpath = value
        elif token == 2:
            if flen != 0:
                raise DriveSpecError("size already given")
            if value == "host":
                if foffset != 0:
                    raise DriveSpecError("cannot specify offset with size=host")
                flen = _SIZE_HOST
            else:
                flen = parse_size(value or "", "-d size")
            if partition is not None and flen != 0:
                raise DriveSpecError("disklabel needs to be used alone")
        elif token == 3:
            if foffset != 0:
                raise DriveSpecError("offset already given")
            if flen == _SIZE_HOST:
                raise DriveSpecError("cannot specify offset with size=host")
            foffset = parse_size(value or "", "-d offset")
            if partition is not None and foffset != 0:
                raise DriveSpecError("disklabel needs to be used alone")
        elif token == 4:
            if foffset != 0 or flen != 0:
                raise DriveSpecError("disklabel needs to be used alone")
            if value is None or len(value) != 1 or not "a" <= value <= "z":
                raise DriveSpecError("invalid label part")
            partition = value
        elif token == 5:
            if ftype != -1:
                raise DriveSpecError("type already specified")
            if value not in _TYPES:
                raise DriveSpecError(f"invalid type {value or ''}")
            ftype = _TYPES[value]
        elif token == 6:
            if value is None or not is_volume_name(value):
                raise DriveSpecError("invalid part name")
            part = value
        else:
            raise DriveSpecError("invalid dtoken")
    if part is not None and (partition is not None or flen != 0 or foffset != 0):
        raise DriveSpecError("part needs to be used alone")
    if key is None or hostpath is None or (flen == 0 and partition is None and part is None and ftype != ETFS_REG):
        raise DriveSpecError("incomplete drivespec")
    return DriveSpec(
        key=key,
        hostpath=hostpath,
        size=flen if flen > 0 else None,
        offset=foffset,
        type=ETFS_BLK if ftype == -1 else ftype,
        disklabel=partition,
        size_host=flen == _SIZE_HOST,
        faults=faults,
        part=part,
    )
