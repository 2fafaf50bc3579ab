# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_migrate's command line (the copying itself needs device-mapper: the kernel tier's
`migrate` scenario): help and version, the 1.3.3 error lines for a missing source or
destination, bad numbers, a source that is not a block device; exit status 1 (never 2), one
line on stderr, and no destination file left behind by a refused run."""
import os

import common

F = common.Failures("test_migrate")
W = os.path.join(common.work_dir(), "migrate")
os.makedirs(W, exist_ok=True)
TM = common.ours("thin_migrate")
DEST = os.path.join(W, "dest.img")
SRC_FILE = os.path.join(W, "src.img")
with open(SRC_FILE, "wb") as f:
    f.truncate(1 << 20)

rc, out, err = common.run([TM, "--help"])
F.check(rc == 0 and b"--source-dev" in out and b"--delta-id" in out and not err, "--help: usage on stdout, exit 0")
rc, out, err = common.run([TM, "-V"])
F.check(rc == 0 and out.strip().count(b".") == 2, "-V prints a bare version")


def refused(args, want, label):
    if os.path.exists(DEST):
        os.unlink(DEST)
    rc, out, err = common.run([TM] + args)
    first = err.decode(errors="replace").splitlines()[0] if err else ""
    F.check(rc == 1, f"{label}: exit 1 (got {rc})")
    F.check(want in first, f"{label}: first stderr line {first!r} contains {want!r}")
    F.check(not out, f"{label}: nothing on stdout")
    F.check(not os.path.exists(DEST), f"{label}: no destination file created")


refused([], "You must specify a source", "no arguments")
refused(["--dest-file", DEST], "You must specify a source", "no source")
refused(["--source-dev", "/dev/null"], "You must specify a dest", "no destination")
refused(["--source-dev", "/dev/null", "--dest-dev", "/dev/null", "--dest-file", DEST],
        "cannot be used together", "both destinations")
refused(["--source-dev", "/dev/null", "--dest-file", DEST, "--buffer-size-meg", "x"],
        "Couldn't parse buffer size: 'x'", "bad buffer size")
refused(["--source-dev", "/dev/null", "--dest-file", DEST, "--buffer-size-meg", "0"],
        "buffer size must be", "zero buffer size")
refused(["--source-dev", "/dev/null", "--dest-file", DEST, "--delta-id", "16777216"],
        "Couldn't parse thin id", "thin id out of range")
refused(["--source-dev", os.path.join(W, "missing"), "--dest-file", DEST],
        "cannot stat", "missing source")
refused(["--source-dev", SRC_FILE, "--dest-file", DEST], "is not a block device", "source is a file")
refused(["--source-dev", SRC_FILE, "--dest-file", DEST, "--bogus"], "unexpected argument '--bogus' found", "unknown option")
F.finish()
