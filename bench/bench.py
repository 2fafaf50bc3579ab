#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark suite: generates realistic pools (an origin and snapshots sharing most of its
blocks, fragmented), then runs each tool, ours and the reference 0.9.0 alternately, several
times, and prints median wall time, CPU time and peak RSS side by side with the ratio
ours/reference, and each time as a multiple of the image's I/O floor (every used metadata block
read once with O_DIRECT and checksummed). Not part of the test suite.

  bench/bench.py [--sizes 1m,4m,16m] [--reps 3] [--only check,dump,...] [--out bench/out]
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "functional"))
import corpus  # noqa: E402

SIZES = {"1m": 1_000_000, "4m": 4_000_000, "16m": 16_000_000}


def gen_xml(path, total_mappings, seed=1):
    """An origin and three snapshots, each snapshot rewriting ~10% of the origin's blocks, so
    the four devices hold `total_mappings` mappings sharing about 90% of their data."""
    rng = random.Random(seed)
    origin = total_mappings // 4
    devs, nd = corpus.snapshot_family(rng, 1 << 40, origin, 3, 0.1)
    with open(path, "w") as f:
        f.write(corpus.xml_pool(4, 10, 128, nd + 1000, devs))
    return nd + 1000


def run_timed(argv, stdout=subprocess.DEVNULL):
    """(wall s, cpu s, peak RSS KiB, exit code) of one run, measured by GNU time (the rusage
    of a child forked from this big Python process would include Python's own pages)."""
    tf = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench-time-{os.getpid()}")
    t0 = time.perf_counter()
    # Ours reads with O_DIRECT through libaio, as the reference does and as we do on block
    # devices, so neither side is served from the page cache.
    env = dict(os.environ, THINMETA_IO_ENGINE=os.environ.get("THINMETA_IO_ENGINE", "aio"))
    p = subprocess.run(["/usr/bin/time", "-o", tf, "-f", "%U %S %M %x"] + argv, stdout=stdout,
                       stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    u, s, m, x = open(tf).read().split()[-4:]
    return wall, float(u) + float(s), int(m), int(x)


def prepare(out, name, nr):
    xml = os.path.join(out, f"{name}.xml")
    img = os.path.join(out, f"{name}.bin")
    meta = os.path.join(out, f"{name}.nr_data")
    if not os.path.exists(img):
        print(f"# generating {name}: {nr} mappings", file=sys.stderr, flush=True)
        nr_data = gen_xml(xml, nr)
        with open(meta, "w") as f:
            f.write(str(nr_data))
        size = max(64 << 20, nr * 48)  # room for restored trees (0.9.0 leaves are half full)
        with open(img, "wb") as f:
            f.truncate(size)
        restore = os.path.join(TOP, "build", "bin", "thin_restore")
        if not os.path.exists(restore):
            restore = "/usr/sbin/thin_restore"
        subprocess.run([restore, "-i", xml, "-o", img], check=True, stdout=subprocess.DEVNULL)
    return xml, img, int(open(meta).read())


def cases(xml, img, nr_data, scratch):
    """(label, argv suffix, needs_output_file)"""
    all_fields = ("DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_SECTORS,EXCLUSIVE_SECTORS,"
                  "SHARED_SECTORS,MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,MAPPED,EXCLUSIVE,SHARED,"
                  "TRANSACTION,CREATE_TIME,SNAP_TIME")
    return [
        ("check", "thin_check", [img]),
        ("check --skip-mappings", "thin_check", ["--skip-mappings", img]),
        ("dump xml", "thin_dump", [img]),
        ("dump human_readable", "thin_dump", ["-f", "human_readable", img]),
        ("restore", "thin_restore", ["-i", xml, "-o", scratch]),
        ("repair", "thin_repair", ["-i", img, "-o", scratch]),
        ("delta snap 2 vs origin 1", "thin_delta", ["--snap1", "1", "--snap2", "2", img]),
        ("ls all fields", "thin_ls", ["-o", all_fields, img]),
        ("rmap whole data range", "thin_rmap", ["--region", f"0..{nr_data}", img]),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1m,4m")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--ours", default=os.path.join(TOP, "build", "bin"))
    ap.add_argument("--ref", default="/usr/sbin")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    floor_bin = os.path.join(a.ours, "bench_floor")
    rows = []
    for size in a.sizes.split(","):
        xml, img, nr_data = prepare(a.out, size, SIZES[size])
        scratch = os.path.join(a.out, f"{size}.scratch")
        with open(scratch, "wb") as f:
            f.truncate(os.path.getsize(img))
        floors = []
        for _ in range(a.reps):
            out = subprocess.run([floor_bin, img], capture_output=True, text=True, check=True).stdout
            floors.append(float(out.split()[1]))
        floor = statistics.median(floors)
        used = int(out.split()[0])
        print(f"# {size}: {SIZES[size]} mappings, {used} metadata blocks used, floor {floor:.3f} s",
              file=sys.stderr, flush=True)
        for label, tool, args in cases(xml, img, nr_data, scratch):
            if a.only and not any(label.startswith(o) for o in a.only.split(",")):
                continue
            ours_tool = os.path.join(a.ours, tool)
            ref_tool = os.path.join(a.ref, tool)
            if not os.path.exists(ours_tool):
                rows.append((size, label, None, None, floor))
                continue
            res = {"ours": [], "ref": []}
            for _ in range(a.reps):
                for who, t in (("ours", ours_tool), ("ref", ref_tool)):
                    res[who].append(run_timed([t] + args))
            med = {w: tuple(statistics.median(r[i] for r in res[w]) for i in range(3)) +
                   (max(r[3] for r in res[w]),) for w in res}
            rows.append((size, label, med["ours"], med["ref"], floor))
            print(f"# {size} {label}: ours {med['ours'][0]:.3f} s, ref {med['ref'][0]:.3f} s",
                  file=sys.stderr, flush=True)
    hdr = ("image", "tool", "ours wall", "ref wall", "ours/ref", "ours CPU", "ref CPU",
           "ours RSS MiB", "ref RSS MiB", "ours/floor", "ref/floor", "exit o/r")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for size, label, o, r, floor in rows:
        if o is None:
            print(f"| {size} | {label} | n/a (not built) |" + " |" * (len(hdr) - 3))
            continue
        print(f"| {size} | {label} | {o[0]:.3f} | {r[0]:.3f} | {o[0] / r[0]:.3f} | {o[1]:.3f} | "
              f"{r[1]:.3f} | {o[2] / 1024:.1f} | {r[2] / 1024:.1f} | {o[0] / floor:.1f} | "
              f"{r[0] / floor:.1f} | {o[3]}/{r[3]} |")


if __name__ == "__main__":
    main()
