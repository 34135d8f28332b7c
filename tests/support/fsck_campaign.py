"""The hostile-image campaign for fsck and the kernel: damage an image, repair it, check the repair.

A *base* is a small healthy image (NetBSD ``makefs`` or ``p2k newfs`` + p2k's write path; UFS1 and
UFS2; both byte orders; a two-cylinder-group and a one-group layout) surveyed once: where its
metadata lives (superblock, every cg header field, inodes, directory entries, indirect blocks)
and, for every regular file, its inode number, contents hash and *footprint* — the byte ranges of
its own inode and blocks and of each directory on its path. A *case* is a seeded list of byte
patches: random byte edits in metadata, or one targeted field set to a hostile value.

``run_case`` then asserts what issue 14 promises, under a timer:

- ``fsck -y`` ends (any exit code; a file system without a findable superblock may stay broken),
  then ``fsck -fn`` is clean (exit 0, no question asked) whenever the first run could check;
- nothing but ``OSError`` escapes, nothing is written outside the image (its size is unchanged and
  every write lands inside the device window);
- every file whose footprint the damage did not touch still has its contents — read by inode
  number through dissect.ffs (an independent reader) on little-endian images and through p2k's
  own mount otherwise — unless fsck *named* that inode (a duplicate claim made by a damaged
  neighbour condemns both owners, as fsck_ffs does);
- the repaired image mounts and walks without a non-OSError exception.

Everything runs in-process (no CLI), so a few hundred cases fit in CI and 100,000 in a long run.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import stat
import struct
import subprocess
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from damage import Hang, deadline
from ffs_corrupt_gen import Img, make_small_tree
from ffs_work import copy_tree_into

from p2k.fs.ffs.cg import CG_FIELDS
from p2k.fs.ffs.fs import SB_FIELDS, UFS_NDADDR, cgsblock, cgtod

RSS_LIMIT = 256 << 20


def _status_kib(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def reset_peak_rss() -> int:
    """Start measuring a new peak: the high-water mark drops to the current RSS (Linux's
    ``clear_refs`` 5), so a case is judged by what it used itself, not by what earlier tests in
    the same pytest process left behind. Returns that starting RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS") << 10


def peak_rss_since_reset() -> int:
    return _status_kib("VmHWM") << 10
