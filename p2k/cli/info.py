"""``p2k info IMAGE``: what p2k sees in an image, on one screen.

The container (qcow2, VMDK, ...), the partition map (MBR, GPT, BSD labels), and for each file system its FFS
version, byte order, size and geometry, flags, clean state and journal. Everything is read
through a read-only etfs device, so ``info`` never changes an image; ``--json`` gives the same
facts to scripts. Containers and maps are read by ``p2k.etfs.resolve``, as every command reads them.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing's, without importing it (p2k.lazy)
if TYPE_CHECKING:  # argparse too: p2k.cli.quickparse reads this command's ordinary command lines
    import argparse
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("info", help="one-screen summary of an image: container, partitions, file systems",
                       description="Show what p2k sees in an image, without changing it.")
    p.add_argument("--json", dest="as_json", action="store_true", help="machine-readable output")
    p.add_argument("image", help="image file or fsspec URL (IMAGE, or IMAGE:a for one partition)")
    p.set_defaults(func=cmd_info)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def fs_facts(pread: Any, size: int) -> dict[str, Any]:
    """The superblock's answer to 'what is this file system', or why there is none."""
    from p2k.fs.ffs.fs import (
        FS_DOQUOTA2,
        FS_DOSOFTDEP,
        FS_DOWAPBL,
        FS_ISCLEAN,
        FS_MULTILABEL,
        FS_NEEDSFSCK,
        FS_POSIX1EACLS,
        FS_SUJ,
        FS_TRIM,
        FS_UNCLEAN,
        FS_WASCLEAN,
        find_superblock,
    )

    flag_names = {FS_UNCLEAN: "unclean", FS_DOSOFTDEP: "softdep", FS_NEEDSFSCK: "needsfsck", FS_SUJ: "suj",
                  FS_POSIX1EACLS: "posix1eacls", FS_MULTILABEL: "multilabel", FS_DOWAPBL: "wapbl",
                  FS_DOQUOTA2: "quota2", FS_TRIM: "trim"}
    try:
        fs = find_superblock(pread, size)
    except OSError as e:
        return {"type": None, "error": e.strerror or str(e)}
    flags = [name for bit, name in flag_names.items() if fs.fs_flags & bit]
    # A read-write mount shifts FS_ISCLEAN to FS_WASCLEAN on disk; only ISCLEAN means clean now.
    clean = bool(fs.fs_clean & FS_ISCLEAN)
    return {
        "type": "ffs", "version": 2 if fs.ufs2 else 1,
        "format": "FFSv2ea" if fs.ea else ("UFS2" if fs.ufs2 else "UFS1"),
        "byteorder": "little" if fs.endian == "<" else "big", "size": fs.fs_size * fs.fs_fsize,
        "bsize": fs.fs_bsize, "fsize": fs.fs_fsize, "ncg": fs.fs_ncg, "inodes": fs.fs_ncg * fs.fs_ipg,
        "superblock": fs.loc, "flags": flags, "clean": clean and not fs.fs_flags & (FS_UNCLEAN | FS_NEEDSFSCK),
        "was_clean": bool(fs.fs_clean & FS_WASCLEAN),
        "journal": journal_facts(fs, pread, size),
        "last_mounted": fs.fs_fsmnt.split(b"\0", 1)[0].decode("utf-8", "replace"),
        "volname": fs.fs_volname.split(b"\0", 1)[0].decode("utf-8", "replace"),
        "written": fs.fs_time,
    }


def journal_facts(fs: Any, pread: Any, size: int) -> dict[str, Any] | None:
    """The journal the superblock describes: NetBSD's WAPBL log (where, how big, what a mount or
    fsck would replay) or FreeBSD's SU+J; None when there is none."""
    from p2k.fs.ffs.fs import FS_SUJ
    from p2k.fs.ffs.wapbl import JOURNALLOC_IN_FILESYSTEM, LogError, find_log, has_log, log_state

    if not has_log(fs):
        if fs.fs_flags & FS_SUJ:
            return {"kind": "su+j"}
        return _idle_log(fs, size)
    out: dict[str, Any] = {"kind": "wapbl", "active": True}
    try:
        loc = find_log(fs, size)
        out.update(offset=loc.offset, size=loc.size,
                   where=f"in inode {loc.ino}" if loc.location == JOURNALLOC_IN_FILESYSTEM else "after the file system")
        rp = log_state(fs, pread, size, fs.fs_ncg * fs.fs_ipg)
        out.update(transactions=rp.transactions, blocks=len(rp.blocks))
    except LogError as e:
        out["error"] = str(e)
    return out


