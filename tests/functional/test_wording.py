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
F.check(rc == 1 and lines(e) == ["thin_dump: --use-metadata-snap needs --repair", HELP],
        f"thin_dump --use-metadata-snap without --repair: {lines(e)!r}")

# Item 12: a stray positional argument is named (1.3.3's wording), for every tool taking none.
for tool, args in [("thin_restore", ["-i", xml, "-o", out]),
                   ("thin_repair", ["-i", meta, "-o", out]),
                   ("thin_trim", ["--metadata-dev", meta, "--data-dev", out]),
                   ("thin_metadata_pack", ["-i", meta, "-o", path("p.pack")])]:
    if not os.path.exists(common.ours(tool)):
        continue
    rc, o, e = common.run([common.ours(tool)] + args + ["stray"])
    F.check(rc == 1 and lines(e) == [f"{tool}: unexpected argument 'stray' found", HELP],
            f"{tool} with a stray argument: {lines(e)!r}")

# Item 10: messages name what was wrong.
ls_cases = [("DEV, MAPPED", "unknown field ' MAPPED' (fields are separated by commas, no spaces) "
             "in --format 'DEV, MAPPED'"),
            ("DEV,FOO", "unknown field 'FOO' in --format 'DEV,FOO'"),
            ("DEV,", "empty field in --format 'DEV,'")]
for fields, first in ls_cases:
    rc, o, e = common.run([common.ours("thin_ls"), "-o", fields, meta])
    F.check(rc == 1 and o == b"" and lines(e) == ["thin_ls: " + first, HELP], f"thin_ls -o {fields!r}: {lines(e)!r}")
for region, why in [("-5..3", "'-5' is not a block number"), ("a..b", "'a' is not a block number"),
                    ("5..x", "'x' is not a block number"),
                    ("5", "expected <begin>..<one-past-the-end>, e.g. 5..45"),
                    ("5..5", "end <= begin (the end is one past the last block)")]:
    rc, o, e = common.run([common.ours("thin_rmap"), "--region", region, meta])
    F.check(rc == 1 and o == b"" and lines(e) == [f"badly formed region '{region}': {why}"],
            f"thin_rmap --region {region}: {lines(e)!r}")
for tool, args in [("thin_restore", ["-i", xml, "-o", out]), ("thin_repair", ["-i", meta, "-o", out])]:
    for dbs in ["100", "64", "4194304"]:
        rc, o, e = common.run([common.ours(tool), "--data-block-size", dbs] + args)
        F.check(rc == 1 and lines(e) == [f"{tool}: invalid --data-block-size {dbs}: it must be a multiple "
                                         "of 128 sectors between 128 and 2097152", HELP],
                f"{tool} --data-block-size {dbs}: {lines(e)!r}")
rc, o, e = common.run([common.ours("thin_check"), meta], env={"THINMETA_IO_ENGINE": "bogus"})
F.check(rc == 1 and o == b"" and lines(e) == ["THINMETA_IO_ENGINE='bogus' is not an I/O engine: "
                                              "use sync, aio, libaio or mmap"],
        f"THINMETA_IO_ENGINE=bogus: {rc} {lines(e)!r}")
for engine in ["sync", "aio", "libaio", "mmap", ""]:
    rc, o, e = common.run([common.ours("thin_check"), "-q", meta], env={"THINMETA_IO_ENGINE": engine})
    F.check(rc == 0, f"THINMETA_IO_ENGINE={engine!r}: {rc} {e!r}")
multi = os.path.join(common.our_bin(), "thinmeta")
for flag in ["--help", "-h"]:
    rc, o, e = common.run([multi, flag])
    names = [l.split()[0] for l in lines(o)[2:-1]]
    F.check(rc == 0 and e == b"" and "thin_check" in names and "thin_dump" in names and
            all(len(l.split()) > 2 for l in lines(o)[2:-1]),
            f"thinmeta {flag}: the tools, each with what it does: {rc} {lines(o)!r}")
rc, o, e = common.run([multi])
F.check(rc == 1 and o == b"" and b"thin_check" in e, f"thinmeta alone: usage on stderr, exit 1: {rc}")

# The needs_check flag: said on stderr (stdout as 0.9.0's), not an error.
nc_xml = path("nc.xml")
with open(nc_xml, "w") as f:
    f.write(corpus.xml_pool(5, 3, 128, 1000, [(1, 0, 0, 0, [(0, 0, 0)])], flags=1))
nc = path("nc.bin")
with open(nc, "wb") as f:
    f.truncate(8 << 20)
common.run([common.ref("thin_restore"), "-i", nc_xml, "-o", nc], check=True)
NOTE = ("the needs_check flag is set: the kernel found a metadata error; "
        "--clear-needs-check-flag clears it when the check passes")
rc, o, e = common.run([common.ours("thin_check"), nc])
F.check(rc == 0 and NOTE in lines(e) and o.startswith(b"TRANSACTION_ID=3\n") and
        common.run([common.ref("thin_check"), nc])[1].startswith(b"TRANSACTION_ID=3\n"),
        f"thin_check with needs_check set: {rc} {lines(e)!r} {o!r}")
rc, o, e = common.run([common.ours("thin_check"), "-q", nc])
F.check(rc == 0 and o == b"" and e == b"", f"thin_check -q with needs_check set: {rc} {e!r}")
rc, o, e = common.run([common.ours("thin_check"), meta])
F.check(rc == 0 and b"needs_check" not in e, f"thin_check without the flag: {lines(e)!r}")

# Every --help: each option says what it does (a text after the option), progress options listed
# where the tool has them; thin_repair shows no positional argument.
TOOLS = ["thin_check", "thin_dump", "thin_restore", "thin_repair", "thin_ls", "thin_rmap",
         "thin_delta", "thin_trim", "thin_metadata_size", "thin_send", "thin_receive",
         "thin_migrate", "thin_metadata_pack", "thin_metadata_unpack", "thin_shrink"]
PROGRESS = {"thin_check", "thin_dump", "thin_restore", "thin_repair", "thin_ls", "thin_rmap",
            "thin_trim", "thin_send", "thin_receive", "thin_migrate"}
import re
for tool in TOOLS:
    if not os.path.exists(common.ours(tool)):
        continue
    rc, o, e = common.run([common.ours(tool), "--help"])
    text = lines(o)
    F.check(rc == 0 and e == b"" and text, f"{tool} --help: {rc} {e!r}")
    undescribed = []
    start = next((i for i, l in enumerate(text) if l.startswith("Options")), 0)
    for i, l in enumerate(text):
        s = l.strip()
        if i <= start:
            continue
        if not re.match(r"^(\{?-|-\w,)", s):
            continue  # not an option line
        cols = re.split(r"\s{2,}|\t", s)
        nxt = text[i + 1] if i + 1 < len(text) else ""
        has_next = nxt.startswith(" " * 8) and not re.match(r"^\s*(\{?-|-\w,)", nxt)
        if len(cols) < 2 and not has_next:
            undescribed.append(s)
    F.check(not undescribed, f"{tool} --help: options without a description: {undescribed!r}")
    if tool in PROGRESS:
        F.check(any("--progress" in l and "--no-progress" in l for l in text),
                f"{tool} --help lists --progress/--no-progress")
rc, o, _ = common.run([common.ours("thin_repair"), "--help"])
F.check(lines(o)[0] == "Usage: thin_repair [options] -i {device|file} -o {device|file}",
        f"thin_repair usage line: {lines(o)[:1]!r}")

F.finish()
