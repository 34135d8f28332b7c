"""The p2k remote-syscall wire protocol: banner, frames, and the value codec (docs/protocol.md).

In the spirit of rump_sp(7): the server greets with a one-line banner naming the protocol version,
the client answers with a handshake, and from then on both sides exchange length-prefixed frames
that carry a request number, so one connection can have several calls in flight and replies are
matched by number, not by order. Errors travel as errno values.

The codec is a small tagged format written for this purpose rather than pickle or marshal: both of
those would let a hostile peer run code or crash the decoder, and a server must be able to decode
anything a stranger sends and at worst refuse it. Every length is checked against the bytes actually
present before anything is allocated, nesting is bounded, and every failure is ``ProtocolError``.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from p2k.vfs.vattr import Dirent, Vattr

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
BANNER_PREFIX = b"P2KSP-"
BANNER_MAX = 128
"""A banner longer than this is not a p2k server; the client stops reading there."""

HEADER = struct.Struct("!IQHH")
"""Frame header: body length, request number, frame class, code (op number or errno)."""
HEADER_SIZE = HEADER.size

# Frame classes.
REQ = 1
RESP = 2
ERROR = 3

DEFAULT_MAX_FRAME = 16 << 20
"""Largest body either side accepts unless configured otherwise; reads and writes are cut to fit."""
MAX_IO_CHUNK = 8 << 20
"""Largest read or write one request carries; well under the frame limit, leaving room for headers."""
MAX_DEPTH = 8

_I64 = struct.Struct("!q")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_F64 = struct.Struct("!d")
_STAT = struct.Struct("!13q")
_STATVFS = struct.Struct("!11q")
_VATTR = struct.Struct("!16q")
_DIRENT = struct.Struct("!qBqI")
_VATTR_FIELDS = ("mode", "nlink", "uid", "gid", "size", "ino", "rdev", "atime_ns", "mtime_ns", "ctime_ns",
                 "birthtime_ns", "blocks", "blksize", "flags", "gen", "fsid")


class ProtocolError(Exception):
    """The peer broke the protocol; the connection it came on is closed."""


class Handle:
    """An opaque remote vnode reference: a number in the connection's handle table on the server.

    The client never learns anything about the vnode but this number; the server maps it back to a
    vnode it holds for that connection, and drops every such hold when the connection goes away.
    """

    __slots__ = ("id",)

    def __init__(self, id: int) -> None:
        self.id = id

    def __repr__(self) -> str:
        return f"Handle({self.id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Handle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("Handle", self.id))


def banner(version: str, challenge: bytes | None = None) -> bytes:
    """The server's first line; with ``challenge`` (``p2k.sp.auth``) the client must prove it
    holds the server's secret."""
    tail = b" challenge=" + challenge if challenge else b""
    return b"%s%d.%d-p2k-%s%s\n" % (BANNER_PREFIX, PROTOCOL_MAJOR, PROTOCOL_MINOR,
                                     version.encode()[:40].replace(b" ", b"_"), tail)


def check_banner(line: bytes) -> tuple[int, int]:
    """(major, minor) of a server banner; ProtocolError if it is not one we can talk to."""
    if not line.startswith(BANNER_PREFIX) or not line.endswith(b"\n"):
        raise ProtocolError(f"not a p2k server (banner {line[:40]!r})")
    try:
        major_s, minor_s = line[len(BANNER_PREFIX):].split(b"-", 1)[0].split(b".")
        major, minor = int(major_s), int(minor_s)
    except ValueError:
        raise ProtocolError(f"bad banner {line[:40]!r}") from None
    if major != PROTOCOL_MAJOR:
        raise ProtocolError(f"server speaks protocol {major}.{minor}, this client {PROTOCOL_MAJOR}.x")
    return major, minor


# ---- encoding ----------------------------------------------------------------------------------------


def encode(value: Any) -> bytes:
    out = bytearray()
    _enc(value, out)
    return bytes(out)


def _enc(v: Any, out: bytearray) -> None:
    # Order of tests follows frequency: ints, bytes and None dominate the traffic.
    t = type(v)
    if t is int:
        if -(1 << 63) <= v < (1 << 63):
            out += b"i"
            out += _I64.pack(v)
        else:
            raw = v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
            out += b"I" + _U32.pack(len(raw)) + raw
    elif v is None:
        out += b"N"
    elif t is bytes or t is bytearray or t is memoryview:
        out += b"b" + _U32.pack(len(v))
        out += v
    elif t is str:
        raw = v.encode("utf-8", "surrogateescape")
        out += b"s" + _U32.pack(len(raw)) + raw
    elif t is bool:
        out += b"T" if v else b"F"
    elif t is os.stat_result:
        out += b"S" + _STAT.pack(v.st_mode, v.st_ino, v.st_dev, v.st_nlink, v.st_uid, v.st_gid, v.st_size,
                                 v.st_atime_ns, v.st_mtime_ns, v.st_ctime_ns, v.st_blksize, v.st_blocks,
                                 v.st_rdev)
    elif t is os.statvfs_result:
        out += b"V" + _STATVFS.pack(*v[:10], v.f_fsid)
    elif t is Dirent:
        out += b"E" + _DIRENT.pack(v.ino, v.type, v.cookie, len(v.name)) + v.name
    elif t is Vattr or isinstance(v, Vattr):  # a subclass (AclVattr) travels as its attributes
        out += b"A" + _VATTR.pack(*(getattr(v, f) for f in _VATTR_FIELDS))
    elif t is Handle:
        out += b"H" + _U64.pack(v.id)
    elif t is float:
        out += b"f" + _F64.pack(v)
    elif t is list or t is tuple:
        out += (b"l" if t is list else b"t") + _U32.pack(len(v))
        for item in v:
            _enc(item, out)
    elif t is dict:
        out += b"d" + _U32.pack(len(v))
        for key, item in v.items():
            if type(key) is not str:
                raise TypeError(f"dict keys must be str, not {type(key).__name__}")
            _enc(key, out)
            _enc(item, out)
    else:
        raise TypeError(f"cannot send a {t.__name__} over the wire")