def _idle_log(fs: Any, size: int) -> dict[str, Any] | None:
    """A journal the superblock still places but no mount is using: NetBSD clears FS_DOWAPBL at a
    clean unmount and keeps the place (an in-file-system journal's blocks stay allocated to its
    inode) for the next ``-o log`` mount."""
    from p2k.fs.ffs.wapbl import JOURNALLOC_IN_FILESYSTEM, UFS_WAPBL_VERSION, LogError, find_log

    if fs.fs_journal_version != UFS_WAPBL_VERSION:
        return None
    try:
        loc = find_log(fs, size)
    except LogError:
        return None
    where = f"in inode {loc.ino}" if loc.location == JOURNALLOC_IN_FILESYSTEM else "after the file system"
    return {"kind": "wapbl", "active": False, "offset": loc.offset, "size": loc.size, "where": where}


def _journal_line(j: dict[str, Any] | None) -> str:
    if j is None:
        return "none"
    if j["kind"] == "su+j":
        return "FreeBSD soft updates journal (SU+J)"
    where = f", {_human(j['size'])} {j['where']}" if "size" in j else ""
    if not j.get("active", True):
        return f"WAPBL log{where}: not in use (kept for the next -o log mount)"
    if "error" in j:
        return f"WAPBL log{where}: cannot be replayed ({j['error']})"
    if not j["transactions"]:
        return f"WAPBL log{where}: empty"
    return f"WAPBL log{where}: {j['transactions']} transaction(s), {j['blocks']} block(s) to replay"


def gather(image: str) -> dict[str, Any]:
    # Imported here, not at the top: ``p2k`` imports every command module to build its parser.

    from p2k.cli.imagearg import open_image_source
    from p2k.etfs.volumes import scan_volumes

    backend, path, only = open_image_source(image, True)
    try:
        size = backend.size()

        def window(start: int, length: int) -> Any:
            def pread(off: int, n: int) -> bytes:
                data = backend.pread(start + off, max(0, min(n, length - off)))
                return data + bytes(n - len(data))
            return pread

        vm = scan_volumes(backend.pread, size)
        facts: dict[str, Any] = {"image": path, "container": backend.kind, "size": size, "partitions": None,
                                 "filesystems": [], "warnings": list(vm.warnings)}
        whole = fs_facts(window(0, size), size)
        if not vm.volumes or (whole["type"] and only is None):
            facts["filesystems"].append({"name": None, **whole})
            if not vm.volumes:
                return facts
        facts["partitions"] = {"scheme": vm.scheme, "sector_size": vm.sector_size, "entries": []}
        for v in vm.volumes:
            if only and only not in (v.name, *v.aliases):
                continue
            facts["partitions"]["entries"].append({"name": v.name, "offset": v.start, "size": v.size,
                                                   "fstype": v.type})
            if v.container:
                continue
            f = fs_facts(window(v.start, v.size), v.size)
            if f["type"] or only:
                facts["filesystems"].append({"name": v.name, **f})
        return facts
    finally:
        backend.close()


def render(facts: dict[str, Any]) -> list[str]:
    kind = facts["container"]
    out = [f"image       {facts['image']}  ({_human(facts['size'])}, {facts['size']} bytes)",
           f"container   {'none (raw image)' if kind == 'raw' else kind + ' (read-only)'}"]
    parts = facts["partitions"]
    if parts is None:
        out.append("partitions  none found (the image is read as one file system)")
    else:
        out.append(f"partitions  {parts['scheme']} map, {parts['sector_size']}-byte sectors")
        for e in parts["entries"]:
            out.append(f"  {e['name']:<5} {e['fstype']:<20} offset {e['offset']:>12}  size {_human(e['size']):>10}")
    for w in facts["warnings"]:
        out.append(f"warning     {w}")
    for f in facts["filesystems"]:
        where = f"{facts['image']}:{f['name']}" if f["name"] else facts["image"]
        if f["type"] is None:
            out.append(f"{where}: no FFS file system found ({f['error']})")
            continue
        written = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(f["written"]))
        out += [
            f"file system {where}",
            f"  format    FFSv{f['version']} ({f['format']}), {f['byteorder']}-endian, superblock at {f['superblock']}",
            f"  size      {_human(f['size'])}  block {f['bsize']}, fragment {f['fsize']}, "
            f"{f['ncg']} cylinder groups, {f['inodes']} inodes",
            f"  state     {_state(f)}; flags {', '.join(f['flags']) or 'none'}",
            f"  journal   {_journal_line(f['journal'])}",
            f"  mounted   last on {f['last_mounted'] or '-'}, written {written}"
            + (f", volume {f['volname']}" if f["volname"] else ""),
        ]
    if not facts["filesystems"]:
        out.append("no FFS file system found in the image or its partitions")
    return out


def _state(f: dict[str, Any]) -> str:
    if f["clean"]:
        return "clean"
    if f["was_clean"]:
        return "NOT CLEAN: mounted read-write now, or not unmounted since (was clean before)"
    return "NOT CLEAN (run p2k fsck)"


def cmd_info(args: argparse.Namespace) -> int:
    import json

    facts = gather(args.image)
    if args.as_json:
        sys.stdout.write(json.dumps(facts, indent=1) + "\n")
    else:
        sys.stdout.write("\n".join(render(facts)) + "\n")
    found = facts["filesystems"]
    return 0 if found and all(f["type"] for f in found) else 1
