"""FUSE's wire format (Linux ``include/uapi/linux/fuse.h``, protocol 7.31), declared once.

The direct transport (``devfuse.py``) reads requests from /dev/fuse and writes replies with these
records' precompiled ``struct``s; nothing else spells an offset of the protocol. FUSE messages are
in the host's byte order. Times are declared signed: the kernel reads them into ``time64_t``, so
a file dated before 1970 travels as the negative number it is.
"""

from __future__ import annotations

import sys

from p2k.ondisk import I64, U16, U32, U64, Annotated, Fmt, Record

E = "<" if sys.byteorder == "little" else ">"
"""The byte order of every FUSE message: the host's."""

KERNEL_MAJOR, KERNEL_MINOR = 7, 31

# opcodes
LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK = 1, 2, 3, 4, 5, 6
MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN, READ, WRITE, STATFS = 8, 9, 10, 11, 12, 13, 14, 15, 16, 17
RELEASE, FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, FLUSH = 18, 20, 21, 22, 23, 24, 25
INIT, OPENDIR, READDIR, RELEASEDIR, FSYNCDIR, ACCESS, CREATE, INTERRUPT = 26, 27, 28, 29, 30, 34, 35, 36
GETLK, SETLK, SETLKW, DESTROY, IOCTL, POLL = 31, 32, 33, 38, 39, 40
BATCH_FORGET, FALLOCATE, READDIRPLUS, RENAME2, LSEEK, COPY_FILE_RANGE = 42, 43, 44, 45, 46, 47

# INIT flags: what libfuse 3 asks for by default (and pyfuse3 got), so both transports behave alike
ASYNC_READ, ATOMIC_O_TRUNC, BIG_WRITES = 1 << 0, 1 << 3, 1 << 5
AUTO_INVAL_DATA, DO_READDIRPLUS, ASYNC_DIO, MAX_PAGES = 1 << 12, 1 << 13, 1 << 15, 1 << 22
NO_OPEN_SUPPORT = 1 << 17  # offered by the kernel: an ENOSYS to OPEN means "never send OPEN or RELEASE"

# SETATTR valid bits
FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE, FATTR_ATIME, FATTR_MTIME = 1, 2, 4, 8, 16, 32
FATTR_FH, FATTR_ATIME_NOW, FATTR_MTIME_NOW = 64, 128, 256

FOPEN_KEEP_CACHE = 1 << 1
FSYNC_FDATASYNC = 1
XATTR_CREATE, XATTR_REPLACE = 1, 2


class InHeader(Record):
    len: U32
    opcode: U32
    unique: U64
    nodeid: U64
    uid: U32
    gid: U32
    pid: U32
    total_extlen: U16
    padding: U16


class OutHeader(Record):
    len: U32
    error: Annotated[int, Fmt("i")]
    unique: U64


class InitIn(Record):
    major: U32
    minor: U32
    max_readahead: U32
    flags: U32


class InitOut(Record):
    major: U32
    minor: U32
    max_readahead: U32
    flags: U32
    max_background: U16
    congestion_threshold: U16
    max_write: U32
    time_gran: U32
    max_pages: U16
    map_alignment: U16
    flags2: U32
    unused: Annotated[list[int], Fmt("7I")]


class Attr(Record):
    ino: U64
    size: U64
    blocks: U64
    atime: I64
    mtime: I64
    ctime: I64
    atimensec: U32
    mtimensec: U32
    ctimensec: U32
    mode: U32
    nlink: U32
    uid: U32
    gid: U32
    rdev: U32
    blksize: U32
    flags: U32


class EntryOut(Record):
    nodeid: U64
    generation: U64
    entry_valid: U64
    attr_valid: U64
    entry_valid_nsec: U32
    attr_valid_nsec: U32


class AttrOut(Record):
    attr_valid: U64
    attr_valid_nsec: U32
    dummy: U32


class GetattrIn(Record):
    getattr_flags: U32
    dummy: U32
    fh: U64


class SetattrIn(Record):
    valid: U32
    padding: U32
    fh: U64
    size: U64
    lock_owner: U64
    atime: I64
    mtime: I64
    ctime: I64
    atimensec: U32
    mtimensec: U32
    ctimensec: U32
    mode: U32
    unused4: U32
    uid: U32
    gid: U32
    unused5: U32


class MknodIn(Record):
    mode: U32
    rdev: U32
    umask: U32
    padding: U32


class MkdirIn(Record):
    mode: U32
    umask: U32


class RenameIn(Record):
    newdir: U64


class Rename2In(Record):
    newdir: U64
    flags: U32
    padding: U32


class LinkIn(Record):
    oldnodeid: U64


class OpenIn(Record):
    flags: U32
    open_flags: U32


class CreateIn(Record):
    flags: U32
    mode: U32
    umask: U32
    open_flags: U32


class OpenOut(Record):
    fh: U64
    open_flags: U32
    padding: U32


class ReleaseIn(Record):
    fh: U64
    flags: U32
    release_flags: U32
    lock_owner: U64


class ReadIn(Record):
    fh: U64
    offset: U64
    size: U32
    read_flags: U32
    lock_owner: U64
    flags: U32
    padding: U32


class WriteIn(Record):
    fh: U64
    offset: U64
    size: U32
    write_flags: U32
    lock_owner: U64
    flags: U32
    padding: U32


class WriteOut(Record):
    size: U32
    padding: U32


class FsyncIn(Record):
    fh: U64
    fsync_flags: U32
    padding: U32


class Kstatfs(Record):
    blocks: U64
    bfree: U64
    bavail: U64
    files: U64
    ffree: U64
    bsize: U32
    namelen: U32
    frsize: U32
    padding: U32
    spare: Annotated[list[int], Fmt("6I")]


class AccessIn(Record):
    mask: U32
    padding: U32


class GetxattrIn(Record):
    size: U32
    padding: U32


class GetxattrOut(Record):
    size: U32
    padding: U32


class SetxattrIn(Record):
    size: U32
    flags: U32


class ForgetIn(Record):
    nlookup: U64


class BatchForgetIn(Record):
    count: U32
    dummy: U32


class ForgetOne(Record):
    nodeid: U64
    nlookup: U64


class Dirent(Record):
    """``fuse_dirent``'s fixed part; the name follows, padded to 8 bytes."""

    ino: U64
    off: U64
    namelen: U32
    type: U32


__all__ = ["E", "Attr", "AttrOut", "Dirent", "EntryOut", "InHeader", "InitIn", "InitOut", "OutHeader"]
