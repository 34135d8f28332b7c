"""The UFS vnode operations (NetBSD ``ufs_vnops.c``, ``ufs_rename.c``): attributes, symbolic
links, and making, linking, removing and renaming names.

Ordering for crash consistency follows NetBSD's synchronous (non-softdep) FFS, mapped onto the
buffer cache's ordered write-back (set up by ``FfsMount``): file data and blocks nothing points
to yet are written before the metadata of the same epoch, with a device flush between; a link
count goes up before a new name appears and down only after the old name is gone; a block or
inode freed since the last full sync is not written again before another one (``barrier``), so
a crash never lets an old pointer or name show new contents.

Every operation that changes the file system refuses a read-only mount with EROFS first, as
NetBSD's ufs operations test MNT_RDONLY (the syscall layer checks too; a FUSE or server request
comes through it as well, so this is the driver's own guarantee, not the only one).
"""

from __future__ import annotations

import errno

from p2k.fs.ffs.dir import dir_template
from p2k.fs.ffs.extattr import free_area
from p2k.fs.ffs.ffs_inode import truncate
from p2k.fs.ffs.ffs_vnops import acl_vattr, inherit_acl
from p2k.fs.ffs.fs import MAXPATHLEN, UFS_NDADDR
from p2k.fs.ffs.inode import IFBLK, IFCHR, IFDIR, IFLNK, IFMT, IFREG
from p2k.fs.ffs.ufs_inode import changed, modified, set_times
from p2k.fs.ffs.ufs_lookup import dir_index, direnter, dirremove, dirrewrite
from p2k.hyper import now_ns, random_u32
from p2k.vfs.vattr import Vattr, apply_owner_mode

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount
    from p2k.fs.ffs.inode import Inode
    from p2k.vfs.vattr import SetAttr
    from p2k.vfs.vnode import Vnode

LINK_MAX = 32767


def _ip(vp: Vnode) -> Inode:
    return vp.data  # type: ignore[return-value]


def _dtype(mode: int) -> int:
    return (mode >> 12) & 15


def _root(ip: Inode) -> bool:
    """Whether writes for ``ip`` may use the minfree reserve: its owner is root (the VOP
    interface carries no credentials; see ufs_readwrite)."""
    return ip.uid == 0


def _writable(m: FfsMount) -> None:
    if m.readonly:
        raise OSError(errno.EROFS, "read-only file system")


# ---- attributes, symbolic links ------------------------------------------------------------------
def ufs_getattr(m: FfsMount, vp: Vnode) -> Vattr:
    ip: Inode = vp.data  # type: ignore[assignment]
    g = 1_000_000_000
    mode = ip.mode
    # positional: this runs once per entry of a stat walk (order = Vattr's field order)
    va = Vattr(
        mode, ip.nlink, ip.uid, ip.gid, ip.size, ip.ino,
        ip.db[0] & 0xFFFFFFFFFFFFFFFF if mode & 0o170000 in (0o020000, 0o060000) else 0,
        ip.atime * g + ip.atimensec, ip.mtime * g + ip.mtimensec,
        ip.ctime * g + ip.ctimensec, ip.birthtime * g + ip.birthnsec,
        ip.blocks, m.fs.fs_bsize, ip.flags, ip.gen, m.fsid)
    if ip.extsize and m.acls:
        return acl_vattr(m, ip, va)
    return va


def ufs_readlink(m: FfsMount, vp: Vnode) -> bytes:
    ip: Inode = vp.data  # type: ignore[assignment]
    if ip.mode & 0o170000 != IFLNK:
        raise OSError(errno.EINVAL, "not a symbolic link")
    isize = ip.size
    msl = m.fs.fs_maxsymlinklen
    # ufs_readlink: inline iff size < maxsymlinklen (strictly: a target of exactly 60/120
    # bytes lives in a block), or on old file systems with no blocks at all.
    if isize < msl or (msl == 0 and ip.blocks == 0):
        short = m.codec.shortlink(ip)
        if isize > len(short):
            raise OSError(errno.EIO, f"inode {ip.ino}: inline symlink of {isize} bytes")
        return short[:isize]
    if isize >= MAXPATHLEN:
        raise OSError(errno.EIO, f"inode {ip.ino}: symlink of {isize} bytes exceeds MAXPATHLEN")
    return m.read_range(ip, 0, isize)


