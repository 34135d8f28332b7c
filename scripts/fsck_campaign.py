#!/usr/bin/env python3
"""Run the hostile-image fsck campaign without pytest: ``scripts/fsck_campaign.py N [SEED]``.

Builds the base images (makefs and p2k newfs, UFS1/UFS2, both byte orders, one and two cylinder
groups) in a temporary directory, runs N seeded cases (see tests/fsck_campaign.py for what each
asserts) and prints every failing case with its seed, so ``--case SEED:I`` reproduces it.
Exit status 1 when any case failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

import fsck_campaign as fc  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, nargs="?", default=300)
    ap.add_argument("seed", type=int, nargs="?", default=1)
    ap.add_argument("--case", help="rerun one case, SEED:I, and print fsck's output")
    ap.add_argument("--base", action="append", help="only these bases (e.g. makefs-ufs1-le)")
    ap.add_argument("--no-readers", action="store_true", help="skip the contents check")
    ap.add_argument("--stop-after", type=int, default=50)
    args = ap.parse_args()
    names = tuple(args.base) if args.base else fc.BASE_NAMES
    with tempfile.TemporaryDirectory(prefix="p2k-fsck-campaign-") as d:
        bases = fc.make_bases(Path(d), names)
        work = Path(d) / "work.img"
        if args.case:
            seed, i = (int(x) for x in args.case.split(":"))
            base = bases[sorted(bases)[i % len(bases)]]
            rng = random.Random(f"{seed}:{i}")
            what, patches = fc.random_case(base, rng)
            kernel = rng.choice(("", "", "read", "write"))
            print(base.name, what, f"(kernel {kernel} first)" if kernel else "")
            out = fc.run_case(base, patches, work, readers=not args.no_readers, kernel=kernel)
            print(out.out)
            return 0
        t = time.monotonic()
        failures = fc.campaign(bases, args.n, args.seed, work, readers=not args.no_readers,
                               stop_after=args.stop_after)
        for f in failures:
            print("=" * 78)
            print(f)
        el = time.monotonic() - t
        print(f"{args.n} cases on {len(bases)} bases in {el:.0f} s: {len(failures)} failures"
              + (" (stopped early)" if len(failures) >= args.stop_after else ""))
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
