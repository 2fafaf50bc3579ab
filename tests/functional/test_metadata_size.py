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


PROG = "thin_metadata_size - "
WARNING = (PROG + "warning: the estimate is more than the kernel can use: a metadata device "
           "holds at most 4161600 blocks of 4 KiB (about 15.9 GiB)\n").encode()
KERNEL_BAD = {(PROG + "block size must be a multiple of 64 KiB\n").encode(),
              (PROG + "maximum block size is 1 GiB\n").encode()}
# Block sizes of the lists below that the kernel rejects (issue 13 item 14: refused in 1.3.3's
# words where 0.9.0 printed an estimate or "2^^N"), and those it takes that 0.9.0 refused
# (not a power of two: 1.3.3 takes them too).
KERNEL_INVALID = {"1", "2", "64K", "512b", "1b", "64kb", "1s", "8s"}
KERNEL_ONLY = {"384"}


def block_arg(args):
    for i, a in enumerate(args):
        if a == "-b" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("-b") and a != "-b":
            return a[2:]
        if a.startswith("--block-size="):
            return a[len("--block-size="):]
    return None


def same(args):
    """Ours as 0.9.0: same stdout, status and stderr, but for the kernel's block size rules and
    the warning about estimates beyond what the kernel can use (stderr only)."""
    r1, o1, e1 = run([ours("thin_metadata_size")] + args)
    r2, o2, e2 = run([ref("thin_metadata_size")] + args)
    if e1.startswith(WARNING):
        e1 = e1[len(WARNING):]
    ok = (r1, o1, norm_err(e1, ours("thin_metadata_size"))) == \
         (r2, o2, norm_err(e2, ref("thin_metadata_size")))
    b = block_arg(args)
    if not ok and b in KERNEL_INVALID:
        ok = r1 == 1 and o1 == b"" and e1 in KERNEL_BAD
    elif not ok and b in KERNEL_ONLY:
        ok = (r2 == 1 and e2 == (PROG + "block size must be 2^^N\n").encode() and
              (r1 == 0 or e1 == (PROG + "pool size must be larger than block size\n").encode()))
    if b in KERNEL_INVALID and r1 == 0 and b"estimated" in o1:
        ok = False
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


def ours_run(args):
    return run([ours("thin_metadata_size")] + args)


# Issue 13 item 14: 1.x's spellings give what 0.9.0's forms give.
for new_form, old_form in [
        (["-b", "64KiB", "-s", "1TiB", "-m", "100"], ["-b", "64k", "-s", "1t", "-m", "100"]),
        (["-b", "64k", "-s", "1TB", "-m", "100", "-u", "MiB"], ["-b", "64k", "-s", "1T", "-m", "100", "-u", "m"]),
        (["-b", "1MiB", "-s", "2PiB", "-m", "9", "-u", "GB"], ["-b", "1m", "-s", "2p", "-m", "9", "-u", "G"]),
        (["-b", "64k", "-s", "10GiB", "-m", "1", "-u", "kB", "-n=short"], ["-b", "64k", "-s", "10g", "-m", "1", "-u", "K", "-nshort"]),
        (["-b", "64k", "-s", "1EiB", "-m", "1", "-u", "exbibyte", "-n=long"], ["-b", "64k", "-s", "1e", "-m", "1", "-u", "e", "-nlong"]),
        (["-b", "64k", "-s", "1t", "-m", "1", "-u", "sector", "-n"], ["-b", "64k", "-s", "1t", "-m", "1", "-n"]),
        (["--block-size=64KiB", "--pool-size=1TiB", "--max-thins=10", "--unit=GiB",
          "--numeric-only=short"], ["-b64k", "-s1t", "-m10", "-ug", "-nshort"]),
        (["-b", "1GiB", "-s", "1PB", "-m", "5", "-u", "TB"], ["-b", "1g", "-s", "1P", "-m", "5", "-u", "T"])]:
    r1, o1, e1 = ours_run(new_form)
    r2, o2, e2 = run([ref("thin_metadata_size")] + old_form)
    if e1.startswith(WARNING):  # a pool too big for the kernel: tested below
        e1 = e1[len(WARNING):]
    F.check(r1 == 0 and r2 == 0 and o1 == o2 and e1 == e2 == b"",
            f"1.x form {new_form}: {r1} {o1!r} {e1!r} vs 0.9.0 {old_form}: {o2!r}")

# Block sizes the kernel rejects, one line in 1.3.3's words; what it takes, estimated.
for b, msg in [("32k", "block size must be a multiple of 64 KiB"),
               ("96k", "block size must be a multiple of 64 KiB"),
               ("65600b", "block size must be a multiple of 64 KiB"),
               ("64", "block size must be a multiple of 64 KiB"),
               ("2g", "maximum block size is 1 GiB"),
               ("2GiB", "maximum block size is 1 GiB"),
               ("1025m", "maximum block size is 1 GiB"),
               ("100000b", "block size must be a multiple of 64 KiB"),
               ("1048704k", "maximum block size is 1 GiB")]:
    r, o, e = ours_run(["-b", b, "-s", "1t", "-m", "1"])
    F.check(r == 1 and o == b"" and e == (PROG + msg + "\n").encode(), f"-b {b}: {r} {o!r} {e!r}")
for b, sectors in [("192k", 384), ("384", 384), ("1g", 2097152), ("64k", 128), ("3m", 6144)]:
    r, o, e = ours_run(["-b", b, "-s", "1t", "-m", "1", "-n"])
    want = (1 + (2 * 2147483648 // sectors) // 252 + 1) * 8
    F.check(r == 0 and o == f"{want}\n".encode() and e == b"", f"-b {b}: {r} {o!r} {e!r}")

# Beyond what the kernel can use (4161600 metadata blocks): stdout as 0.9.0, a warning on
# stderr. -b 64k -s 1t needs 133153 blocks before max-thins.
for m, warn in [(4028447, False), (4028448, True), (1000, False)]:
    args = ["-b", "64k", "-s", "1t", "-m", str(m)]
    r1, o1, e1 = ours_run(args)
    r2, o2, _ = run([ref("thin_metadata_size")] + args)
    F.check(r1 == 0 and o1 == o2 and e1 == (WARNING if warn else b""),
            f"-m {m}: warning {warn}: {r1} {o1!r} {e1!r}")
r, o, e = ours_run(["-b", "64k", "-s", "1p", "-m", "1", "-n"])
F.check(r == 0 and o == b"1090785360\n" and e == WARNING, f"1 PiB pool: {r} {o!r} {e!r}")

F.finish()