TIMEOUT_S = 30
INTERESTING = (0, 1, 2, 3, 4, 7, 8, 12, 0x7F, 0x80, 0xFF, 0x100, 0x1FF, 0x200, 0x1000, 0x2000,
               0xFFFF, 0x10000, 1 << 30, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


class CaseFailure(AssertionError):
    pass


def _offsets(fields: tuple[tuple[str, str], ...]) -> list[tuple[str, int, int]]:
    """(name, byte offset, width) of each scalar of a field list; arrays give one entry each."""
    out = []
    off = 0
    for name, fmt in fields:
        count = int(fmt[:-1]) if fmt[:-1].isdigit() else 1
        code = fmt[-1]
        if code == "s":
            out.append((name, off, min(count, 8)))
            off += count
            continue
        w = struct.calcsize("<" + code)
        for i in range(count):
            out.append((name if count == 1 else f"{name}[{i}]", off + i * w, w))
        off += w * count
    return out


SB_OFFSETS = _offsets(SB_FIELDS)
CG_OFFSETS = _offsets(CG_FIELDS)
DIRENT_FIELDS = (("d_ino", 0, 4), ("d_reclen", 4, 2), ("d_type", 6, 1), ("d_namlen", 7, 1), ("d_name", 8, 1))


@dataclass
class FileInfo:
    path: str
    ino: int
    digest: str
    footprint: list[tuple[int, int]]  # byte ranges [start, end)


@dataclass
class Base:
    name: str
    raw: bytes
    endian: str
    regions: dict[str, list[tuple[int, int]]]  # kind -> [(offset, length)]
    fields: list[tuple[str, int, int]]  # (description, offset, width) of targeted fields
    files: list[FileInfo] = field(default_factory=list)


def _inode_fields(img: Img) -> list[tuple[str, int, int]]:
    from p2k.fs.ffs.dinode import UFS1_FIELDS, UFS2_FIELDS
    return _offsets(UFS2_FIELDS if img.fs.ufs2 else UFS1_FIELDS)


def _blocks(img: Img, ino: int) -> tuple[list[int], list[int]]:
    """(data fragment addresses, indirect block addresses) of a file, in logical order."""
    ip = img.inode(ino)
    fs = img.fs
    fmt = img.e + ("q" if fs.ufs2 else "i") * fs.fs_nindir
    data = [a for a in ip.db if a]
    ind: list[int] = []

    def walk(addr: int, level: int) -> None:
        ind.append(addr)
        for a in struct.unpack(fmt, img.pread(addr * fs.fs_fsize, fs.fs_bsize)):
            if a and level:
                walk(a, level - 1)
            elif a:
                data.append(a)

    for level, addr in enumerate(ip.ib):
        if addr:
            walk(addr, level)
    return data, ind


def survey(path: Path, name: str) -> Base:
    """Find the metadata and every file's footprint in a healthy image (read with the generator's
    own plain-file codecs, not with the driver under test)."""
    img = Img(path)
    try:
        fs = img.fs
        f, b = fs.fs_fsize, fs.fs_bsize
        regions: dict[str, list[tuple[int, int]]] = {
            "superblock": [(fs.loc, 1376)],
            "cg": [(cgtod(fs, c) * f, fs.fs_cgsize) for c in range(fs.fs_ncg)],
            "inode": [], "directory": [], "indirect": [],
        }
        last_copy = cgsblock(fs, fs.fs_ncg - 1) * f  # the copy fsck compares the primary with
        regions["superblock"].append((last_copy, 1376))
        fields: list[tuple[str, int, int]] = [(f"sb.{n}", fs.loc + o, w) for n, o, w in SB_OFFSETS]
        fields += [(f"sbcopy.{n}", last_copy + o, w) for n, o, w in SB_OFFSETS]
        for c in range(fs.fs_ncg):
            fields += [(f"cg{c}.{n}", cgtod(fs, c) * f + o, w) for n, o, w in CG_OFFSETS]
        ifields = _inode_fields(img)
        files: list[FileInfo] = []
        isize = img.codec.size

        def visit(ino: int, rel: str, ancestors: list[tuple[int, int]]) -> None:
            ioff = img.ioff(ino)
            regions["inode"].append((ioff, isize))
            fields.extend((f"ino{ino}.{n}", ioff + o, w) for n, o, w in ifields)
            ip = img.inode(ino)
            own = [(ioff, ioff + isize)]
            data, ind = _blocks(img, ino)
            kind = ip.mode & 0o170000
            if kind == 0o040000:
                for a in data[:UFS_NDADDR]:
                    regions["directory"].append((a * f, min(b, ip.size)))
                    own.append((a * f, a * f + b))
                for off, eino, _reclen, _t, nm in img.entries(ino):
                    fields.extend((f"dirent {rel}/{nm.decode(errors='replace')}.{n}", off + o, w)
                                  for n, o, w in DIRENT_FIELDS)
                    if nm not in (b".", b".."):
                        visit(eino, f"{rel}/{nm.decode(errors='replace')}".lstrip("/"), ancestors + own)
                return
            for a in ind:
                regions["indirect"].append((a * f, b))
                fields.extend((f"indirect of {rel}[{i}]", a * f + i * (8 if fs.ufs2 else 4), 8 if fs.ufs2 else 4)
                              for i in range(0, 16))
            own += [(a * f, a * f + b) for a in data + ind]
            if kind == 0o100000:
                content = b"".join(img.pread(a * f, b) for a in data)[:ip.size]
                files.append(FileInfo(rel, ino, hashlib.sha256(content).hexdigest(), ancestors + own))

        visit(2, "", [])
        return Base(name, path.read_bytes(), fs.endian, regions, fields, files)
    finally:
        img.close()


# ---- making the bases ------------------------------------------------------------------------------
def _makefs(img: Path, tree: Path, version: int, endian: str, size: str | None) -> None:
    cmd = ["makefs", "-t", "ffs", "-B", endian, "-o", f"version={version},bsize=4096,fsize=512,density=8192"]
    cmd += ["-s", size] if size else ["-b", "50%", "-f", "50%"]  # makefs's own size: one cg
    subprocess.run([*cmd, str(img), str(tree)], check=True, capture_output=True)


def _newfs_populated(img: Path, tree: Path, version: int, endian: str) -> None:
    from p2k.cli.main import main

    with open(img, "wb") as fh:
        fh.truncate(8 << 20)
    with redirect_stdout(io.StringIO()):
        assert main(["newfs", "-O", str(version), "-B", endian, "-b", "4096", "-f", "512", str(img)]) == 0
    copy_tree_into(img, tree)


BASE_NAMES = tuple(f"{maker}-ufs{v}-{e}" for maker in ("makefs", "makefs1cg", "newfs")
                   for v in (1, 2) for e in ("le", "be")) + ("makefsbig-ufs1-be", "makefsbig-ufs2-le")


def _big_tree(root: Path) -> Path:
    """The small tree plus a file with double-indirect blocks (4 KiB blocks: past 12 + 1024
    blocks on UFS1) and a directory of several blocks."""
    make_small_tree(root)
    (root / "dind").write_bytes(random.Random(7).randbytes((12 + 1024 + 40) * 4096))
    (root / "many").mkdir()
    for i in range(300):
        (root / "many" / f"entry-with-a-longer-name-{i:04d}").write_bytes(bytes([i & 0xFF]) * (i % 7))
    return root


def make_bases(workdir: Path, names: tuple[str, ...] = BASE_NAMES) -> dict[str, Base]:
    tree = workdir / "tree"
    if not tree.exists():
        make_small_tree(tree)
    out = {}
    for name in names:
        maker, ver, endian = name.split("-")
        version = int(ver[3:])
        img = workdir / f"{name}.img"
        if maker == "newfs":
            _newfs_populated(img, tree, version, endian)
        elif maker == "makefsbig":
            big = workdir / "bigtree"
            if not big.exists():
                _big_tree(big)
            _makefs(img, big, version, endian, "16m")
        else:
            _makefs(img, tree, version, endian, "8m" if maker == "makefs" else None)
        out[name] = survey(img, name)
    return out


# ---- damage -------------------------------------------------------------------------------------
Patch = tuple[int, bytes]


def random_case(base: Base, rng: random.Random) -> tuple[str, list[Patch]]:
    """Either random byte edits in one kind of metadata, or one field set to a hostile value."""
    e = base.endian
    roll = rng.random()
    if roll < 0.05:
        kind = rng.choice([k for k, v in base.regions.items() if v])
        start, length = rng.choice(base.regions[kind])
        fill = rng.choice((bytes(length), b"\xff" * length, rng.randbytes(length)))
        return f"whole {kind} block at {start} smashed", [(start, fill)]
    if roll < 0.15:
        picks = rng.sample(base.fields, 3)
        patches = [(off, rng.getrandbits(8 * w).to_bytes(w, "little")) for _d, off, w in picks]
        return "fields " + ", ".join(d for d, _o, _w in picks) + " randomised", patches
    if roll < 0.45:
        kind = rng.choice([k for k, v in base.regions.items() if v])
        patches = []
        for _ in range(rng.choice((1, 1, 2, 4, 16))):
            start, length = rng.choice(base.regions[kind])
            off = start + rng.randrange(length)
            patches.append((off, bytes([base.raw[off] ^ rng.randrange(1, 256)])))
        return f"random bytes in {kind}: {[p[0] for p in patches]}", patches
    desc, off, width = rng.choice(base.fields)
    old = int.from_bytes(base.raw[off:off + width], "little" if e == "<" else "big")
    how = rng.random()
    if how < 0.5:
        val = rng.choice(INTERESTING)
    elif how < 0.75:
        val = old + rng.choice((-2, -1, 1, 2, 8, -8, 512, 4096))
    else:
        val = rng.getrandbits(8 * width)
    val %= 1 << (8 * width)
    return f"{desc} {old:#x} -> {val:#x}", [(off, val.to_bytes(width, "little" if e == "<" else "big"))]


# ---- running one case ---------------------------------------------------------------------------
@dataclass
class Outcome:
    first: int  # exit code of fsck -y
    second: int | None  # of fsck -fn (None: the first could not check)
    named: set[int]
    out: str


def run_fsck(path: Path, mode: str, force: bool = True) -> tuple[int, Any, bool]:
    """fsck in-process (no CLI): (exit code, reporter, image modified)."""
    import p2k
    from p2k.fs.ffs.fsck import FsckIO, Options, Reporter, checkfilesys
    from p2k.fs.ffs.fsck.report import FSCK_EXIT_CHECK_FAILED

    k = p2k.Kernel(env={})
    try:
        dev = k.etfs_register("/dev/dk", str(path), p2k.ETFS_BLK, readonly=mode == "n")
        fio = FsckIO(dev, mode == "n")
        size = dev.size
        write = fio.write

        def bounded(off: int, data: bytes | bytearray) -> None:
            if off < 0 or off + len(data) > size:
                raise CaseFailure(f"fsck wrote {len(data)} bytes at {off}, outside the {size}-byte image")
            write(off, data)
        fio.write = bounded  # type: ignore[method-assign]
        rep = Reporter("img", mode, out=io.StringIO(), progress=False)
        try:
            code, _ = checkfilesys(fio, rep, Options(mode=mode, force=force))
        except OSError as e:
            rep.say(f"CANNOT READ: {e}")
            code = FSCK_EXIT_CHECK_FAILED
        return code, rep, fio.modified
    finally:
        k.halt(sync=False)


def reachable_digests(path: Path, want: set[int]) -> dict[int, str]:
    """ino -> sha256 of the files of ``want`` reachable from the root through p2k's mount (others
    are only looked up: a damaged size can make a file terabytes long); only OSError may come out
    of the kernel."""
    import p2k
    k = p2k.Kernel(env={})
    out: dict[int, str] = {}
    # No base file is sparse, so none holds more bytes than the image: a wanted file whose inode
    # the damage hit may now claim terabytes, and reading those holes is no test of anything.
    limit = path.stat().st_size
    try:
        k.etfs_register("/dev/dk", str(path), p2k.ETFS_BLK, readonly=True)
        k.sys.mkdir("/mnt", 0o755)
        try:
            k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        except OSError:
            return out
        seen: set[int] = set()
        stack = [b"/mnt"]
        while stack:
            p = stack.pop()
            try:
                st = k.sys.lstat(p)
                if stat.S_ISDIR(st.st_mode):
                    if st.st_ino not in seen:
                        seen.add(st.st_ino)
                        stack.extend(p + b"/" + n for n in k.sys.listdir(p))
                elif stat.S_ISREG(st.st_mode) and st.st_ino in want and st.st_ino not in out:
                    out[st.st_ino] = _digest(k, p, limit)
            except OSError:
                continue
    finally:
        k.halt(sync=False)
    return out


def _dissect_digest(path: Path, ino: int) -> str | None:
    from dissect.ffs import FFS
    with open(path, "rb") as fh:
        try:
            return hashlib.sha256(FFS(fh).inode(ino).open().read()).hexdigest()
        except Exception:  # noqa: BLE001 - an independent reader's own complaint, reported by the caller
            return None


def _digest(k: Any, path: bytes, limit: int) -> str:
    """sha256 of the file's bytes, or "oversized" once it has given more than ``limit``."""
    fd = k.sys.open(path, os.O_RDONLY)
    try:
        h = hashlib.sha256()
        total = 0
        while chunk := k.sys.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:
                return "oversized"
            h.update(chunk)
        return h.hexdigest()
    finally:
        k.sys.close(fd)


def kernel_on_damaged(path: Path, files: list[FileInfo], write: bool) -> None:
    """What a user does with a damaged image before fsck: walk and read it all (read-only), or
    (``write``) remove a file and write a new one. Only OSError may come out of the kernel; a
    write must not make the image worse, which the fsck run after it checks."""
    import p2k
    if not write:
        reachable_digests(path, {fi.ino for fi in files})
        return
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(path), p2k.ETFS_BLK)
        k.sys.mkdir("/mnt", 0o755)
        try:
            k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
        except OSError:
            return
        for op in (lambda: k.sys.unlink("/mnt/" + files[len(files) // 2].path),
                   lambda: k.sys.unlink("/mnt/" + files[-1].path),
                   lambda: _write_new(k)):
            try:
                op()
            except OSError:
                pass
    finally:
        try:
            k.halt()
        except OSError:
            pass


def _write_new(k: Any) -> None:
    fd = k.sys.open("/mnt/new-after-damage", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        k.sys.write(fd, b"n" * 20000)
    finally:
        k.sys.close(fd)


def run_case(base: Base, patches: list[Patch], work: Path, *, readers: bool = True,
             kernel: str = "") -> Outcome:
    """Apply ``patches`` to a copy of ``base`` and check every promise (CaseFailure if one fails).
    ``kernel`` "read" or "write": first let the kernel loose on the damaged image (then, after a
    write, the contents check is skipped: a wrong free map lets a write land on any block)."""
    start_rss = reset_peak_rss()
    data = bytearray(base.raw)
    for off, b in patches:
        data[off:off + len(b)] = b
    work.write_bytes(data)
    hit = sorted(off for off, _ in patches)
    with deadline(TIMEOUT_S):
        if kernel:
            kernel_on_damaged(work, base.files, kernel == "write")
            readers = readers and kernel != "write"
        code1, rep1, _ = run_fsck(work, "y")
        if code1 == 8 and not rep1.findings and "BAD SUPER BLOCK" not in "\n".join(rep1.lines):
            raise CaseFailure("fsck -y failed without saying why:\n" + "\n".join(rep1.lines[-5:]))
        if os.path.getsize(work) != len(data):
            raise CaseFailure("fsck changed the size of the image")
        out = "\n".join(rep1.lines)
        named = {int(f["ino"]) for f in rep1.findings if isinstance(f.get("ino"), int)}
        if code1 == 8 and "SEARCH FOR ALTERNATE SUPER-BLOCK FAILED" in out:
            return Outcome(code1, None, named, out)  # nothing to check with: the image stays as it is
        code2, rep2, modified = run_fsck(work, "n")
        out2 = "\n".join(rep2.lines)
        if code2 != 0 or modified or any("question" in f for f in rep2.findings):
            raise CaseFailure(f"fsck -y exit {code1} then -fn exit {code2}:\n{out2[-3000:]}\n"
                              f"--- -y said:\n{out[-3000:]}")
        if readers:
            _check_files(base, work, hit, named, out)
    grown = peak_rss_since_reset() - start_rss
    if grown > RSS_LIMIT:
        raise CaseFailure(f"the case grew the process by {grown >> 20} MiB at its peak")
    return Outcome(code1, code2, named, out)


def _check_files(base: Base, work: Path, hit: list[int], named: set[int], out: str) -> None:
    intact = [fi for fi in base.files
              if fi.ino not in named and not any(s <= h < e for h in hit for s, e in fi.footprint)]
    reach = reachable_digests(work, {fi.ino for fi in intact})
    for fi in intact:
        if base.endian == "<":
            got = _dissect_digest(work, fi.ino)
            if got != fi.digest:
                raise CaseFailure(f"{fi.path} (I={fi.ino}) undamaged and not named by fsck, but dissect.ffs "
                                  f"reads {'nothing' if got is None else 'other contents'}\n{out[-3000:]}")
        if reach.get(fi.ino) != fi.digest:
            raise CaseFailure(f"{fi.path} (I={fi.ino}) undamaged and not named by fsck, but p2k finds "
                              f"{'no such file' if fi.ino not in reach else 'other contents'}\n{out[-3000:]}")


def campaign(bases: dict[str, Base], n: int, seed: int, work: Path, *, readers: bool = True,
             stop_after: int = 20) -> list[str]:
    """``n`` cases spread over the bases; the failures' descriptions (at most ``stop_after``)."""
    names = sorted(bases)
    failures = []
    for i in range(n):
        base = bases[names[i % len(names)]]
        rng = random.Random(f"{seed}:{i}")
        what, patches = random_case(base, rng)
        kernel = rng.choice(("", "", "read", "write"))
        what += f" (kernel {kernel} first)" if kernel else ""
        try:
            run_case(base, patches, work, readers=readers, kernel=kernel)
        except (CaseFailure, Hang) as e:
            failures.append(f"case {seed}:{i} {base.name}: {what}\n{e}")
        except Exception as e:  # noqa: BLE001 - a traceback is a finding, kept with its case
            import traceback
            failures.append(f"case {seed}:{i} {base.name}: {what}\nTRACEBACK {type(e).__name__}: {e}\n"
                            + traceback.format_exc()[-2500:])
        if len(failures) >= stop_after:
            break
    return failures
