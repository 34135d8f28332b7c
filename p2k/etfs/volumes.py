"""The volumes of a disk image — MBR or GPT partitions, BSD labels in slices or bare — with names.

``scan_volumes`` reads whatever map the image holds and lists its volumes as byte windows with the
names every command accepts after ``IMAGE:`` (``p1``…``pN`` as Linux and FreeBSD number MBR and GPT
entries, logical MBR partitions from ``p5``; ``s1a``… for a BSD label inside MBR slice 1, as FreeBSD
names them, with the bare letter ``a`` as an alias when the image holds one label; ``p1a``… for a
bsdlabel inside a GPT partition of FreeBSD's ``freebsd`` type; ``a``…``p`` for a label at the start
of the image). It never raises on a damaged or hostile map: what cannot be
trusted — entries past the end of the image, entries overlapping an earlier one, labels with a bad
checksum, a loop of extended partitions — is left out with a warning in ``VolumeMap.warnings``.

Which map: a valid GPT (primary or backup header) wins; else an MBR that looks like a partition
table (with the labels of its BSD slices); else a bare disklabel, found the way rump_server's
``disklabel=`` finds it. As NetBSD does, a label at the start of the disk is also looked for when
an MBR has no labelled slice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from p2k.etfs.bsdlabel import FLAVOR_BY_PTYPE, FSTYPE_NAMES, read_slice_label
from p2k.etfs.disklabel import LABEL_SCAN_BYTES, scan_disklabel
from p2k.etfs.gpt import read_gpt
from p2k.etfs.mbr import is_protective, looks_like_mbr, read_mbr, type_name

SECTOR = 512
GPT_FREEBSD_LABEL = "516e7cb4-6ecf-11d6-8ff8-00022d09712b"
"""FreeBSD's GPT type for a partition holding a bsdlabel (``ada0p1a``...)."""
RAW_LETTERS = {"netbsd": "cd", "freebsd": "c", "openbsd": "c", "disklabel": "cd"}
"""Label partitions that stand for the whole slice or disk: listed, never chosen by default, and
exempt from the overlap check (they contain the others by design)."""


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    start: int  # bytes from the start of the image
    size: int  # bytes
    type: str
    scheme: str  # mbr, gpt, netbsd, freebsd, openbsd, disklabel
    container: bool = False  # an extended partition or a raw label partition
    aliases: tuple[str, ...] = ()

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class VolumeMap:
    scheme: str  # "gpt", "mbr", "disklabel" or "none"
    sector_size: int
    disk_size: int
    volumes: list[Volume] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def find(self, name: str) -> Volume | None:
        for v in self.volumes:
            if name == v.name or name in v.aliases:
                return v
        return None

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.volumes]


def _padded(read: Callable[[int, int], bytes], disk_size: int) -> Callable[[int, int], bytes]:
    """A reader that never reads past the image and never comes back short inside it."""
    def pread(off: int, n: int) -> bytes:
        if off < 0 or off >= disk_size or n <= 0:
            return b""
        n = min(n, disk_size - off)
        data = read(off, n)
        return data + bytes(n - len(data)) if len(data) < n else data[:n]
    return pread


def scan_volumes(read: Callable[[int, int], bytes], disk_size: int) -> VolumeMap:
    """Every volume of the image read by ``read(offset, n)``; see the module docstring."""
    read = _padded(read, disk_size)
    vm = VolumeMap("none", SECTOR, disk_size)
    warn = vm.warnings.append
    table = read_gpt(read, disk_size, warn)
    if table is not None:
        vm.scheme, vm.sector_size = "gpt", table.secsize
        labelled: list[Volume] = []
        for p in table.partitions:
            vm.volumes.append(Volume(f"p{p.number}", p.start * table.secsize, (p.end - p.start + 1) * table.secsize,
                                     p.type_name, "gpt"))
            if p.type_guid == GPT_FREEBSD_LABEL and table.secsize == SECTOR and p.start * SECTOR < disk_size:
                labelled += _label_volumes(read, 0xA5, p.start, f"p{p.number}", warn)
        _add_labelled(vm, labelled)
    else:
        first = read(0, SECTOR)
        if looks_like_mbr(first) and not is_protective(first):
            vm.scheme = "mbr"
            _mbr_volumes(read, vm)
        if not any(v.scheme != "mbr" for v in vm.volumes):
            _bare_label(read, vm)
    _sanitize(vm)
    return vm


