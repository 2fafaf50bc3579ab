#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Writes thin_dump XML for the benchmark pool: device 1 is an origin with N mappings (virtual
blocks 0..N-1, data allocated in runs of 1..64 blocks), device 2 a snapshot of it where
CHANGE (default 1%) of the blocks were overwritten, in extents of 1..256 blocks."""
import random
import sys


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    change = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
    rng = random.Random(42)
    origin = []  # (vbegin, dbegin, len)
    v = d = 0
    while v < n:
        ln = min(rng.randint(1, 64), n - v)
        origin.append((v, d, ln))
        v += ln
        d += ln + rng.choice((0, 0, 1, 7))
    next_data = d + 1000
    # Overwritten extents in the snapshot, sorted and disjoint.
    target = int(n * change)
    marks = set()
    extents = []
    done = 0
    while done < target:
        ln = rng.randint(1, 256)
        b = rng.randrange(0, n - ln)
        if any(b // 4096 + k in marks for k in (0,)):
            continue
        marks.add(b // 4096)
        extents.append((b, ln))
        done += ln
    extents.sort()
    snap = []
    ei = 0
    for (vb, db, ln) in origin:
        pos = vb
        end = vb + ln
        while pos < end:
            while ei < len(extents) and extents[ei][0] + extents[ei][1] <= pos:
                ei += 1
            if ei < len(extents) and extents[ei][0] <= pos:
                e_end = min(end, extents[ei][0] + extents[ei][1])
                snap.append((pos, next_data, e_end - pos, 2))
                next_data += e_end - pos
                pos = e_end
            else:
                nxt = min(end, extents[ei][0]) if ei < len(extents) else end
                snap.append((pos, db + pos - vb, nxt - pos, 0))
                pos = nxt
    nr_data = next_data + 1000
    w = sys.stdout.write
    w(f'<superblock uuid="" time="2" transaction="2" flags="0" version="2" '
      f'data_block_size="128" nr_data_blocks="{nr_data}">\n')
    for dev, maps, ct in ((1, [(a, b, c, 0) for a, b, c in origin], 0), (2, snap, 1)):
        w(f'  <device dev_id="{dev}" mapped_blocks="{n}" transaction="{dev - 1}" '
          f'creation_time="{ct}" snap_time="1">\n')
        for (vb, db, ln, t) in maps:
            if ln == 1:
                w(f'    <single_mapping origin_block="{vb}" data_block="{db}" time="{t}"/>\n')
            else:
                w(f'    <range_mapping origin_begin="{vb}" data_begin="{db}" length="{ln}" time="{t}"/>\n')
        w('  </device>\n')
    w('</superblock>\n')


if __name__ == "__main__":
    main()