# ---- decoding ----------------------------------------------------------------------------------------


def decode(buf: bytes | bytearray | memoryview) -> Any:
    """The one value in ``buf``; ProtocolError on anything malformed, including trailing bytes."""
    mv = memoryview(buf)
    try:
        value, pos = _dec(mv, 0, 0)
    except (struct.error, IndexError, ValueError, OverflowError) as e:
        raise ProtocolError(f"malformed value: {e}") from None
    if pos != len(mv):
        raise ProtocolError(f"{len(mv) - pos} stray bytes after the value")
    return value


def _need(mv: memoryview, pos: int, n: int) -> None:
    if n < 0 or pos + n > len(mv):
        raise ProtocolError(f"truncated value (need {n} bytes at {pos}, have {len(mv) - pos})")


def _dec(mv: memoryview, pos: int, depth: int) -> tuple[Any, int]:
    _need(mv, pos, 1)
    tag = mv[pos]
    pos += 1
    if tag == 0x69:  # i
        _need(mv, pos, 8)
        return _I64.unpack_from(mv, pos)[0], pos + 8
    if tag == 0x4E:  # N
        return None, pos
    if tag == 0x62 or tag == 0x73 or tag == 0x49:  # b s I
        _need(mv, pos, 4)
        n = _U32.unpack_from(mv, pos)[0]
        pos += 4
        _need(mv, pos, n)
        raw = bytes(mv[pos:pos + n])
        if tag == 0x62:
            return raw, pos + n
        if tag == 0x73:
            return raw.decode("utf-8", "surrogateescape"), pos + n
        if n == 0:
            raise ProtocolError("empty big integer")
        return int.from_bytes(raw, "big", signed=True), pos + n
    if tag == 0x54:  # T
        return True, pos
    if tag == 0x46:  # F
        return False, pos
    if tag == 0x53:  # S
        _need(mv, pos, _STAT.size)
        f = _STAT.unpack_from(mv, pos)
        return make_stat(f), pos + _STAT.size
    if tag == 0x56:  # V
        _need(mv, pos, _STATVFS.size)
        f = _STATVFS.unpack_from(mv, pos)
        return os.statvfs_result(f), pos + _STATVFS.size
    if tag == 0x45:  # E
        _need(mv, pos, _DIRENT.size)
        ino, dtype, cookie, n = _DIRENT.unpack_from(mv, pos)
        pos += _DIRENT.size
        _need(mv, pos, n)
        return Dirent(ino, dtype, bytes(mv[pos:pos + n]), cookie), pos + n
    if tag == 0x41:  # A
        _need(mv, pos, _VATTR.size)
        return Vattr(*_VATTR.unpack_from(mv, pos)), pos + _VATTR.size
    if tag == 0x48:  # H
        _need(mv, pos, 8)
        return Handle(_U64.unpack_from(mv, pos)[0]), pos + 8
    if tag == 0x66:  # f
        _need(mv, pos, 8)
        return _F64.unpack_from(mv, pos)[0], pos + 8
    if tag in (0x6C, 0x74, 0x64):  # l t d
        if depth >= MAX_DEPTH:
            raise ProtocolError("values nested too deeply")
        _need(mv, pos, 4)
        n = _U32.unpack_from(mv, pos)[0]
        pos += 4
        # Every item takes at least one byte (two for a dict entry): a count larger than what is
        # left is a lie, refused before a list of that size is ever built.
        _need(mv, pos, n * (2 if tag == 0x64 else 1))
        if tag == 0x64:
            d: dict[str, Any] = {}
            for _ in range(n):
                key, pos = _dec(mv, pos, depth + 1)
                if type(key) is not str:
                    raise ProtocolError("dict key is not a string")
                d[key], pos = _dec(mv, pos, depth + 1)
            return d, pos
        items = []
        for _ in range(n):
            item, pos = _dec(mv, pos, depth + 1)
            items.append(item)
        return (items if tag == 0x6C else tuple(items)), pos
    raise ProtocolError(f"unknown value tag 0x{tag:02x}")


def make_stat(f: tuple[int, ...]) -> os.stat_result:
    """Rebuild an ``os.stat_result`` from the 13 wire fields, the way the kernel builds it locally."""
    mode, ino, dev, nlink, uid, gid, size, a, m, c, blksize, blocks, rdev = f
    return os.stat_result((mode, ino, dev, nlink, uid, gid, size,
                           a // 1_000_000_000, m // 1_000_000_000, c // 1_000_000_000,
                           a / 1e9, m / 1e9, c / 1e9, a, m, c, blksize, blocks, rdev))


# ---- frames ------------------------------------------------------------------------------------------


def frame(reqno: int, cls: int, code: int, body: bytes | bytearray | memoryview = b"") -> bytes:
    return HEADER.pack(len(body), reqno, cls, code) + bytes(body)


def parse_header(raw: bytes | bytearray | memoryview, max_frame: int) -> tuple[int, int, int, int]:
    """(length, reqno, class, code) of a frame header; ProtocolError if the body would be too big
    or the class is unknown — checked before a single body byte is read."""
    length, reqno, cls, code = HEADER.unpack(raw)
    if length > max_frame:
        raise ProtocolError(f"frame of {length} bytes exceeds the limit of {max_frame}")
    if cls not in (REQ, RESP, ERROR):
        raise ProtocolError(f"unknown frame class {cls}")
    return length, reqno, cls, code