def _label_volumes(read: Callable[[int, int], bytes], ptype: int, start: int, prefix: str,
                   warn: Callable[[str], None]) -> list[Volume]:
    """The partitions of the BSD label in the slice at sector ``start``, named ``prefix`` + letter."""
    label = read_slice_label(read, ptype, start, SECTOR, warn)
    if label is None:
        return []
    return [Volume(f"{prefix}{p.letter}", p.start * SECTOR, p.size * SECTOR, p.type_name, label.flavor,
                   container=p.letter in RAW_LETTERS[label.flavor]) for p in label.partitions]


def _mbr_volumes(read: Callable[[int, int], bytes], vm: VolumeMap) -> None:
    labelled: list[Volume] = []
    for e in read_mbr(read, SECTOR, vm.warnings.append):
        vm.volumes.append(Volume(f"p{e.number}", e.start * SECTOR, e.size * SECTOR, type_name(e.ptype), "mbr",
                                 container=e.extended, aliases=(f"s{e.number}",)))
        if not e.extended and e.ptype in FLAVOR_BY_PTYPE and e.start * SECTOR < vm.disk_size:
            labelled += _label_volumes(read, e.ptype, e.start, f"s{e.number}", vm.warnings.append)
    _add_labelled(vm, labelled)


def _add_labelled(vm: VolumeMap, labelled: list[Volume]) -> None:
    """Label partitions after the table's own; the bare letter is an alias when there is one label."""
    letters_unique = len({v.name[:-1] for v in labelled}) == 1
    for v in labelled:
        aliases = (v.name[-1],) if letters_unique else ()
        vm.volumes.append(Volume(v.name, v.start, v.size, v.type, v.scheme, v.container, aliases))


def _bare_label(read: Callable[[int, int], bytes], vm: VolumeMap) -> None:
    label = scan_disklabel(read(0, LABEL_SCAN_BYTES))
    if label is None:
        return
    if vm.scheme == "none":
        vm.scheme = "disklabel"
    for i, p in enumerate(label.partitions):
        if p.p_size:
            letter = chr(ord("a") + i)
            vm.volumes.append(Volume(letter, p.p_offset * SECTOR, p.p_size * SECTOR,
                                     FSTYPE_NAMES.get(p.p_fstype, f"fstype {p.p_fstype}"), "disklabel",
                                     container=letter in RAW_LETTERS["disklabel"]))


def _sanitize(vm: VolumeMap) -> None:
    """Drop, with a warning, volumes past the end of the image or overlapping an earlier sibling."""
    kept: list[Volume] = []
    for v in vm.volumes:
        if v.size <= 0:
            vm.warnings.append(f"{v.name}: empty; skipped")
            continue
        if v.end > vm.disk_size:
            vm.warnings.append(f"{v.name}: bytes {v.start}..{v.end} reach past the end of the image "
                               f"({vm.disk_size} bytes); skipped")
            continue
        clash = next((k for k in kept if _siblings(k, v) and k.start < v.end and v.start < k.end), None)
        if clash is not None:
            vm.warnings.append(f"{v.name}: overlaps {clash.name}; skipped")
            continue
        kept.append(v)
    vm.volumes = kept


def _siblings(a: Volume, b: Volume) -> bool:
    """Whether two volumes must not overlap: both are real partitions of the same table (an
    extended partition holds its logicals, a slice its label, a raw label partition the rest)."""
    if a.container or b.container:
        return False
    if a.scheme in ("mbr", "gpt") or b.scheme in ("mbr", "gpt"):
        return a.scheme == b.scheme
    return a.scheme == b.scheme and a.name[:-1] == b.name[:-1]
