"""etfs: host files as devices in a kernel's namespace (rump_etfs(3), rump_server(1) ``-d``).

A driver never sees a host path: it asks the registry for a key such as ``/dev/dk`` and does its
I/O through the ``Device``, whose window on the host file is enforced below it, in ``p2k.hyper``.
Partition maps (``p2k.etfs.volumes``: MBR, GPT, BSD labels) name the windows of a whole disk, and
``p2k.etfs.resolve`` turns ``IMAGE[:NAME]`` into the backend and window to register.

The device and the registry, which every kernel has, are imported with the package; drivespecs,
disklabels and fault injection when first named (``p2k.lazy``): a command reading a plain image
needs none of them.
"""


from p2k.etfs.device import ETFS_BLK, ETFS_CHR, ETFS_REG, Device
from p2k.etfs.registry import EtfsRegistry, normalize_key
from p2k.lazy import exports

_WHERE = {
    "DiskLabel": "p2k.etfs.disklabel",
    "build_disklabel": "p2k.etfs.disklabel",
    "scan_disklabel": "p2k.etfs.disklabel",
    "DriveSpec": "p2k.etfs.drivespec",
    "DriveSpecError": "p2k.etfs.drivespec",
    "parse_drivespec": "p2k.etfs.drivespec",
    "parse_size": "p2k.etfs.drivespec",
    "FaultInjector": "p2k.etfs.fault",
    "FaultPlan": "p2k.etfs.fault",
    "Target": "p2k.etfs.resolve",
    "split_image_arg": "p2k.etfs.resolve",
    # not ``resolve``: the submodule of that name shadows it once imported; use p2k.etfs.resolve.resolve
}

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.etfs.disklabel import DiskLabel as DiskLabel
    from p2k.etfs.disklabel import build_disklabel as build_disklabel
    from p2k.etfs.disklabel import scan_disklabel as scan_disklabel
    from p2k.etfs.drivespec import DriveSpec as DriveSpec
    from p2k.etfs.drivespec import DriveSpecError as DriveSpecError
    from p2k.etfs.drivespec import parse_drivespec as parse_drivespec
    from p2k.etfs.drivespec import parse_size as parse_size
    from p2k.etfs.fault import FaultInjector as FaultInjector
    from p2k.etfs.fault import FaultPlan as FaultPlan
    from p2k.etfs.resolve import Target as Target
    from p2k.etfs.resolve import split_image_arg as split_image_arg

__getattr__ = exports(__name__, _WHERE)

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
    "scan_disklabel",
    "split_image_arg",
]
