"""etfs: host files as devices in a kernel's namespace (rump_etfs(3), rump_server(1) ``-d``).

A driver never sees a host path: it asks the registry for a key such as ``/dev/dk`` and does its
I/O through the ``Device``, whose window on the host file is enforced below it, in ``p2k.hyper``.
Partition maps (``p2k.etfs.volumes``: MBR, GPT, BSD labels) name the windows of a whole disk, and
``resolve`` turns ``IMAGE[:NAME]`` into the backend and window to register.
"""

from p2k.etfs.device import ETFS_BLK, ETFS_CHR, ETFS_REG, Device
from p2k.etfs.disklabel import DiskLabel, build_disklabel, scan_disklabel
from p2k.etfs.drivespec import DriveSpec, DriveSpecError, parse_drivespec, parse_size
from p2k.etfs.fault import FaultInjector, FaultPlan
from p2k.etfs.registry import EtfsRegistry, normalize_key
from p2k.etfs.resolve import Target, resolve, split_image_arg

__all__ = [
    "ETFS_BLK",
    "ETFS_CHR",
    "ETFS_REG",
    "Device",
    "DiskLabel",
    "DriveSpec",
    "DriveSpecError",
    "EtfsRegistry",
    "FaultInjector",
    "FaultPlan",
    "Target",
    "build_disklabel",
    "normalize_key",
    "parse_drivespec",
    "parse_size",
    "resolve",
    "scan_disklabel",
    "split_image_arg",
]
