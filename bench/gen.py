#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark corpus generator: thin_dump XML of a realistic pool, streamed (memory grows
with the number of runs, not of mappings). An origin whose mappings come in runs with holes
and allocation gaps, and snapshots that each overwrote a fraction of it in short extents whose
new data blocks were allocated in the order the writes happened (not sorted: fragmentation).

  bench/gen.py [--origin N] [--snapshots S] [--change F] [--spread K] [--seed X] > pool.xml

With --spread K the origin's data runs are scattered over a data device of about K blocks
(e.g. 2**33), for pools whose data device has billions of blocks."""
import argparse
import random
import sys


def _origin_runs(rng, origin_len, spread):
    """[(virt, data, len)], and the first data block after them."""
    runs = []
    v = d = 0
    left = origin_len
    mean = 20
    gap = max(0, spread // max(1, origin_len // mean) - mean) if spread else 0
    while left:
        n = min(left, rng.randint(1, 2 * mean - 1))
        runs.append((v, d, n))
        left -= n
        v += n + rng.choice((0, 0, 0, 1, 5, 100))
        d += n + (rng.randint(0, 2 * gap) if gap else rng.choice((0, 0, 0, 3)))
    return runs, d


def _changes(rng, origin_len, change):
    """Sorted disjoint extents [(index into the origin's mappings, len)] covering ~change."""
    target = int(origin_len * change)
    marks = bytearray(origin_len)
    done = 0
    while done < target:
        n = min(rng.choice((1, 1, 1, 2, 4, 8, 16)), target - done)
        i = rng.randrange(0, max(1, origin_len - n))
        if any(marks[i:i + n]):
            continue
        marks[i:i + n] = b"\1" * n
        done += n
    out = []
    i = 0
    while i < origin_len:
        j = marks.find(1, i)
        if j < 0:
            break
        k = marks.find(0, j)
        k = origin_len if k < 0 else k
        out.append((j, k - j))
        i = k
    return out


def _split(runs, ext):
    """Origin runs with the overwritten extents cut out: [(virt, data, len, new_index)], with
    new_index the extent's number for overwritten pieces, -1 for shared ones."""
    out = []
    ei = 0
    idx = 0
    for (v, d, n) in runs:
        pos = 0
        while pos < n:
            while ei < len(ext) and ext[ei][0] + ext[ei][1] <= idx + pos:
                ei += 1
            if ei < len(ext) and ext[ei][0] <= idx + pos:
                end = min(n, ext[ei][0] + ext[ei][1] - idx)
                out.append((v + pos, d + pos, end - pos, ei))
            else:
                end = min(n, ext[ei][0] - idx) if ei < len(ext) else n
                out.append((v + pos, d + pos, end - pos, -1))
            pos = end
        idx += n
    return out


def write_pool(w, origin_len, snapshots=3, change=0.1, spread=0, seed=1):
    """Writes the XML through w(str); returns (nr_mappings, nr_data_blocks)."""
    rng = random.Random(seed)
    runs, next_data = _origin_runs(rng, origin_len, spread)
    snaps = []
    for s in range(1, snapshots + 1):
        ext = _changes(rng, origin_len, change)
        # Allocation order = write order: a random permutation of the extents.
        order = list(range(len(ext)))
        rng.shuffle(order)
        base = [0] * len(ext)
        for e in order:
            base[e] = next_data
            next_data += ext[e][1]
        snaps.append((ext, base))
    nr_data = next_data + 1000
    w(f'<superblock uuid="" time="{snapshots}" transaction="{snapshots + 1}" flags="0" '
      f'version="2" data_block_size="128" nr_data_blocks="{nr_data}">\n')

    def device(dev_id, pieces, ctime, t):
        w(f'  <device dev_id="{dev_id}" mapped_blocks="{origin_len}" transaction="{ctime}" '
          f'creation_time="{ctime}" snap_time="{snapshots if dev_id == 1 else ctime}">\n')
        buf = []
        for (v, d, n, tm) in pieces:
            if n == 1:
                buf.append(f'    <single_mapping origin_block="{v}" data_block="{d}" time="{tm}"/>\n')
            else:
                buf.append(f'    <range_mapping origin_begin="{v}" data_begin="{d}" '
                           f'length="{n}" time="{tm}"/>\n')
            if len(buf) >= 8192:
                w("".join(buf))
                buf.clear()
        w("".join(buf))
        w('  </device>\n')

    device(1, ((v, d, n, 0) for (v, d, n) in runs), 0, 0)
    for s, (ext, base) in enumerate(snaps, 1):
        pieces = []
        for (v, d, n, e) in _split(runs, ext):
            if e < 0:
                pieces.append((v, d, n, 0))
            else:
                # Offset of this piece inside its extent: the extent starts at mapping index
                # ext[e][0]; the piece is where the origin's virtual run left off.
                pieces.append((v, None, n, e))
        # Resolve data blocks of overwritten pieces in order (pieces of one extent are
        # consecutive, an extent may span two origin runs).
        out = []
        seen = {}
        for (v, d, n, e) in pieces:
            if d is None:
                off = seen.get(e, 0)
                seen[e] = off + n
                out.append((v, base[e] + off, n, s))
            else:
                out.append((v, d, n, 0))
        device(1 + s, out, s, s)
    w('</superblock>\n')
    return origin_len * (snapshots + 1), nr_data


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--origin", type=int, default=1_000_000)
    ap.add_argument("--snapshots", type=int, default=3)
    ap.add_argument("--change", type=float, default=0.1)
    ap.add_argument("--spread", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    out = sys.stdout
    nr, nd = write_pool(out.write, a.origin, a.snapshots, a.change, a.spread, a.seed)
    print(f"{nr} mappings, {nd} data blocks", file=sys.stderr)


if __name__ == "__main__":
    main()
