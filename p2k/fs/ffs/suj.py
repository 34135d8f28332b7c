"""FreeBSD's soft-updates journal (SU+J) on a read-write p2k mount.

p2k does not do soft updates, so a read-write mount drops ``FS_DOSOFTDEP`` and ``FS_SUJ`` (as a
kernel without soft updates would have to). For the journal it then does what FreeBSD's
``tunefs -j disable`` does: ``fs_sujfree`` is zeroed and the journal file ``/.sujournal`` loses
the flags tunefs gave it (``SF_IMMUTABLE | SF_NOUNLINK | UF_NODUMP``), so that it is an ordinary
file again that the user may remove to reclaim the space — which FreeBSD's ``tunefs -j enable``
requires before it makes a new journal. The file's blocks are not touched.
"""

from __future__ import annotations

from p2k.fs.ffs.fs import UFS_ROOTINO
from p2k.fs.ffs.inode import IFMT, IFREG, Inode
from p2k.hints import cast

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount

SUJ_FILE = b".sujournal"
SF_IMMUTABLE = 0x00020000
SF_NOUNLINK = 0x00100000
UF_NODUMP = 0x00000001
SUJ_FLAGS = SF_IMMUTABLE | SF_NOUNLINK | UF_NODUMP


def release_sujournal(m: FfsMount) -> int:
    """Clear the journal file's flags (tunefs ``journal_clear``); its inode number, or 0."""
    m.fs.fs_sujfree = 0
    vc = m.kernel.vcache
    root = vc.vget(m, UFS_ROOTINO)
    try:
        ino = m.vop_lookup(root, SUJ_FILE)
    except OSError:
        return 0
    finally:
        vc.vrele(root)
    vp = vc.vget(m, ino)
    try:
        ip = cast(Inode, vp.data)
        if ip.mode & IFMT == IFREG and ip.flags & SUJ_FLAGS == SUJ_FLAGS:
            ip.flags = 0
            m.iupdate(ip)
            return ino
        return 0
    finally:
        vc.vrele(vp)
