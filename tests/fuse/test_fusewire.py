"""p2k/puffs/fusewire.py against the host's own <linux/fuse.h>, compiled: every declared record has
the size and field offsets of its C structure, every opcode and flag its C value."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from p2k.puffs import fusewire as w

HEADER = Path("/usr/include/linux/fuse.h")

pytestmark = pytest.mark.skipif(shutil.which("cc") is None or not HEADER.exists(),
                                reason="needs a C compiler and the kernel's uapi header <linux/fuse.h>")

# record → (C struct, size the C side gives, or None for sizeof): a record that covers only the
# part of a structure the protocol version in use sends says so with its own size expression.
RECORDS: dict[type[w.Record], tuple[str, str | None]] = {
    w.InHeader: ("fuse_in_header", None), w.OutHeader: ("fuse_out_header", None),
    w.InitIn: ("fuse_init_in", "offsetof(struct fuse_init_in, flags) + 4"),
    w.InitOut: ("fuse_init_out", None), w.Attr: ("fuse_attr", None),
    w.EntryOut: ("fuse_entry_out", "offsetof(struct fuse_entry_out, attr)"),
    w.AttrOut: ("fuse_attr_out", "offsetof(struct fuse_attr_out, attr)"),
    w.GetattrIn: ("fuse_getattr_in", None), w.SetattrIn: ("fuse_setattr_in", None),
    w.MknodIn: ("fuse_mknod_in", None), w.MkdirIn: ("fuse_mkdir_in", None),
    w.RenameIn: ("fuse_rename_in", None), w.Rename2In: ("fuse_rename2_in", None),
    w.LinkIn: ("fuse_link_in", None), w.OpenIn: ("fuse_open_in", None), w.CreateIn: ("fuse_create_in", None),
    w.OpenOut: ("fuse_open_out", None), w.ReleaseIn: ("fuse_release_in", None),
    w.ReadIn: ("fuse_read_in", None), w.WriteIn: ("fuse_write_in", None), w.WriteOut: ("fuse_write_out", None),
    w.FsyncIn: ("fuse_fsync_in", None), w.Kstatfs: ("fuse_kstatfs", None), w.AccessIn: ("fuse_access_in", None),
    w.GetxattrIn: ("fuse_getxattr_in", None), w.GetxattrOut: ("fuse_getxattr_out", None),
    w.SetxattrIn: ("fuse_setxattr_in", "FUSE_COMPAT_SETXATTR_IN_SIZE"),  # without FUSE_SETXATTR_EXT
    w.ForgetIn: ("fuse_forget_in", None), w.BatchForgetIn: ("fuse_batch_forget_in", None),
    w.ForgetOne: ("fuse_forget_one", None), w.Dirent: ("fuse_dirent", "offsetof(struct fuse_dirent, name)"),
}
# fields whose C name differs (or that the C side calls something else in newer headers)
SKIP_OFFSETS = {"InitOut.unused", "OpenOut.padding"}  # C: unused[7], an array; newer headers: backing_id
CONSTANTS = {name: getattr(w, name) for name in (
    "LOOKUP", "FORGET", "GETATTR", "SETATTR", "READLINK", "SYMLINK", "MKNOD", "MKDIR", "UNLINK", "RMDIR",
    "RENAME", "LINK", "OPEN", "READ", "WRITE", "STATFS", "RELEASE", "FSYNC", "SETXATTR", "GETXATTR",
    "LISTXATTR", "REMOVEXATTR", "FLUSH", "INIT", "OPENDIR", "READDIR", "RELEASEDIR", "FSYNCDIR", "ACCESS",
    "CREATE", "INTERRUPT", "DESTROY", "BATCH_FORGET", "READDIRPLUS", "RENAME2", "GETLK", "SETLK", "SETLKW",
    "IOCTL", "POLL", "FALLOCATE", "LSEEK", "COPY_FILE_RANGE", "ASYNC_READ", "ATOMIC_O_TRUNC", "BIG_WRITES",
    "AUTO_INVAL_DATA", "DO_READDIRPLUS", "ASYNC_DIO", "MAX_PAGES", "FOPEN_KEEP_CACHE", "FSYNC_FDATASYNC")}
C_NAMES = {"FOPEN_KEEP_CACHE": "FOPEN_KEEP_CACHE", "FSYNC_FDATASYNC": "FUSE_FSYNC_FDATASYNC"}
C_NAMES.update({f"FATTR_{n}": f"FATTR_{n}" for n in ("MODE", "UID", "GID", "SIZE", "ATIME", "MTIME", "FH",
                                                     "ATIME_NOW", "MTIME_NOW")})


def test_records_and_constants_match_the_kernel_header(tmp_path: Path) -> None:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/fuse.h>", "int main(void) {"]
    expect = []
    for rec, (cname, size) in RECORDS.items():
        lines.append(f'printf("%zu\\n", (size_t)({size or f"sizeof(struct {cname})"}));')
        expect.append((f"{rec.__name__}.SIZE", rec.SIZE))
        for field, off in rec.OFFSETS.items():
            if f"{rec.__name__}.{field}" not in SKIP_OFFSETS:
                lines.append(f'printf("%zu\\n", offsetof(struct {cname}, {field}));')
                expect.append((f"{rec.__name__}.{field}", off))
    for name, value in {**CONSTANTS, **{k: getattr(w, k) for k in C_NAMES if k.startswith("FATTR")}}.items():
        cname = C_NAMES.get(name) or f"FUSE_{name}"
        lines.append(f'printf("%llu\\n", (unsigned long long)({cname}));')
        expect.append((name, value))
    lines += ["return 0; }"]
    src, exe = tmp_path / "wire.c", tmp_path / "wire"
    src.write_text("\n".join(lines))
    subprocess.run(["cc", "-o", str(exe), str(src)], check=True, capture_output=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert len(got) == len(expect)
    wrong = [(what, ours, int(c)) for (what, ours), c in zip(expect, got, strict=True) if ours != int(c)]
    assert not wrong
