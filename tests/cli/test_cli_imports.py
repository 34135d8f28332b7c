"""Commands that only read or write an image never import the FUSE stack (pyfuse3, trio), and the
fs-utils commands on a plain FFS image import nothing they do not use (issue 16, start-up).

Importing the FUSE stack costs about 80 ms and 17 MiB, twice the whole start-up of ``p2k ls``; it
crept in once through ``p2k.puffs``'s package import when ``cp -p`` and ``stat`` began to use the
Linux extended-attribute names kept there. The smaller modules below were each made lazy for a
millisecond or more of every command's start-up; one eager import anywhere brings it back. Each
command runs in a fresh interpreter on a real image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")

PROBE = """
import builtins, sys
compiled = []
def counting_compile(*args, _compile=builtins.compile, **kwargs):
    where = sys._getframe(1).f_code.co_filename
    if not where.startswith("<frozen importlib"):  # the import system, for a module without a .pyc
        compiled.append(where)
    return _compile(*args, **kwargs)
builtins.compile = counting_compile
from p2k.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("MODULES", " ".join(sorted(sys.modules)), "COMPILED", *compiled, file=sys.stderr)
print("LOADED", sorted({m.split(".")[0] for m in sys.modules} & {"trio", "pyfuse3"}), file=sys.stderr)
"""

# What a plain raw FFS image (no container, no partition map, no log, no ACLs) never needs, with
# what each cost: stdlib modules that p2k code once imported at start-up, and p2k's own.
NOT_FOR_A_PLAIN_IMAGE = {
    "dataclasses": "with inspect, ast, dis, tokenize: 5 ms (p2k.slotted, p2k.ondisk say why)",
    "inspect": "vopguard tells generator VOPs by their code flags",
    "logging": "console messages import it on the first message (p2k.hyper.console)",
    "random": "fault injection only",
    "threading": "the kernel's locks are _thread's; the semaphore for server threads is made on demand",
    "shutil": "argparse asks it the terminal width (p2k.cli.main._columns)",
    "textwrap": "help pages only (p2k.cli.manual)",
    "p2k.cli.manual": "help pages only",
    "p2k.hyper.qcow2": "qcow2 images only",
    "p2k.etfs.fault": "drivespecs with fault options only",
    "p2k.etfs.disklabel": "partition maps and drivespecs only",
    "p2k.etfs.drivespec": "-d DRIVESPEC and IMAGE:@OFFSET windows only",
    "p2k.etfs.volumes": "images that are not themselves a file system",
    "p2k.vfs.acl": "mounts enforcing ACLs and the ACL syscalls only",
    "p2k.vfs.sysctl": "the sysctl syscalls only",
    "p2k.fs.ffs.wapbl": "a superblock with a log, or a read-write mount",
    "p2k.fs.ffs.ffs_wapbl": "read-write mounts",
    "p2k.fs.ffs.wapbl_log": "-o log mounts",
    "p2k.fs.ffs.ffs_alloc": "read-write mounts",
    "p2k.fs.ffs.ffs_balloc": "a write (the block allocator's front end)",
    "p2k.vfs.specfs": "a registered key opened by name (rump_etfs), not a mount's device",
    "argparse": "with gettext and locale: 4.5 ms, and 2 ms building the parser (p2k.cli.quickparse)",
    "gettext": "argparse's messages",
    "locale": "argparse's first message look-up",
}


def _small_image(tmp_path: Path) -> Path:
    """A 4 MiB image of /d/f made by NetBSD makefs."""
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_bytes(b"data\n")
    img = tmp_path / "fs.img"
    subprocess.run(["makefs", "-t", "ffs", "-s", "4m", str(img), str(tree)], check=True, capture_output=True)
    return img


def test_image_commands_leave_the_fuse_stack_alone(tmp_path: Path) -> None:
    img = _small_image(tmp_path)
    out = tmp_path / "out"
    for argv in (["ls", "-lR", str(img)], ["stat", str(img), "/d/f"], ["cp", "-p", str(img), ":/d/f", str(out)],
                 ["find", str(img)], ["cat", str(img), "/d/f"], ["du", str(img)], ["df", str(img)],
                 ["cp", str(img), str(out), ":/d/g"]):
        r = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
        assert "LOADED" in r.stderr, r.stderr
        loaded = r.stderr.rsplit("LOADED", 1)[1].strip()
        assert loaded == "[]", f"p2k {' '.join(argv[:1])} imported {loaded}"
    assert out.read_bytes() == b"data\n"


def _modules(argv: list[str]) -> tuple[set[str], list[str]]:
    """The modules a command run imports, and where it called ``compile()`` (the caller's file)."""
    r = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert "MODULES" in r.stderr, r.stderr
    modules, compiled = r.stderr.rsplit("MODULES", 1)[1].split("LOADED", 1)[0].split("COMPILED")
    return set(modules.split()), compiled.split()


def test_fsutils_on_a_plain_image_import_only_what_they_use(tmp_path: Path) -> None:
    img = _small_image(tmp_path)
    for argv in (["find", str(img), "/"], ["ls", str(img), "/"], ["ls", "-lR", str(img), "/"]):
        loaded, compiled = _modules(argv)
        assert "p2k.fs.ffs.ffs_vfsops" in loaded, "the probe did not mount the image"
        bad = {m: why for m, why in NOT_FOR_A_PLAIN_IMAGE.items() if m in loaded}
        assert not bad, f"p2k {argv[0]} imported {bad}"
        # The first compile() of a process sets up the ast node types (0.8 ms): generated code
        # goes through p2k.ondisk.define, and a NamedTuple on this path is p2k.hints' (typing's
        # compiles each annotation string of the class form; see p2k.vfs.vattr.Dirent).
        assert not compiled, f"p2k {argv[0]} called compile() from {compiled}"
    # the same modules are still there for the images that need them: a window names drivespec's
    # size parser, and a read-write mount the allocator and the journal code
    loaded, _ = _modules(["find", f"{img}:@0", "/"])
    assert "p2k.etfs.drivespec" in loaded
    loaded, _ = _modules(["mkdir", str(img), "/new"])
    assert {"p2k.fs.ffs.ffs_alloc", "p2k.fs.ffs.ffs_wapbl", "p2k.fs.ffs.ffs_balloc"} <= loaded


# What typing cost every command that mounts an image: typing itself ~1.5 ms, and re (with enum,
# re._parser, re._compiler: 2.5 ms), contextlib and warnings that it imports, about 5 ms of a 43 ms
# ``p2k find`` (p2k.hints says how p2k's modules do without). Each is blamed on p2k only if one of
# p2k's own modules reaches it through import statements, so that a module something else imported
# first (argparse, while the parser is argparse's) still counts when p2k imports it too.
NOT_AT_RUN_TIME = ("typing", "re", "enum", "contextlib", "warnings")
# What the collections package and its company cost the same commands, in CPU time over a bare
# ``python -c pass``: functools ~2 ms, collections ~2 ms (overlapping: functools imports
# collections, which imports keyword, operator, reprlib, itertools), heapq and bisect 0.6 ms. p2k's
# modules on that path do without: collections.abc names only in annotations, p2k.hints'
# NamedTuple, p2k.vfs.vopguard.wrapped for functools.wraps, plain dicts as LRU caches
# (p2k.vfs.vnode), a bitmap for the lowest free descriptor (p2k.vfs.file), bisect imported by a
# tmpfs readdir only when it resumes. A read-write mount still imports bisect (the journal's map,
# p2k.fs.ffs.wapbl), so the commands that write are held to the others only.
NOR_COLLECTIONS = ("collections", "collections.abc", "functools", "heapq", "bisect", "reprlib", "keyword",
                   "itertools")
# Modules and import edges not followed (none: an fs-utils command line is read without argparse,
# p2k.cli.quickparse); kept as parameters for a test that must excuse one.
EXCUSED_MODULES: set[str] = set()
EXCUSED_EDGES: set[tuple[str, str]] = set()

BLAME_PROBE = """
import builtins, sys  # nothing more before the hook: json imports re
edges = {}
def recording_import(name, globals=None, locals=None, fromlist=(), level=0, _import=builtins.__import__):
    mod = _import(name, globals, locals, fromlist, level)
    importer = (globals or {}).get("__name__", "?")
    if level:
        base = (globals.get("__package__") or importer).rsplit(".", level - 1)[0]
        name = f"{base}.{name}" if name else base
    parts = name.split(".")
    got = edges.setdefault(importer, set())
    got.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    got.update(f"{name}.{f}" for f in fromlist or () if f"{name}.{f}" in sys.modules)
    return mod
builtins.__import__ = recording_import
BODY
import json
print("EDGES", json.dumps({"modules": sorted(sys.modules), "edges": {k: sorted(v) for k, v in edges.items()}}),
      file=sys.stderr)
"""

RUN_MAIN = """
from p2k.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
"""


def _blame(body: str, argv: list[str], forbidden: tuple[str, ...], excused_modules: set[str] = EXCUSED_MODULES,
           excused_edges: set[tuple[str, str]] = EXCUSED_EDGES) -> tuple[set[str], dict[str, list[str]]]:
    """Run ``body`` in a fresh interpreter recording every import statement executed (importer ->
    imported, whoever imported the module first); the modules loaded, and for each ``forbidden``
    module one chain of imports from a p2k module to it (the excused ones not followed)."""
    r = subprocess.run([sys.executable, "-c", BLAME_PROBE.replace("BODY", body), *argv],
                       capture_output=True, text=True, timeout=120)
    assert "EDGES" in r.stderr, r.stderr
    got = json.loads(r.stderr.rsplit("EDGES", 1)[1])
    edges: dict[str, list[str]] = got["edges"]
    chains: dict[str, list[str]] = {}
    todo = [[m] for m in got["modules"] if m.split(".")[0] == "p2k"]
    seen: set[str] = set()
    while todo:
        chain = todo.pop()
        m = chain[-1]
        if m in seen:
            continue
        seen.add(m)
        if m in forbidden:
            chains.setdefault(m, chain)
        if m not in excused_modules:
            todo += [chain + [n] for n in edges.get(m, ()) if n not in seen and (m, n) not in excused_edges]
    return set(got["modules"]), chains


def test_fsutils_import_neither_typing_nor_re(tmp_path: Path) -> None:
    """No module p2k imports for an fs-utils command on a plain image imports typing, re, enum,
    contextlib or warnings, nor collections, functools, heapq, bisect, reprlib, keyword or
    itertools, even where something else loaded them first; nor (bisect aside) for the commands
    that write (a new name in a directory, a file copied in)."""
    img = _small_image(tmp_path)
    host = tmp_path / "host"
    host.write_bytes(b"in\n")
    writing = NOT_AT_RUN_TIME + tuple(m for m in NOR_COLLECTIONS if m != "bisect")
    for argv, forbidden in (
            (["find", str(img), "/"], NOT_AT_RUN_TIME + NOR_COLLECTIONS),
            (["ls", "-lR", str(img), "/"], NOT_AT_RUN_TIME + NOR_COLLECTIONS),
            (["stat", str(img), "/d/f"], NOT_AT_RUN_TIME + NOR_COLLECTIONS),
            (["cat", str(img), "/d/f"], NOT_AT_RUN_TIME + NOR_COLLECTIONS),
            (["du", str(img)], NOT_AT_RUN_TIME + NOR_COLLECTIONS),
            (["df", str(img)], NOT_AT_RUN_TIME + NOR_COLLECTIONS),
            (["mkdir", str(img), "/new"], writing), (["cp", str(img), str(host), ":/new/h"], writing)):
        loaded, chains = _blame(RUN_MAIN, argv, forbidden)
        assert "p2k.fs.ffs.ffs_vfsops" in loaded, "the probe did not mount the image"
        assert not chains, f"p2k {argv[0]} imports {' and '.join(' -> '.join(c) for c in chains.values())}"
    # the probe sees what it must: find -name is the one fs-utils use of fnmatch, which imports re
    # and functools (its pattern cache), and functools collections
    _, chains = _blame(RUN_MAIN, ["find", str(img), "/", "-name", "h"], NOT_AT_RUN_TIME + NOR_COLLECTIONS)
    assert chains.get("re", [])[-3:] == ["p2k.cli.fsutils", "fnmatch", "re"], chains
    assert {"functools", "collections"} <= chains.keys() and "fnmatch" in chains["functools"], chains
    # and the writes were done
    r = subprocess.run([sys.executable, "-m", "p2k.cli.main", "cat", str(img), "/new/h"], capture_output=True,
                       timeout=60)
    assert (r.returncode, r.stdout) == (0, b"in\n"), r.stderr


def test_ordinary_command_lines_leave_argparse_alone(tmp_path: Path) -> None:
    """The fs-utils commands (and dumpfs, parts, info) with ordinary options are read by
    p2k.cli.quickparse: argparse with gettext and locale (6 ms of a command's start-up) load only
    for help and usage errors."""
    img = _small_image(tmp_path)
    out = tmp_path / "out"
    parser = {"argparse", "gettext", "locale"}
    i = str(img)
    for argv in (["cat", i, "/d/f"], ["stat", i, "/d/f"], ["du", "-s", i], ["df", "-i", i],
                 ["cp", "-p", i, ":/d/f", str(out)], ["find", "-tffs", i, "/", "-name", "f", "-type", "f"],
                 ["ls", "-lRai", i], ["mkdir", "-p", "-m", "700", i, "/e/f"], ["touch", i, "/t"],
                 ["chmod", i, "600", "/t"], ["chown", "-h", i, "0:0", "/t"], ["ln", "-s", i, "t", "/u"],
                 ["mv", i, "/u", "/v"], ["rm", "-rf", i, "/e"], ["rmdir", i, "/d"], ["getfattr", "-h", i, "/d"],
                 ["dumpfs", "-s", i], ["parts", i], ["info", "--json", i]):
        loaded, _ = _modules(argv)
        assert "p2k.cli.quickparse" in loaded and not parser & loaded, f"p2k {' '.join(argv[:2])}: {parser & loaded}"
    assert out.read_bytes() == b"data\n"
    loaded, _ = _modules(["ls", "--he", str(img)])  # an abbreviation: argparse's (it is --help)
    assert parser <= loaded


def test_version_loads_no_parser_and_no_command() -> None:
    """``p2k --version`` (the installed ``p2k`` program, through its entry point) answers from the
    package alone: no argparse, no typing, no command module, no kernel."""
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "p2k"]
    probe = (f"import sys\nsys.argv = ['p2k', '--version']\nfrom {ep.module} import {ep.attr} as main\n"
             "rc = main()\nprint('MODULES', ' '.join(sorted(sys.modules)), 'LOADED', rc, file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.stdout == "p2k " + __import__("p2k").__version__ + "\n" and r.stderr.endswith("LOADED 0\n"), r
    loaded = set(r.stderr.rsplit("MODULES", 1)[1].split("LOADED", 1)[0].split())
    heavy = {m for m in loaded if m.startswith(("p2k.cli.main", "p2k.cli.fsutils", "p2k.kernel", "p2k.vfs"))}
    heavy |= {"argparse", "typing", "re", "shutil", "dataclasses"} & loaded
    assert not heavy, f"p2k --version imported {sorted(heavy)}"
    # and the parser's own --version says the same
    r2 = subprocess.run([sys.executable, "-m", "p2k.cli.main", "--version"], capture_output=True, text=True, timeout=60)
    assert (r2.returncode, r2.stdout) == (0, r.stdout)


def test_help_loads_neither_typing_nor_a_kernel() -> None:
    """``p2k CMD --help`` (bench_startup's "parse" figure, aimed at <= 3x ``python -c pass``) needs
    argparse and the command's module: the modules it loads keep typing out of their imports
    (``TYPE_CHECKING = False``, as in p2k.lazy: 2.5 ms with the re, contextlib... it pulls)."""
    for argv in (["find", "--help"], ["ls", "--help"], ["mkdir", "--help"]):
        loaded, compiled = _modules(argv)
        heavy = {m for m in loaded if m.startswith(("p2k.kernel", "p2k.vfs", "p2k.fs."))} | ({"typing"} & loaded)
        assert not heavy, f"p2k {' '.join(argv)} imported {sorted(heavy)}"
        assert not compiled, f"p2k {' '.join(argv)} called compile() from {compiled}"


def test_mount_daemon_modules_stay_lean() -> None:
    """What the FUSE daemon imports to serve a plain image: none of the modules whose resident size
    put it over issue 16's aim (2x a bare interpreter): dataclasses with inspect (2.7 MiB), logging
    (1.4), pathlib (0.8), json. Its console messages import logging when first said. Nor typing,
    re, contextlib or warnings (start-up time; enum stays: signal and socket, which the daemon
    needs, import it), nor argparse: ``p2k mount IMAGE DIR`` is read by p2k.cli.quickparse, and
    the daemon, forked from that process, would keep argparse, gettext and locale."""
    body = ("import p2k.cli.start, p2k.cli.main, p2k.cli.mount, p2k.puffs.daemon, p2k.puffs.devfuse, "
            "p2k.puffs.bridge, p2k.kernel, p2k.fs.ffs.ffs_vfsops\n"
            "from p2k.puffs import RunDir\n"
            "RunDir('/nonexistent').path('/mnt')\n"
            "print(sorted({'dataclasses', 'inspect', 'logging', 'pathlib', 'json', 'argparse'} & set(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", "import sys\n" + body], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"the mount daemon's modules imported {r.stdout.strip()}"
    loaded, chains = _blame(body, [], ("typing", "re", "contextlib", "warnings", "argparse"))
    assert "p2k.puffs.devfuse" in loaded
    assert not chains, f"the mount daemon imports {' and '.join(' -> '.join(c) for c in chains.values())}"


def test_getopt_programs_read_their_options_without_gettext() -> None:
    """rump.halt and rump.sysctl read their options with p2k.cli.manual's getopt: the standard
    library's imports gettext (with re and enum) and the manual's help text textwrap (re): 6 ms
    of a 16 ms usage error."""
    for prog, argv in (("p2k.cli.halt", ["-n", "extra"]), ("p2k.cli.sysctl", ["-w"])):
        probe = (f"import sys\nfrom {prog} import main\nrc = main({argv!r})\n"
                 "print('MODULES', ' '.join(sorted(sys.modules)), 'RC', rc, file=sys.stderr)\n")
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "RUMP_SERVER": "unix:///nonexistent/p2k.sock"})
        assert "usage:" in r.stderr and r.stderr.endswith("RC 1\n"), r.stderr
        loaded = set(r.stderr.rsplit("MODULES", 1)[1].split("RC", 1)[0].split())
        assert "p2k.cli.manual" in loaded and not {"getopt", "gettext", "textwrap", "re"} & loaded, prog