# ---- helpers -------------------------------------------------------------------------------------
def new_inode(m: FfsMount, dip: Inode, mode: int, uid: int, gid: int) -> Inode:
    """ffs_valloc + ufs_makeinode's initialisation of a fresh in-core inode."""
    isdir = mode & IFMT == IFDIR
    ino = m.alloc.alloc_inode(dip.ino, isdir)
    if ino in m.freed_inos:
        m.barrier()  # the name that pointed to its last life must be gone on disk first
    ip = m.read_dinode(ino)
    if ip.mode != 0:
        raise OSError(errno.EIO, f"inode {ino} is free in the map but allocated on disk")
    gen = (ip.gen + 1) & 0xFFFFFFFF
    ip.gen = gen or random_u32() or 1
    ip.mode = mode
    ip.nlink = 0
    ip.uid, ip.gid = uid, gid
    ip.size = ip.blocks = 0
    ip.db = [0] * UFS_NDADDR
    ip.ib = [0, 0, 0]
    ip.flags = 0
    ip.extsize = 0
    ip.extb = [0, 0]
    ip.kernflags = 0
    ip.modrev = 0
    ip.oldids = (0, 0)
    if m.fs.ufs2:
        ip.blksize = m.fs.fs_bsize
    t = now_ns()
    set_times(ip, a=t, m=t, c=t, b=t if m.fs.ufs2 else None)
    ip.dircache = None
    return ip


def _undo_inode(m: FfsMount, ip: Inode) -> None:
    """Give back an inode whose creation failed before any name pointed at it."""
    isdir = ip.mode & IFMT == IFDIR
    free_area(m, ip)
    if ip.blocks:
        truncate(m, ip, 0, True)
    ip.mode = 0
    ip.nlink = 0
    m.iupdate(ip, sync=True)
    m.alloc.free_inode(ip.ino, isdir)
    m.freed_inos.add(ip.ino)


def _enter(m: FfsMount, dip: Inode, name: bytes, ip: Inode) -> None:
    if name in dir_index(m, dip).offsets:
        raise OSError(errno.EEXIST, "entry exists")
    direnter(m, dip, name, ip.ino, _dtype(ip.mode), _root(dip))
    modified(dip)
    m.mark_dirty(dip)


def _counted_enter(m: FfsMount, counted: Inode, dip: Inode, name: bytes, ip: Inode) -> None:
    """Add ``name`` → ``ip`` to ``dip`` after raising ``counted``'s link count on disk (a link
    count goes up before the name that needs it appears; fsck lowers a count left too high),
    and lower it again if the name cannot be added."""
    counted.nlink += 1
    m.iupdate(counted, sync=True)
    try:
        _enter(m, dip, name, ip)
    except BaseException:
        counted.nlink -= 1
        m.iupdate(counted, sync=True)
        raise


def _make(m: FfsMount, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int,
          body: bytes | None = None, rdev: int = 0) -> int:
    _writable(m)
    dip = _ip(dvp)
    if name in dir_index(m, dip).offsets:
        raise OSError(errno.EEXIST, "entry exists")
    ip = new_inode(m, dip, mode, uid, gid)
    try:
        ip.nlink = 1
        kind = mode & IFMT
        if kind in (IFCHR, IFBLK):
            v = rdev & 0xFFFFFFFF if not m.fs.ufs2 else rdev & 0xFFFFFFFFFFFFFFFF
            ip.db[0] = v - (1 << 32) if not m.fs.ufs2 and v >= 1 << 31 else (
                v - (1 << 64) if v >= 1 << 63 else v)
        elif kind == IFLNK and body is not None:
            if len(body) < m.fs.fs_maxsymlinklen:
                m.codec.set_shortlink(ip, body)
                ip.size = len(body)
            else:
                from p2k.fs.ffs.ffs_balloc import write_range  # the allocator: only a write loads it
                write_range(m, ip, 0, body, _root(dip))
        if kind != IFLNK:
            inherit_acl(m, dip, ip)  # ffs_vnops: the parent's default ACL, if any
        m.iupdate(ip, sync=True)  # the inode is on disk before a name points to it
        _enter(m, dip, name, ip)
    except BaseException:
        _undo_inode(m, ip)
        raise
    return ip.ino


# ---- creation ------------------------------------------------------------------------------------
def ufs_create(m: FfsMount, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int,
               rdev: int = 0) -> int:
    if mode & IFMT == 0:
        mode |= IFREG
    return _make(m, dvp, name, mode, uid, gid, rdev=rdev)


def ufs_symlink(m: FfsMount, dvp: Vnode, name: bytes, target: bytes, mode: int, uid: int,
                gid: int) -> int:
    return _make(m, dvp, name, IFLNK | (mode & 0o7777), uid, gid, body=bytes(target))


def ufs_mkdir(m: FfsMount, dvp: Vnode, name: bytes, mode: int, uid: int, gid: int) -> int:
    _writable(m)
    dip = _ip(dvp)
    if name in dir_index(m, dip).offsets:
        raise OSError(errno.EEXIST, "entry exists")
    if dip.nlink >= LINK_MAX:
        raise OSError(errno.EMLINK, "too many links")
    ip = new_inode(m, dip, IFDIR | (mode & 0o7777), uid, gid)
    try:
        ip.nlink = 2
        from p2k.fs.ffs.ffs_balloc import write_range  # the allocator: only a write loads it
        write_range(m, ip, 0, dir_template(m.fs.endian, ip.ino, dip.ino), _root(dip))
        inherit_acl(m, dip, ip)
        m.iupdate(ip, sync=True)
    except BaseException:
        _undo_inode(m, ip)
        raise
    try:
        _counted_enter(m, dip, dip, name, ip)  # the new ".." counts before the entry exists
    except BaseException:
        _undo_inode(m, ip)
        raise
    return ip.ino


