"""Shared helpers for the FFS write tests: random workloads through ``k.sys``, p2k's view of a tree,
and the two independent readers (The Sleuth Kit, dissect.ffs) turned into the same shape.

A workload keeps a model of what it did (path → kind and contents), so a test can compare three
views of one image: the model, p2k's own (after a remount), and an independent reader's.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import p2k

HAVE_TSK = shutil.which("fls") is not None and shutil.which("icat") is not None
HAVE_MAKEFS = shutil.which("makefs") is not None
TSK_TYPE = {"r": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK, "c": stat.S_IFCHR,
            "b": stat.S_IFBLK, "p": stat.S_IFIFO, "s": stat.S_IFSOCK}


def mount_rw(img: Path | str, *, memlimit: str | None = None, ro: bool = False) -> Any:
    k = p2k.Kernel(memlimit=memlimit, env={})
    k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK, readonly=ro)
    k.sys.mkdir("/mnt", 0o755)
    k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY if ro else 0, {"fspec": "/dev/dk"})
    return k


def newfs(img: Path, size: str = "32m", *extra: str) -> Path:
    from p2k.cli.main import main

    assert main(["newfs", "-V", "0", "-s", size, *extra, str(img)]) == 0
    return img


def _blob(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


class Workload:
    """Random create / write-at-offset / truncate / rename / link / unlink / mkdir / rmdir /
    symlink operations under ``/mnt``, with a model of the expected tree."""

    def __init__(self, k: Any, seed: int, maxsize: int = 300_000) -> None:
        self.k = k
        self.s = k.sys
        self.rng = random.Random(seed)
        self.maxsize = maxsize
        self.files: dict[str, bytearray] = {}  # path → contents (hard links share one bytearray)
        self.links: dict[str, bytes] = {}
        self.dirs: set[str] = {""}
        self.counter = 0

    def _name(self) -> str:
        self.counter += 1
        n = self.rng.choice([3, 8, 20, 60, 200])
        return f"n{self.counter}_" + "x" * self.rng.randrange(n)

    def _dir(self) -> str:
        return self.rng.choice(sorted(self.dirs))

    @staticmethod
    def _p(rel: str) -> str:
        return "/mnt/" + rel if rel else "/mnt"

    def _join(self, d: str, n: str) -> str:
        return f"{d}/{n}" if d else n

    def step(self) -> None:
        r = self.rng.random()
        s = self.s
        if r < 0.25 or not self.files:
            path = self._join(self._dir(), self._name())
            size = self.rng.choice([0, 1, 511, 1000, 4096, 9000, 70_000, self.rng.randrange(self.maxsize)])
            data = _blob(self.rng, size)
            fd = s.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            s.write(fd, data)
            s.close(fd)
            self.files[path] = bytearray(data)
        elif r < 0.45:
            path = self.rng.choice(sorted(self.files))
            buf = self.files[path]
            off = self.rng.choice([0, len(buf), self.rng.randrange(len(buf) + 1),
                                   len(buf) + self.rng.randrange(200_000)])
            data = _blob(self.rng, self.rng.choice([1, 100, 3000, 8192, 40_000]))
            fd = s.open(self._p(path), os.O_WRONLY)
            s.pwrite(fd, data, off)
            s.close(fd)
            if off > len(buf):
                buf.extend(bytes(off - len(buf)))
            buf[off:off + len(data)] = data
        elif r < 0.55:
            path = self.rng.choice(sorted(self.files))
            buf = self.files[path]
            n = self.rng.choice([0, len(buf) // 2, max(len(buf) - 1, 0), len(buf) + 5000,
                                 self.rng.randrange(self.maxsize)])
            s.truncate(self._p(path), n)
            if n < len(buf):
                del buf[n:]
            else:
                buf.extend(bytes(n - len(buf)))
        elif r < 0.63:
            path = self.rng.choice(sorted(self.files))
            new = self._join(self._dir(), self._name())
            s.link(self._p(path), self._p(new))
            self.files[new] = self.files[path]
        elif r < 0.73:
            path = self.rng.choice(sorted(self.files))
            s.unlink(self._p(path))
            del self.files[path]
        elif r < 0.81:
            d = self._join(self._dir(), self._name())
            s.mkdir(self._p(d), 0o755)
            self.dirs.add(d)
        elif r < 0.85:
            empty = [d for d in self.dirs if d and not any(
                p.startswith(d + "/") for p in [*self.files, *self.links, *self.dirs])]
            if empty:
                d = self.rng.choice(sorted(empty))
                s.rmdir(self._p(d))
                self.dirs.discard(d)
        elif r < 0.91:
            path = self._join(self._dir(), self._name())
            target = ("t/" * 300)[: self.rng.choice([1, 59, 60, 61, 119, 120, 121, 500])].encode()
            s.symlink(target, self._p(path).encode())
            self.links[path] = target
        else:
            self._rename()

    def _rename(self) -> None:
        s = self.s
        if self.rng.random() < 0.7 and self.files:
            src = self.rng.choice(sorted(self.files))
            if self.rng.random() < 0.3 and len(self.files) > 1:
                dst = self.rng.choice(sorted(self.files))
            else:
                dst = self._join(self._dir(), self._name())
            s.rename(self._p(src), self._p(dst))
            if src != dst and self.files[src] is not self.files.get(dst):
                self.files[dst] = self.files.pop(src)
            elif src != dst:
                # two names of one file: POSIX rename does nothing
                pass
        else:
            cands = [d for d in self.dirs if d]
            if not cands:
                return
            src = self.rng.choice(sorted(cands))
            parent = self.rng.choice(sorted(d for d in self.dirs if d != src and not d.startswith(src + "/")))
            dst = self._join(parent, self._name())
            s.rename(self._p(src), self._p(dst))

            def move(p: str) -> str:
                return dst + p[len(src):] if p == src or p.startswith(src + "/") else p

            self.dirs = {move(d) for d in self.dirs}
            self.files = {move(p): v for p, v in self.files.items()}
            self.links = {move(p): v for p, v in self.links.items()}

    def run(self, n: int) -> None:
        for _ in range(n):
            self.step()

    def expected(self) -> dict[str, tuple[int, str | bytes | None]]:
        out: dict[str, tuple[int, str | bytes | None]] = {d: (stat.S_IFDIR, None) for d in self.dirs}
        for p, b in self.files.items():
            out[p] = (stat.S_IFREG, hashlib.sha256(b).hexdigest())
        for p, t in self.links.items():
            out[p] = (stat.S_IFLNK, t)
        return out


def p2k_tree(k: Any, mnt: str = "/mnt") -> dict[str, dict[str, Any]]:
    """Path (relative, "" = root) → ino, mode, size, nlink, sha (files), link (symlinks)."""
    s = k.sys
    out: dict[str, dict[str, Any]] = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        path = mnt + ("/" + rel if rel else "")
        st = s.lstat(path)
        rec: dict[str, Any] = {"ino": st.st_ino, "mode": st.st_mode, "size": st.st_size, "nlink": st.st_nlink}
        if stat.S_ISREG(st.st_mode):
            fd = s.open(path, os.O_RDONLY)
            h = hashlib.sha256()
            while chunk := s.read(fd, 1 << 20):
                h.update(chunk)
            s.close(fd)
            rec["sha"] = h.hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            rec["link"] = s.readlink(path.encode())
        elif stat.S_ISDIR(st.st_mode):
            for name in s.listdir(path):
                stack.append(f"{rel}/{name}" if rel else name)
        out[rel] = rec
    return out


def check_model(tree: dict[str, dict[str, Any]], w: Workload) -> None:
    exp = w.expected()
    assert set(tree) - {"lost+found"} == set(exp)
    for p, (kind, val) in exp.items():
        rec = tree[p]
        assert stat.S_IFMT(rec["mode"]) == kind, p
        if kind == stat.S_IFREG:
            assert rec["sha"] == val, p
        elif kind == stat.S_IFLNK:
            assert rec["link"] == val, p


def check_tsk(img: Path, tree: dict[str, dict[str, Any]], max_icat: int = 40) -> None:
    """fls -r -p names every path with its type and inode; icat returns the same bytes."""
    fls = subprocess.run(["fls", "-r", "-p", str(img)], check=True, capture_output=True).stdout
    theirs: dict[str, tuple[int, int]] = {}
    for line in fls.decode("utf-8", "surrogateescape").splitlines():
        kind, _, rest = line.partition(" ")
        inode, _, path = rest.partition(":\t")
        if "$OrphanFiles" in path or inode.startswith("*"):
            continue
        theirs[path] = (TSK_TYPE[kind.split("/")[1]], int(inode.split("(")[0]))
    assert set(theirs) == set(tree) - {""}
    for path, (kind, ino) in theirs.items():
        assert (stat.S_IFMT(tree[path]["mode"]), tree[path]["ino"]) == (kind, ino), path
    done = 0
    msl = 120 if _is_ufs2(img) else 60
    for path, rec in sorted(tree.items()):
        if done >= max_icat:
            break
        if "sha" in rec or ("link" in rec and rec["size"] >= msl):
            data = subprocess.run(["icat", str(img), str(rec["ino"])], check=True, capture_output=True).stdout
            if "sha" in rec:
                assert hashlib.sha256(data).hexdigest() == rec["sha"], path
            else:
                assert data == rec["link"], path
            done += 1


def _is_ufs2(img: Path) -> bool:
    from p2k.fs.ffs.fs import find_superblock

    with open(img, "rb") as fh:
        def pread(off: int, n: int) -> bytes:
            fh.seek(off)
            return fh.read(n)

        return find_superblock(pread, os.path.getsize(img)).ufs2


def check_dissect(img: Path, tree: dict[str, dict[str, Any]]) -> None:
    """dissect.ffs (little-endian only) walks to the same inodes, modes, sizes and contents."""
    from dissect.ffs import FFS

    seen = set()
    with open(img, "rb") as fh:
        fs = FFS(fh)

        def visit(node: Any, path: str) -> None:
            rec = tree[path]
            seen.add(path)
            assert rec["ino"] == node.inum, path
            assert rec["mode"] == node.inode.di_mode, path
            assert rec["nlink"] == node.inode.di_nlink, path
            if "sha" in rec:
                assert rec["size"] == node.size, path
                assert hashlib.sha256(node.open().read()).hexdigest() == rec["sha"], path
            if "link" in rec:
                assert node.link.encode() == rec["link"], path
            if stat.S_ISDIR(node.inode.di_mode):
                for child in node.iterdir():
                    # dissect.ffs yields free slots (d_ino 0) as entries; FFS readers skip them
                    if child.name not in (".", "..") and child.inum != 0:
                        visit(child, f"{path}/{child.name}" if path else child.name)

        visit(fs.root, "")
    assert seen == set(tree)


def copy_tree_into(img: Path, tree: Path) -> None:
    """Copy a host ``tree`` into the FFS ``img`` through a p2k read-write mount (the kernel's write
    path, hard links and symlinks kept; an existing lost+found at the top is reused), then unmount
    cleanly."""
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
        links: dict[tuple[int, int], str] = {}
        for dirpath, dirnames, filenames in os.walk(tree):
            rel = os.path.relpath(dirpath, tree)
            base = "/mnt" if rel == "." else f"/mnt/{rel}"
            for d in dirnames:
                if not (rel == "." and d == "lost+found"):
                    k.sys.mkdir(f"{base}/{d}", 0o755)
            for f in filenames:
                src = os.path.join(dirpath, f)
                st = os.lstat(src)
                if stat.S_ISLNK(st.st_mode):
                    k.sys.symlink(os.readlink(src), f"{base}/{f}")
                elif (st.st_dev, st.st_ino) in links:
                    k.sys.link(links[(st.st_dev, st.st_ino)], f"{base}/{f}")
                else:
                    links[(st.st_dev, st.st_ino)] = f"{base}/{f}"
                    fd = k.sys.open(f"{base}/{f}", os.O_WRONLY | os.O_CREAT, 0o644)
                    k.sys.write(fd, Path(src).read_bytes())
                    k.sys.close(fd)
    finally:
        k.halt()
