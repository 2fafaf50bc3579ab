# SPDX-License-Identifier: GPL-3.0-or-later
"""`cmake --install` of the build into a DESTDIR with two prefixes: every installed path
follows the prefix and DESTDIR given at install time (the binary, one link per tool that has a
source in bin/, one man page per man/*.8, nothing else), the links point at `thinmeta` and
run; a step that cannot be done fails the install with a nonzero exit."""
import glob
import os
import shutil
import subprocess

import common

F = common.Failures("test_install")
W = os.path.join(common.work_dir(), "install")
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
BUILD = os.path.dirname(os.path.abspath(common.our_bin()))
SRC = os.path.join(common.HERE, "..", "..")
TOOLS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(SRC, "bin", "thin_*.cc")))
PAGES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SRC, "man", "*.8")))


def install(destdir, prefix):
    env = dict(os.environ, DESTDIR=destdir)
    p = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return p.returncode, p.stdout.decode(errors="replace")


def tree(root):
    """Every file and link under root, as absolute paths inside it (directories left out)."""
    out = set()
    for d, dirs, files in os.walk(root):
        for n in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            out.add("/" + os.path.relpath(os.path.join(d, n), root))
    return out


F.check(len(TOOLS) >= 9 and "thin_check.8" in PAGES, f"tools {TOOLS} and pages {PAGES} found in the tree")
_, version, _ = common.run([common.ours("thin_check"), "-V"])
for i, prefix in enumerate(["/usr", "/opt/thin meta"]):
    dest = os.path.join(W, f"dest{i}")
    rc, log = install(dest, prefix)
    F.check(rc == 0, f"install --prefix {prefix!r}: exit {rc}: {log[-500:]}")
    F.check("rror" not in log, f"install --prefix {prefix!r}: no error in its log: {log[-500:]}")
    sbin, man = prefix + "/sbin", prefix + "/share/man/man8"
    want = {sbin + "/thinmeta"} | {f"{sbin}/{t}" for t in TOOLS} | {f"{man}/{p}" for p in PAGES}
    got = tree(dest)
    F.check(got == want, f"--prefix {prefix!r}: missing {sorted(want - got)}, unexpected {sorted(got - want)}")
    for t in TOOLS:
        link = dest + f"{sbin}/{t}"
        F.check(os.path.islink(link) and os.readlink(link) == "thinmeta",
                f"--prefix {prefix!r}: {t} is a link to thinmeta")
        if os.path.exists(link):
            rc, out, _ = common.run([link, "-V"])
            F.check(rc == 0 and out == version, f"--prefix {prefix!r}: installed {t} -V prints {out!r}")
    for p in PAGES:
        F.check(open(dest + f"{man}/{p}", "rb").read() == open(os.path.join(SRC, "man", p), "rb").read(),
                f"--prefix {prefix!r}: man page {p} installed as it is")

# A step that fails fails the install: share/ is a regular file, so man8 cannot be made.
dest = os.path.join(W, "broken")
os.makedirs(dest + "/usr")
open(dest + "/usr/share", "w").close()
rc, log = install(dest, "/usr")
F.check(rc != 0, f"install where usr/share is a file: exit {rc} (must fail): {log[-300:]}")
F.finish()
