"""Where the benches find NetBSD's own programs to compare with (issue 16's peers).

NetBSD's rump kernel and fs-utils are not part of p2k and nothing in this repository builds them:
whoever has them installed outside the repository points ``P2K_PEERS`` at the install prefix, whose
``bin/`` holds ``fsu_ls``, ``fsu_find``… and, for the creates peer, ``rump_creates``: a program
linking NetBSD's librump + librumpvfs + librumpfs_ffs whose contract is
``rump_creates IMAGE sync|async|log NFILES NDIRS FILESIZE [FSYNC_EVERY [seq|rr]]`` (files
``/mnt/dD/fI``, filling one directory after another, or round-robin) printing one line
``mount=S work=S unmount=S cpu=S`` (mount; mkdirs + creates + sync(2); unmount; process CPU).
Without ``P2K_PEERS`` the programs are looked up on PATH. A bench without its peer says so in one
line and keeps its other comparisons, so a missing peer never fails a run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def peer(name: str) -> str | None:
    """Path of the peer program NAME: under ``$P2K_PEERS/bin`` when that is set (and only there,
    so a stray copy on PATH cannot stand in for the build being measured), else on PATH."""
    base = os.environ.get("P2K_PEERS")
    if base:
        p = Path(base) / "bin" / name
        return str(p) if p.is_file() and os.access(p, os.X_OK) else None
    return shutil.which(name)


def missing(names: str) -> str:
    """One line saying where the peers were looked for."""
    where = f"$P2K_PEERS/bin ({os.environ['P2K_PEERS']}/bin)" if os.environ.get("P2K_PEERS") else "PATH"
    return f"NetBSD {names} not found in {where}; set P2K_PEERS to their install prefix (see bench/peers.py)"


def rump_creates(img: str, mode: str, nfiles: int, ndirs: int, size: int,
                 fsync_every: int = 0, order: str = "seq") -> dict[str, float] | None:
    """Run the NetBSD rump kernel creates peer on IMG; its four figures, or None without the peer."""
    exe = peer("rump_creates")
    if exe is None:
        return None
    out = subprocess.run([exe, img, mode, str(nfiles), str(ndirs), str(size), str(fsync_every), order],
                         capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("mount="))
    return {k: float(v) for k, v in (f.split("=") for f in line.split())}
