"""The UFS2 extended-attribute area (FreeBSD ``sys/ufs/ufs/extattr.h``, ``ffs_vnops.c``
ffs_extread/ffs_extwrite/ffs_findextattr; NetBSD 10 ``ffs_extattr.c`` for UFS2EA).

Every UFS2 inode may own an *ext area* of ``di_extsize`` bytes kept in up to two blocks
(``di_extb[0..1]``), the last a fragment run rounded up to whole fragments, exactly as the last
block of a small file; the blocks count in ``di_blocks``. The area is a sequence of records::

    u32 ea_length         whole record, a multiple of 8
    u8  ea_namespace      1 user, 2 system
    u8  ea_contentpadlen  zero bytes after the content
    u8  ea_namelength
    name (not NUL-terminated), zero-padded so that the content starts 8-aligned
    content, zero-padded to 8

in the file system's byte order. FreeBSD stops at the first record that would run past the end
(``EXTATTR_NEXT(eap) > eaend``); a zero length marks a zeroed tail. Both are tolerated when
reading and reported by ``check_area`` (fsck).

Writing follows the crash rule of the rest of the write path when the area changes shape: the
new area goes to freshly allocated blocks first, the inode is pointed at them (synchronously, in
NetBSD's terms), and only then are the old blocks freed — a crash leaves the old area or the new
one, at worst a leaked block for fsck to reclaim, never a pointer to a block someone else owns.
An area that keeps its blocks and fragments is overwritten in place (``_write_in_place``).
"""

from __future__ import annotations

import errno

from p2k.fs.ffs.fs import fragroundup, ino_to_cg
from p2k.ondisk import U8, U32, Record

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.fs import Superblock
    from p2k.fs.ffs.inode import Inode

UFS_NXADDR = 2


class ExtattrHeader(Record):
    """``struct extattr`` up to the name (``ea_name`` follows at offset 7)."""

    ea_length: U32
    ea_namespace: U8
    ea_contentpadlen: U8
    ea_namelength: U8


HDR = ExtattrHeader.SIZE  # 7


def _round8(n: int) -> int:
    return (n + 7) & ~7


def record_size(name: bytes, value_len: int) -> int:
    """Bytes a record of ``name`` with ``value_len`` bytes of content takes in the area."""
    return _round8(HDR + len(name)) + _round8(value_len)


def max_value(fs: Superblock, name: bytes) -> int:
    """The largest content that fits for ``name`` in an otherwise empty area."""
    return UFS_NXADDR * fs.fs_bsize - _round8(HDR + len(name))


Attrs = dict[tuple[int, bytes], bytes]


def parse_area(buf: bytes | bytearray | memoryview, endian: str) -> tuple[Attrs, str | None]:
    """The attributes of an area, in on-disk order, and the first problem found (None if the
    records chain exactly to the end, or to a zeroed tail). Parsing stops at a problem, keeping
    what came before, as FreeBSD's readers do."""
    attrs, problem, _ = walk_area(buf, endian)
    return attrs, problem


def walk_area(buf: bytes | bytearray | memoryview, endian: str) -> tuple[Attrs, str | None, int]:
    """``parse_area`` plus the length of the well-formed prefix (what fsck truncates to)."""
    attrs: Attrs = {}
    st = ExtattrHeader.STRUCTS[endian]
    end = len(buf)
    off = 0
    while off < end:
        if end - off < HDR:
            return attrs, f"truncated record header at offset {off}", off
        length, ns, pad, nlen = st.unpack_from(buf, off)
        if length == 0:
            if any(bytes(buf[off:end])):
                return attrs, f"zero record length at offset {off} before non-zero bytes", off
            return attrs, None, off  # a zeroed tail (FreeBSD's ffs_open_ea drops it too)
        base = _round8(HDR + nlen)
        if length & 7 or length < base or off + length > end:
            return attrs, f"bad record length {length} at offset {off}", off
        csize = length - base - pad
        if csize < 0 or pad > 7:
            return attrs, f"bad content padding {pad} at offset {off}", off
        if nlen == 0:
            return attrs, f"empty attribute name at offset {off}", off
        if ns not in (1, 2):
            return attrs, f"unknown namespace {ns} at offset {off}", off
        name = bytes(buf[off + HDR:off + HDR + nlen])
        attrs[(ns, name)] = bytes(buf[off + base:off + base + csize])
        off += length
    return attrs, None, off


def encode_record(ns: int, name: bytes, value: bytes, endian: str) -> bytes:
    """One record: header, name padded to 8, content padded to 8."""
    base = _round8(HDR + len(name))
    vlen = len(value)
    pad = _round8(vlen) - vlen
    return (ExtattrHeader.STRUCTS[endian].pack(base + vlen + pad, ns, pad, len(name)) + name
            + bytes(base - HDR - len(name)) + value + bytes(pad))


def build_area(attrs: Attrs, endian: str) -> bytes:
    """The area holding ``attrs`` in their order (the inverse of ``parse_area``)."""
    return b"".join([encode_record(ns, name, value, endian) for (ns, name), value in attrs.items()])


