"""p2k: NetBSD's rump anykernel file-system stack in Python.

The public surface is this short list; everything else is internal and may change.

The names are resolved on first use (PEP 562): ``p2k --version`` and every command that does not
need a kernel must not pay for importing one, the way a C tool pays nothing for code it never calls.
"""

from __future__ import annotations

from p2k.lazy import exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (and re): ``p2k --version``

__version__ = "0.1.0"

_WHERE = {
    "ETFS_BLK": "p2k.etfs",
    "ETFS_CHR": "p2k.etfs",
    "ETFS_REG": "p2k.etfs",
    "ParamError": "p2k.hyper",
    "ImageFS": "p2k.image",
    "ImagePath": "p2k.image",
    "open_image": "p2k.image",
    "Kernel": "p2k.kernel",
    "rump_init": "p2k.kernel",
    "MNT_ASYNC": "p2k.vfs.mount",
    "MNT_FORCE": "p2k.vfs.mount",
    "MNT_LOG": "p2k.vfs.mount",
    "MNT_NOATIME": "p2k.vfs.mount",
    "MNT_RDONLY": "p2k.vfs.mount",
    "MNT_SYNCHRONOUS": "p2k.vfs.mount",
    "RENAME_EXCHANGE": "p2k.vfs.vfs_syscalls",
    "RENAME_NOREPLACE": "p2k.vfs.vfs_syscalls",
    "UTIME_NOW": "p2k.vfs.vattr",
    "UTIME_OMIT": "p2k.vfs.vattr",
}

__all__ = sorted([*_WHERE, "__version__"])

if TYPE_CHECKING:
    from p2k.etfs import ETFS_BLK as ETFS_BLK
    from p2k.etfs import ETFS_CHR as ETFS_CHR
    from p2k.etfs import ETFS_REG as ETFS_REG
    from p2k.hyper import ParamError as ParamError
    from p2k.image import ImageFS as ImageFS
    from p2k.image import ImagePath as ImagePath
    from p2k.image import open_image as open_image
    from p2k.kernel import Kernel as Kernel
    from p2k.kernel import rump_init as rump_init
    from p2k.vfs.mount import MNT_ASYNC as MNT_ASYNC
    from p2k.vfs.mount import MNT_FORCE as MNT_FORCE
    from p2k.vfs.mount import MNT_LOG as MNT_LOG
    from p2k.vfs.mount import MNT_NOATIME as MNT_NOATIME
    from p2k.vfs.mount import MNT_RDONLY as MNT_RDONLY
    from p2k.vfs.mount import MNT_SYNCHRONOUS as MNT_SYNCHRONOUS
    from p2k.vfs.vattr import UTIME_NOW as UTIME_NOW
    from p2k.vfs.vattr import UTIME_OMIT as UTIME_OMIT
    from p2k.vfs.vfs_syscalls import RENAME_EXCHANGE as RENAME_EXCHANGE
    from p2k.vfs.vfs_syscalls import RENAME_NOREPLACE as RENAME_NOREPLACE


__getattr__ = exports(__name__, _WHERE)


def __dir__() -> list[str]:
    return __all__
