#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Generates a large thin_dump-style XML for benchmarks: an origin and several snapshots that
share most data blocks, each snapshot having overwritten a fraction of them (so the mappings
come as runs broken at random places, as on a real pool).

  gen_xml.py [--mappings N] [--snapshots S] [--change F] [--seed X] > pool.xml

N is the total number of mappings over all devices (origin + S snapshots, equal sizes)."""
import argparse
import random
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mappings", type=int, default=10_000_000)
    ap.add_argument("--snapshots", type=int, default=4)
    ap.add_argument("--change", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    per_dev = a.mappings // (a.snapshots + 1)

    # Origin: runs of 1..256 virtual blocks with holes, data allocated mostly in order.
    origin = []  # (virt, data, len)
    v = d = 0
    left = per_dev
    while left:
        n = min(left, rng.randint(1, 256))
        origin.append((v, d, n))
        left -= n
        v += n + rng.choice((0, 0, 0, 1, 16))
        d += n + rng.choice((0, 0, 0, 0, 7))
    next_data = d
    snaps = []
    for s in range(1, a.snapshots + 1):
        nchg = int(per_dev * a.change)
        changed = sorted(rng.sample(range(per_dev), nchg))  # indexes into the origin's mappings
        runs = []  # (virt, data, len, time)
        ci = 0
        idx = 0  # mapping index at the start of the current origin run
        for (ov, od, n) in origin:
            pos = 0
            while ci < len(changed) and changed[ci] < idx + n:
                c = changed[ci] - idx
                if c > pos:
                    runs.append((ov + pos, od + pos, c - pos, 0))
                runs.append((ov + c, next_data, 1, s))
                next_data += 1
                pos = c + 1
                ci += 1
            if pos < n:
                runs.append((ov + pos, od + pos, n - pos, 0))
            idx += n
        snaps.append(runs)
    nr_data = next_data + 1000

    out = sys.stdout
    w = out.write
    w(f'<superblock uuid="" time="{a.snapshots}" transaction="{a.snapshots + 1}" flags="0" '
      f'version="2" data_block_size="128" nr_data_blocks="{nr_data}">\n')

    def device(dev_id, runs, ctime, stime, with_time):
        total = sum(r[2] for r in runs)
        w(f'  <device dev_id="{dev_id}" mapped_blocks="{total}" transaction="{ctime}" '
          f'creation_time="{ctime}" snap_time="{stime}">\n')
        buf = []
        for r in runs:
            vv, dd, n = r[0], r[1], r[2]
            t = r[3] if with_time else 0
            if n == 1:
                buf.append(f'    <single_mapping origin_block="{vv}" data_block="{dd}" time="{t}"/>\n')
            else:
                buf.append(f'    <range_mapping origin_begin="{vv}" data_begin="{dd}" length="{n}" time="{t}"/>\n')
            if len(buf) >= 10000:
                w("".join(buf))
                buf.clear()
        w("".join(buf))
        w('  </device>\n')

    device(1, origin, 0, a.snapshots, False)
    for s, runs in enumerate(snaps, 1):
        device(1 + s, runs, s, s, True)
    w('</superblock>\n')


if __name__ == "__main__":
    main()
