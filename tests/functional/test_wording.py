# SPDX-License-Identifier: GPL-3.0-or-later
"""Messages (issue 13, items 9, 10 and 12): one line per error, messages that name what was
wrong, 1.3.3's wordings; stdout stays 0.9.0's (compared with the reference tools)."""
import os

import common
import corpus

F = common.Failures("test_wording")
W = os.path.join(common.work_dir(), "wording")
os.makedirs(W, exist_ok=True)
HELP = "For more information, try '--help'."


def path(name):
    return os.path.join(W, name)


def lines(b):
    return b.decode(errors="replace").splitlines()


# A small pool, restored by the reference thin_restore.
xml = path("pool.xml")
with open(xml, "w") as f:
    f.write(corpus.xml_pool(5, 3, 128, 1000, [(1, 0, 0, 0, [(0, 0, 0), (1, 1, 0), (5, 9, 0)]),
                                              (2, 1, 1, 1, [(0, 0, 0)])]))
meta = path("pool.bin")
with open(meta, "wb") as f:
    f.truncate(8 << 20)
common.run([common.ref("thin_restore"), "-i", xml, "-o", meta], check=True)
out = path("out.bin")
with open(out, "wb") as f:
    f.truncate(8 << 20)

# Item 9: a truncated image is "too short" once; nothing that only follows from it is repeated.
short = path("short.bin")
with open(meta, "rb") as f, open(short, "wb") as g:
    g.write(f.read(3 * 4096))
rc, o, e = common.run([common.ours("thin_check"), short])
problems = [l for l in lines(e) if l.startswith("  ") and not l.startswith("    ")]
F.check(rc == 1 and problems == ["  metadata device is too short"] and
        b"superblock is corrupt" not in e and b"missing" not in e,
        f"thin_check on a truncated image: one problem: {lines(e)!r}")
rc_ref, o_ref, _ = common.run([common.ref("thin_check"), short])
F.check(o.startswith(b"TRANSACTION_ID=3\n"), f"thin_check on a truncated image: stdout {o!r}")
for tool, args in [("thin_dump", [short]), ("thin_ls", [short]),
                   ("thin_rmap", ["--region", "0..5", short]),
                   ("thin_delta", ["--thin1", "1", "--thin2", "2", short]),
                   ("thin_dump", ["--repair", short]), ("thin_repair", ["-i", short, "-o", out])]:
    rc, o, e = common.run([common.ours(tool)] + args)
    F.check(rc == 1 and o == b"" and len(lines(e)) == 1,
            f"{tool} {args[:-1]} on a truncated image: one line: {lines(e)!r}")

# Item 12: an input with nothing to rebuild from is 1.3.3's one line, whatever else is missing.
zero = path("zero.bin")
with open(zero, "wb") as f:
    f.truncate(8 << 20)
for tool, args in [("thin_repair", ["-i", zero, "-o", out]), ("thin_dump", ["--repair", zero])]:
    rc, o, e = common.run([common.ours(tool)] + args)
    F.check(rc == 1 and o == b"" and lines(e) == ["no compatible roots found"],
            f"{tool} on a zeroed input: {lines(e)!r}")

# Item 12: thin_dump's superblock overrides apply without --repair (the printed fields are
# replaced, as 0.9.0 prints them; 1.3.3 accepts them too).
for args in [["--transaction-id", "1", "--data-block-size", "256", "--nr-data-blocks", "50"],
             ["--transaction-id", "10", "--nr-data-blocks", "5000"], ["--data-block-size", "1024"],
             ["--nr-data-blocks", "7", "-f", "human_readable"]]:
    rc, o, e = common.run([common.ours("thin_dump")] + args + [meta])
    rc_ref, o_ref, _ = common.run([common.ref("thin_dump")] + args + [meta])
    F.check(rc == 0 and e == b"" and o == o_ref and rc_ref == 0,
            f"thin_dump {args}: as 0.9.0: {rc} {e!r}\n{o[:200]!r}\n{o_ref[:200]!r}")
rc, o, e = common.run([common.ours("thin_dump"), "--use-metadata-snap", meta])
F.check(rc == 1 and lines(e) == ["--use-metadata-snap needs --repair", HELP],
        f"thin_dump --use-metadata-snap without --repair: {lines(e)!r}")

# Item 12: a stray positional argument is named (1.3.3's wording), for every tool taking none.
for tool, args in [("thin_restore", ["-i", xml, "-o", out]),
                   ("thin_repair", ["-i", meta, "-o", out]),
                   ("thin_trim", ["--metadata-dev", meta, "--data-dev", out]),
                   ("thin_metadata_pack", ["-i", meta, "-o", path("p.pack")])]:
    if not os.path.exists(common.ours(tool)):
        continue
    rc, o, e = common.run([common.ours(tool)] + args + ["stray"])
    F.check(rc == 1 and lines(e) == ["unexpected argument 'stray' found", HELP],
            f"{tool} with a stray argument: {lines(e)!r}")

F.finish()
