"""The fs-utils style write commands against a server (RUMP_SERVER set, no image argument)."""

from __future__ import annotations

import os
import subprocess

from server_harness import ServerProc, command, run


def test_write_commands_with_RUMP_SERVER(server: ServerProc) -> None:
    env = {"RUMP_SERVER": server.url}
    assert run("p2k", "mkdir", "/mnt/w", env=env).returncode == 0
    w = subprocess.run(command("p2k", "write", "/mnt/w/f"), input="from stdin\n", text=True,
                       capture_output=True, env={**os.environ, **env})
    assert w.returncode == 0, w.stderr
    for args in (["mv", "/mnt/w/f", "/mnt/w/g"], ["chmod", "640", "/mnt/w/g"], ["ln", "-s", "g", "/mnt/w/l"],
                 ["touch", "/mnt/w/t"]):
        r = run("p2k", *args, env=env)
        assert r.returncode == 0, (args, r.stderr)
    with server.connect() as c:
        assert sorted(c.sys.listdir("/mnt/w")) == ["g", "l", "t"]
        assert c.sys.stat("/mnt/w/g").st_mode & 0o777 == 0o640
        assert c.sys.readlink("/mnt/w/l") == "g"
        fd = c.sys.open("/mnt/w/g", 0)
        assert c.sys.read(fd, 100) == b"from stdin\n"
        c.sys.close(fd)
    r = run("p2k", "rm", "-r", "/mnt/w", env=env)
    assert r.returncode == 0, r.stderr
    with server.connect() as c:
        assert "w" not in c.sys.listdir("/mnt")
    r = run("p2k", "rmdir", "/mnt/nonexistent", env=env)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
