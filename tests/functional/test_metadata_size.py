# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_metadata_size against the reference 0.9.0 over many argument combinations: same
stdout, same exit status, same stderr (getopt's own messages, which name argv[0], are compared
after the program name)."""
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Failures, ours, ref, run  # noqa: E402

F = Failures("test_metadata_size")


def norm_err(err, prog):
    out = []
    for line in err.decode(errors="replace").splitlines():
        if line.startswith(prog + ":"):
            line = "PROG:" + line[len(prog) + 1:]
        out.append(line)
    return out


def same(args):
    r1, o1, e1 = run([ours("thin_metadata_size")] + args)
    r2, o2, e2 = run([ref("thin_metadata_size")] + args)
    ok = (r1, o1, norm_err(e1, ours("thin_metadata_size"))) == \
         (r2, o2, norm_err(e2, ref("thin_metadata_size")))
    F.check(ok, f"{args}: ours rc={r1} {o1!r} {e1!r} vs reference rc={r2} {o2!r} {e2!r}")


blocks = ["64k", "128", "1", "2", "64K", "384", "1m", "1g", "512b", "1b", "0", "k", "64kib",
          "64kb", "0064k", "4096", "1s", "-5", "1.5k", "8s"]
pools = ["1t", "2097152", "1T", "10g", "64k", "129", "1e", "20E", "1y", "1p", "1tera", "0",
         "99999999999999999999999", "36028797018963967", "36028797018963968", "16777216", "1tx"]
thins = ["1", "100", "1000", "1k", "1K", "0", "1b", "512b", "2s", "1m",
         "99999999999999999999", "36028797018963967", "18014398509481984", "007"]
units = [None, "b", "s", "k", "K", "m", "M", "g", "G", "t", "T", "p", "P", "e", "E", "z", "Z",
         "y", "Y", "kib", "kilo", "meg", "mega", "by", "", "x", "S", "Sectors", "kibibytesx",
         "gi", "zetabytes", "yottabytes"]
numeric = [None, "-n", "-nshort", "-nlong", "-ns", "-nl", "-nsho", "-nfoo", "--numeric-only",
           "--numeric-only=long", "--numeric-only=", "--num=short"]

# Every block size x pool size with a fixed max-thins, then the other axes.
for b, s in itertools.product(blocks, pools):
    same(["-b", b, "-s", s, "-m", "10"])
for m, u in itertools.product(thins, units):
    args = ["-b", "64k", "-s", "1t", "-m", m]
    if u is not None:
        args += ["-u", u]
    same(args)
for u, n in itertools.product(units, numeric):
    args = ["-b64k", "-s1t", "-m1000"]
    if u is not None:
        args.append("-u" + u if u else "--unit=")
    if n is not None:
        args.append(n)
    same(args)
# Option errors: 0.9.0's exit status, 1.3.3's wording (issue 13 item 12), not getopt's.
for args, first in [(["-b"], "a value is required for '-b' but none was supplied"),
                    (["-u"], "a value is required for '-u' but none was supplied"),
                    (["--bogus"], "unexpected argument '--bogus' found"),
                    (["-x"], "unexpected argument '-x' found")]:
    rc, o, e = run([ours("thin_metadata_size")] + args)
    F.check(rc == 1 and o == b"" and e.decode().splitlines() ==
            ["thin_metadata_size: " + first, "For more information, try '--help'."],
            f"{args}: {rc} {e!r}")
for args in [[], ["-h"], ["--help"], ["-b", "1", "-h"],
             ["-s", "1t", "-m", "1"], ["-b", "1", "-s", "1t"], ["-b", "64k", "-b", "64k"],
             ["-b", "0", "-b", "64k", "-s", "1t", "-m", "1"], ["-m", "0", "-m", "1", "-b", "64k",
                                                                "-s", "1t"],
             ["-b", "64k", "-s", "1t", "-m", "1", "--max=4"], ["-b", "64k", "-s", "1t", "-m", "1",
                                                               "-n", "-nshort"],
             ["-b", "64k", "-s", "1t", "-m", "1", "-n", "short"], ["-u", "x"],
             ["-nfoo", "-u", "x"], ["-u", "b", "-b", "128", "-s", "2097152", "-m", "10"],
             ["-b", "128", "-u", "b", "-s", "2097152", "-m", "10"],
             ["-u", "k", "-b", "128", "-s", "2097152", "-m", "10"],
             ["-b", "64k", "-s", "1t", "-m", "1", "extra"],
             ["-b", "64k", "-s", "1t", "-m", "1", "--", "-u", "g"],
             ["--block-size=1g", "--pool-size=1P", "--max-thins=1M", "--unit=G", "--numeric-only"],
             ["-b", "64k", "-s", "1t", "-m", "1", "--unit=g", "--uni=m"],
             ["-b", "64k", "-s", "1t", "-m", "1", "-u", "s", "-n", "-u", "b"]]:
    same(args)

F.finish()