def ufs_link(m: FfsMount, dvp: Vnode, name: bytes, vp: Vnode) -> None:
    _writable(m)
    dip, ip = _ip(dvp), _ip(vp)
    if ip.nlink >= LINK_MAX:
        raise OSError(errno.EMLINK, "too many links")
    if name in dir_index(m, dip).offsets:
        raise OSError(errno.EEXIST, "entry exists")
    changed(ip)
    _counted_enter(m, ip, dip, name, ip)


# ---- removal -------------------------------------------------------------------------------------
def ufs_remove(m: FfsMount, dvp: Vnode, name: bytes, vp: Vnode) -> None:
    _writable(m)
    dip, ip = _ip(dvp), _ip(vp)
    dirremove(m, dip, name)
    modified(dip)
    m.mark_dirty(dip)
    ip.nlink -= 1
    changed(ip)
    m.mark_dirty(ip)


def ufs_rmdir(m: FfsMount, dvp: Vnode, name: bytes, vp: Vnode) -> None:
    _writable(m)
    dip, ip = _ip(dvp), _ip(vp)
    dirremove(m, dip, name)
    dip.nlink -= 1
    modified(dip)
    m.mark_dirty(dip)
    ip.nlink = 0
    changed(ip)
    truncate(m, ip, 0, True)
    m.dirindex.pop(ip.ino, None)
    ip.dircache = {}
    m.mark_dirty(ip)



def ufs_rename(m: FfsMount, fdvp: Vnode, fname: bytes, fvp: Vnode, tdvp: Vnode, tname: bytes,
               tvp: Vnode | None) -> None:
    _writable(m)
    fdip, tdip, ip = _ip(fdvp), _ip(tdvp), _ip(fvp)
    isdir = ip.mode & IFMT == IFDIR
    newparent = fdip.ino != tdip.ino
    if isdir and newparent and tvp is None and tdip.nlink >= LINK_MAX:
        raise OSError(errno.EMLINK, "too many links")
    ip.nlink += 1  # counted twice while both names may exist on disk
    changed(ip)
    m.iupdate(ip, sync=True)
    try:
        if tvp is not None:
            tip = _ip(tvp)
            dirrewrite(m, tdip, tname, ip.ino, _dtype(ip.mode))
            if tip.mode & IFMT == IFDIR:
                tip.nlink = 0
                if not (isdir and newparent):
                    tdip.nlink -= 1  # the replaced directory's ".." is gone
                truncate(m, tip, 0, True)
                m.dirindex.pop(tip.ino, None)
                tip.dircache = {}
            else:
                tip.nlink -= 1
            changed(tip)
            m.mark_dirty(tip)
            modified(tdip)
            m.mark_dirty(tdip)
        else:
            if isdir and newparent:
                tdip.nlink += 1
                m.iupdate(tdip, sync=True)
            try:
                _enter(m, tdip, tname, ip)
            except BaseException:
                if isdir and newparent:
                    tdip.nlink -= 1
                    m.iupdate(tdip, sync=True)
                raise
    except BaseException:
        ip.nlink -= 1
        m.iupdate(ip, sync=True)
        raise
    dirremove(m, fdip, fname)
    ip.nlink -= 1
    if isdir and newparent:
        dirrewrite(m, ip, b"..", tdip.ino, _dtype(IFDIR))
        fdip.nlink -= 1
    modified(fdip)
    m.mark_dirty(fdip)
    changed(ip)
    m.mark_dirty(ip)


# ---- changing attributes -------------------------------------------------------------------------
def ufs_setattr(m: FfsMount, vp: Vnode, sa: SetAttr) -> None:
    _writable(m)
    ip = _ip(vp)
    if sa.size is not None:
        kind = ip.mode & IFMT
        if kind == IFDIR:
            raise OSError(errno.EISDIR, "is a directory")
        if kind != IFREG:
            raise OSError(errno.EINVAL, "not a regular file")
        if sa.size > m.maxfilesize:
            raise OSError(errno.EFBIG, "file too large")
        if sa.size != ip.size:
            truncate(m, ip, sa.size, _root(ip))
            modified(ip)
    apply_owner_mode(ip, sa)
    set_times(ip, a=sa.atime_ns, m=sa.mtime_ns, b=sa.birthtime_ns if m.fs.ufs2 else None)
    changed(ip)
    if sa.ctime_ns is not None:
        set_times(ip, c=sa.ctime_ns)
    m.codec.clamp_times(ip)
    m.mark_dirty(ip)
