"""``p2k crashtest``: power-cut a seeded workload at every k-th write and check fsck repairs it.

Exit 0 only when every cut point passes; the last line is a summary. A failure prints the workload,
seed and cut point that reproduce it: ``p2k crashtest --workload W --seed S --only-cut C``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from p2k.cli.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("crashtest", help="cut power during seeded workloads, fsck, verify what survived")
    p.add_argument("--workload", default="all", help="workload: all, or one by name (all)")
    p.add_argument("--cuts", type=int, default=50, help="cut points per workload and seed (50)")
    p.add_argument("--seed", type=int, default=1, help="first seed (1)")
    p.add_argument("--seeds", type=int, default=1, help="how many seeds, from --seed on (1)")
    p.add_argument("--only-cut", type=int, default=None, help="run just this cut point (to reproduce)")
    p.add_argument("-O", dest="version", type=int, choices=[1, 2], default=2, help="FFS version of a fresh image")
    p.add_argument("-k", "--keep", action="store_true", help="keep the images of failed cut points")
    p.add_argument("-o", dest="options", default="", help="mount options: 'log' journals metadata "
                   "(WAPBL) and checks that replay, not fsck, makes each survivor consistent")
    p.add_argument("image", nargs="?",
                   help="start from a copy of this image (IMAGE or IMAGE:NAME) instead of a fresh one")
    p.set_defaults(func=cmd_crashtest)


def cut_points(total: int, cuts: int) -> list[int]:
    """``cuts`` write numbers spread evenly over 1..total (every write when there are fewer)."""
    if total <= 0:
        return []
    if cuts >= total:
        return list(range(1, total + 1))
    step = total / cuts
    return sorted({max(1, round(step * (i + 1))) for i in range(cuts)})


def copy_out(image: str, dest: Path) -> None:
    """The file system ``IMAGE[:NAME]`` designates (a partition, inside any container), copied to
    ``dest``: the cut points then work on a plain image and the original is never written."""
    from p2k.cli.imagearg import resolve_image

    target = resolve_image(image, True, prog="p2k crashtest")
    try:
        with open(dest, "wb") as out:
            for off in range(0, target.size, 1 << 20):
                out.write(target.backend.pread(target.offset + off, min(1 << 20, target.size - off)))
            out.truncate(target.size)
    finally:
        target.backend.close()


def cmd_crashtest(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    # Imported here, not at the top: ``p2k`` imports every command module to build its parser.
    from p2k.crash.runner import count_writes, make_image, run_cut
    from p2k.crash.workloads import WORKLOADS

    if args.workload != "all" and args.workload not in WORKLOADS:
        raise UsageError(f"argument --workload: invalid choice: '{args.workload}' "
                         f"(choose from 'all', {', '.join(repr(w) for w in WORKLOADS)})")

    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    tmp = Path(tempfile.mkdtemp(prefix="p2k-crash-"))
    total = passed = 0
    failed: list[str] = []
    try:
        template = tmp / "template.img"
        log = "log" in args.options.split(",")
        if args.image:
            copy_out(args.image, template)
        else:
            make_image(template, args.version, log=log)
        for name in names:
            for seed in range(args.seed, args.seed + args.seeds):
                writes = count_writes(template, tmp, name, seed, log)
                points = [args.only_cut] if args.only_cut else cut_points(writes, args.cuts)
                ok_here = 0
                for cut in points:
                    res = run_cut(template, tmp, name, seed, cut, log=log)
                    total += 1
                    if res.ok:
                        passed += 1
                        ok_here += 1
                    else:
                        line = (f"FAIL workload={name} seed={seed} cut={cut}: " + "; ".join(res.problems[:3])
                                + f"  (reproduce: p2k crashtest{' -o log' if log else ''} --workload {name} "
                                f"--seed {seed} --only-cut {cut})")
                        failed.append(line)
                        print(line, file=sys.stderr)
                        if args.keep:
                            kept = Path.cwd() / f"crash-{name}-{seed}-{cut}.img"
                            shutil.copyfile(tmp / f"{name}-{cut}.img", kept)
                print(f"{name} seed={seed}: {writes} writes, {ok_here}/{len(points)} cut points passed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"crashtest: {total} cut points, {passed} passed, {len(failed)} failed")
    return 0 if not failed and total else 1
