"""p2k: NetBSD's rump anykernel file-system stack in Python.

The public surface is this short list; everything else is internal and may change.
"""

from p2k.etfs import ETFS_BLK, ETFS_CHR, ETFS_REG
from p2k.hyper import ParamError
from p2k.kernel import Kernel, rump_init
from p2k.vfs.mount import MNT_ASYNC, MNT_FORCE, MNT_LOG, MNT_NOATIME, MNT_RDONLY, MNT_SYNCHRONOUS
from p2k.vfs.sys_path import RENAME_EXCHANGE, RENAME_NOREPLACE
from p2k.vfs.vattr import UTIME_NOW, UTIME_OMIT

__version__ = "0.1.0"

__all__ = [
    "ETFS_BLK",
    "ETFS_CHR",
    "ETFS_REG",
    "MNT_ASYNC",
    "MNT_FORCE",
    "MNT_LOG",
    "MNT_NOATIME",
    "MNT_RDONLY",
    "MNT_SYNCHRONOUS",
    "RENAME_EXCHANGE",
    "RENAME_NOREPLACE",
    "UTIME_NOW",
    "UTIME_OMIT",
    "Kernel",
    "ParamError",
    "__version__",
    "rump_init",
]