def area_runs(fs: Superblock, extsize: int) -> list[int]:
    """Bytes held by each ext block for an area of ``extsize`` bytes (sblksize of the area)."""
    out: list[int] = []
    left = extsize
    while left > 0 and len(out) < UFS_NXADDR:
        out.append(fs.fs_bsize if left >= fs.fs_bsize else fragroundup(fs, left))
        left -= fs.fs_bsize
    return out


def read_area(m: FfsMount, ip: Inode) -> bytes:
    """The ``di_extsize`` bytes of the area, through the buffer cache; EIO on a bad pointer."""
    fs = m.fs
    if ip.extsize > UFS_NXADDR * fs.fs_bsize:
        raise OSError(errno.EIO, f"inode {ip.ino}: ext area of {ip.extsize} bytes is too large")
    parts = []
    for i, size in enumerate(area_runs(fs, ip.extsize)):
        addr = ip.extb[i]
        if addr == 0:
            parts.append(bytes(size))
            continue
        if addr < 0 or addr + (size >> fs.fs_fshift) > fs.fs_size:
            raise OSError(errno.EIO, f"inode {ip.ino}: ext block {addr} out of range")
        parts.append(m.bufcache.read(m.dev, addr << fs.fs_fshift, size))
    return b"".join(parts)[:ip.extsize]


def _free_runs(m: FfsMount, runs: list[tuple[int, int]]) -> None:
    fs = m.fs
    for addr, size in runs:
        n = size >> fs.fs_fshift
        m.note_freed(addr, n)
        m.bufcache.invalidate(m.dev, addr << fs.fs_fshift, size, fs.fs_fsize)
        m.alloc.free(addr, n)


def _old_runs(m: FfsMount, ip: Inode) -> list[tuple[int, int]]:
    return [(ip.extb[i], size) for i, size in enumerate(area_runs(m.fs, ip.extsize)) if ip.extb[i]]


def write_area(m: FfsMount, ip: Inode, data: bytes, root: bool) -> None:
    """Replace the inode's area by ``data`` (copy-on-write, see the module docstring)."""
    fs = m.fs
    alloc = m.alloc
    if len(data) > UFS_NXADDR * fs.fs_bsize:
        raise OSError(errno.ENOSPC, "extended attribute area full")
    sizes = area_runs(fs, len(data))
    if sizes and sizes == area_runs(fs, ip.extsize) and all(ip.extb[:len(sizes)]):
        _write_in_place(m, ip, data, sizes)
        return
    cgpref = ino_to_cg(fs, ip.ino)
    new: list[tuple[int, int]] = []
    try:
        for size in sizes:
            if size == fs.fs_bsize:
                addr, _ = alloc.alloc_blocks(0, cgpref, 1, root)
            else:
                addr = alloc.alloc_frags(0, cgpref, size >> fs.fs_fshift, root)
            new.append((addr, size))
    except OSError:
        _free_runs(m, new)
        raise
    m.reuse_check([a for a, _ in new])
    pos = 0
    for addr, size in new:
        bp = m.bufcache.getblk(m.dev, addr << fs.fs_fshift, size)
        chunk = data[pos:pos + size]
        bp.data[:] = chunk + bytes(size - len(chunk))
        m.note_new(addr)  # on disk before the inode points to it
        m.bufcache.bwrite(bp)
        pos += size
    old = _old_runs(m, ip)
    ip.extsize = len(data)
    ip.extb = [a for a, _ in new] + [0] * (UFS_NXADDR - len(new))
    ip.blocks += (sum(s for _, s in new) - sum(s for _, s in old)) >> 9
    m.iupdate(ip, sync=True)  # the inode leaves the old blocks before they are free
    _free_runs(m, old)


def _write_in_place(m: FfsMount, ip: Inode, data: bytes, sizes: list[int]) -> None:
    """The same blocks and fragments hold the new area: overwrite them, as FreeBSD's ffs_extwrite
    does. Allocating anew each time would free the old blocks, and the next set would find them
    again and need a full sync first (``reuse_check``): a thousand sets, a thousand syncs. The
    price is FreeBSD's: a crash between the two blocks' writes can leave a chain that breaks
    where the blocks meet, which fsck truncates there (``fsck/extattr.py``)."""
    fs = m.fs
    pos = 0
    for addr, size in zip(ip.extb, sizes, strict=False):
        bp = m.bufcache.getblk(m.dev, addr << fs.fs_fshift, size)
        chunk = data[pos:pos + size]
        bp.data[:] = chunk + bytes(size - len(chunk))
        m.bufcache.bwrite(bp)
        pos += size
    ip.extsize = len(data)
    m.iupdate(ip, sync=True)


def free_area(m: FfsMount, ip: Inode) -> None:
    """Give back the area's blocks (inode being freed): pointers cleared on disk first."""
    old = _old_runs(m, ip)
    if not old and not ip.extsize:
        return
    ip.blocks -= sum(s for _, s in old) >> 9
    ip.extsize = 0
    ip.extb = [0] * UFS_NXADDR
    ip.ea = None
    m.iupdate(ip, sync=True)
    _free_runs(m, old)


__all__ = ["HDR", "UFS_NXADDR", "Attrs", "ExtattrHeader", "area_runs", "build_area", "free_area",
           "encode_record", "max_value", "parse_area", "read_area", "record_size", "walk_area", "write_area"]
