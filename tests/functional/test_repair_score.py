# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_repair's score on kernel-written pools with a held metadata snapshot (examples/*.meta.zst).

Damage corpus, per image:
  - block B: one byte flipped (checksum broken) in every metadata block the space map marks in
    use and that thin_check then rejects (superblock, details, top-level and mapping nodes of
    every level, space-map index and bitmaps);
  - sb FIELD flip: one byte of one superblock field flipped, checksum left broken;
  - sb FIELD zero: the field zeroed and the checksum made valid again (a wrong but valid-looking
    superblock).
Each case: thin_repair -i damaged -o out (no overrides); the output must pass our thin_check and
0.9.0's when the repair exits 0. Scored against the undamaged pool's live mappings
(dev, vblock) -> (data block, time): right = recovered with the undamaged value, wrong = any
other recovered mapping. The maximum is every live mapping not stored in the damaged block.

    python3 tests/functional/test_repair_score.py [--table] [--repair PATH] [--images A,B]

--repair scores another thin_repair (e.g. /usr/sbin/thin_repair) and never fails; --table
prints one row per case. As a test (no --repair) it fails on: a repair that exits 0 with an
output either checker rejects, a case that does not exit 0, any wrong mapping, and fewer right
mappings than the floor recorded for the case (FLOORS)."""
import os
import subprocess
import sys

import common
import repair_corpus

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")
IMAGES = ["pool-with-snap", "snapchain"]
W = os.path.join(common.work_dir(), "repair_score")
os.makedirs(W, exist_ok=True)

def checks(path):
    ours = common.run([common.ours("thin_check"), path])[0] == 0
    ref = common.run([common.ref("thin_check"), path])[0] == 0
    return ours, ref


def score(repair, name, table):
    src = os.path.join(EXAMPLES, name + ".meta.zst")
    clean = os.path.join(W, name + ".bin")
    subprocess.run(["zstd", "-dqf", src, "-o", clean], check=True)
    data = open(clean, "rb").read()
    truth_sb, truth = repair_corpus.mappings(common.run([common.ref("thin_dump"), clean], check=True)[1].decode())
    dmg, out = os.path.join(W, name + "-damaged.bin"), os.path.join(W, name + "-out.bin")
    rows = []
    for label, d, lost in repair_corpus.cases(data, W, checks):
        with open(dmg, "wb") as f:
            f.write(d)
        with open(out, "wb") as f:
            f.truncate(len(data))
        rc, _, err = common.run([repair, "-i", dmg, "-o", out])
        row = {"image": name, "case": label, "exit": rc, "ours": False, "ref": False, "right": 0,
               "wrong": 0, "max": len(truth) - len(lost), "trans": False,
               "err": err.decode(errors="replace").strip().splitlines()[-1:]}
        if rc == 0:
            row["ours"], row["ref"] = checks(out)
            rc2, xml, _ = common.run([common.ref("thin_dump"), out])
            if rc2 == 0:
                sb, got = repair_corpus.mappings(xml.decode())
                row["right"] = sum(1 for k, v in got.items() if truth.get(k) == v)
                row["wrong"] = len(got) - row["right"]
                row["trans"] = sb.get("transaction") == truth_sb["transaction"]
        rows.append(row)
        if table:
            print(f"| {name} | {label} | {rc} | {'yes' if row['ours'] else 'NO'} | "
                  f"{'yes' if row['ref'] else 'NO'} | {row['right']} / {row['max']} | "
                  f"{row['wrong']} | {'yes' if row['trans'] else 'no'} |", flush=True)
    return rows


def summary(rows):
    n = len(rows)
    clean = sum(1 for r in rows if r["exit"] == 0 and r["ours"] and r["ref"])
    right = sum(r["right"] for r in rows)
    mx = sum(r["max"] for r in rows)
    wrong = sum(r["wrong"] for r in rows)
    at_max = sum(1 for r in rows if r["right"] == r["max"])
    return (f"{n} cases: clean check (ours and 0.9.0) {clean}/{n}, right mappings {right} "
            f"(maximum {mx}), wrong {wrong}, cases at the maximum {at_max}/{n}")


# Right mappings each case must keep (the figures measured when the corpus was added); a case
# not listed must reach its maximum.
FLOORS = {}


def main():
    args = sys.argv[1:]
    table = "--table" in args
    repair = common.ours("thin_repair")
    scoring_only = False
    if "--repair" in args:
        repair = args[args.index("--repair") + 1]
        scoring_only = True
    images = IMAGES
    if "--images" in args:
        images = args[args.index("--images") + 1].split(",")
    F = common.Failures("test_repair_score")
    if table:
        print("| image | case | exit | our check | 0.9.0 check | right / max | wrong | transaction |")
        print("|---|---|---|---|---|---|---|---|")
    all_rows = []
    for name in images:
        if not os.path.exists(os.path.join(EXAMPLES, name + ".meta.zst")):
            F.check(False, f"examples/{name}.meta.zst missing")
            continue
        rows = score(repair, name, table)
        all_rows += rows
        print(f"{name}: {summary(rows)}", flush=True)
        if scoring_only:
            continue
        for r in rows:
            what = f"{name} {r['case']}"
            F.check(r["exit"] == 0, f"{what}: thin_repair exit {r['exit']}: {r['err']}")
            if r["exit"] == 0:
                F.check(r["ours"] and r["ref"], f"{what}: repaired output rejected by "
                        f"{'our thin_check' if not r['ours'] else '0.9.0 thin_check'}")
            F.check(r["wrong"] == 0, f"{what}: {r['wrong']} wrong mappings")
            floor = FLOORS.get((name, r["case"]), r["max"])
            F.check(r["right"] >= floor, f"{what}: {r['right']} right mappings, want {floor} "
                    f"(maximum {r['max']})")
    print(f"SUMMARY repair score: {summary(all_rows)}")
    if scoring_only:
        sys.exit(0)
    F.finish()


main()
