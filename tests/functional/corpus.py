# SPDX-License-Identifier: GPL-3.0-or-later
"""A varied, deterministic corpus of thin_dump XML, each restored to binary metadata by the
reference thin_restore (0.9.0). Cases: empty pools, several devices, snapshots sharing data
blocks, single and range mappings, trees of 3+ levels, device ids up to 2^24-1, data block
sizes 128..2^21 sectors, times up to 2^24-1, the needs_check flag."""
import os
import random
import subprocess

VERSION = "4"  # bump when the cases change, to regenerate cached corpora


def xml_pool(time, transaction, dbs, nr_data, devices, flags=0):
    """devices: [(dev_id, transaction, ctime, stime, [(origin, data, time), ...])]"""
    out = [f'<superblock uuid="" time="{time}" transaction="{transaction}" flags="{flags}" '
           f'version="2" data_block_size="{dbs}" nr_data_blocks="{nr_data}">']
    for dev_id, tr, ct, st, maps in devices:
        maps = sorted(maps)
        out.append(f'  <device dev_id="{dev_id}" mapped_blocks="{len(maps)}" transaction="{tr}" '
                   f'creation_time="{ct}" snap_time="{st}">')
        i = 0
        while i < len(maps):
            o, d, t = maps[i]
            n = 1
            while (i + n < len(maps) and maps[i + n] == (o + n, d + n, t)):
                n += 1
            if n == 1:
                out.append(f'    <single_mapping origin_block="{o}" data_block="{d}" time="{t}"/>')
            else:
                out.append(f'    <range_mapping origin_begin="{o}" data_begin="{d}" length="{n}" time="{t}"/>')
            i += n
        out.append('  </device>')
    out.append('</superblock>')
    return "\n".join(out) + "\n"


def snapshot_family(rng, nr_data, origin_len, nr_snaps, change, base_id=1, next_data=None):
    """An origin and snapshots sharing most data blocks; each snapshot overwrites a fraction."""
    devs = []
    nd = next_data if next_data is not None else 0
    origin = []
    o = 0
    while len(origin) < origin_len:
        run = rng.randint(1, 40)
        for k in range(run):
            if len(origin) >= origin_len:
                break
            origin.append((o + k, nd, 0))
            nd += 1
        o += run + rng.choice([0, 0, 1, 5, 100])
        nd += rng.choice([0, 0, 0, 3])
    devs.append((base_id, 0, 0, nr_snaps, origin))
    for s in range(1, nr_snaps + 1):
        maps = []
        for (vo, vd, vt) in origin:
            if rng.random() < change:
                maps.append((vo, nd, s))
                nd += 1
            else:
                maps.append((vo, vd, vt))
        devs.append((base_id + s, s, s, s, maps))
    assert nd <= nr_data, (nd, nr_data)
    return devs, nd


def cases():
    rng = random.Random(20261123)
    c = {}
    c["tiny"] = xml_pool(1, 5, 128, 1000, [
        (1, 0, 0, 1, [(0, 10, 0), (1, 11, 0), (5, 20, 1)]),
        (7, 3, 1, 1, [])])
    c["empty_pool"] = xml_pool(0, 0, 128, 16, [])
    c["empty_devices"] = xml_pool(3, 9, 128, 100, [(i, i, 1, 2, []) for i in range(0, 200)])
    c["needs_check"] = xml_pool(2, 1, 256, 64, [(1, 0, 0, 0, [(i, 63 - i, 2) for i in range(30)])],
                                flags=1)
    c["max_ids"] = xml_pool(16777215, 77, 128, 4096, [
        (0, 1, 0, 0, [(0, 0, 0)]),
        (4294967, 2, 1, 1, [(1 << 30, 1, 1)]),
        (16777214, 3, 2, 2, [(2, 2, 2)]),
        (16777215, 4, 3, 3, [((1 << 40) + 5, 3, 16777215)])])
    devs, _ = snapshot_family(rng, 20000, 3000, 3, 0.1)
    c["snapshots"] = xml_pool(3, 42, 128, 20000, devs)
    devs, _ = snapshot_family(rng, 1 << 22, 100000, 1, 0.02)
    c["deep"] = xml_pool(1, 3, 2048, 1 << 22, devs)
    devs, _ = snapshot_family(rng, 50000, 2000, 2, 0.3)
    c["big_blocks"] = xml_pool(2, 8, 2097152, 50000, devs)
    many = []
    nd = 0
    for i in range(300):
        n = rng.randint(0, 20)
        many.append((i * 37 + 1, i, i % 5, i % 7, [(rng.randint(0, 10) * 1000 + k, nd + k, i % 3)
                                                    for k in range(n)]))
        nd += n
    c["many_devices"] = xml_pool(9, 1000, 128, nd + 10, many)
    scattered = []
    used = set()
    for k in range(5000):
        o = rng.randint(0, 1 << 32)
        if o in used:
            continue
        used.add(o)
        scattered.append((o, rng.randint(0, 999999), rng.randint(0, (1 << 24) - 1)))
    c["scattered"] = xml_pool(16777215, 2**63, 1024, 1000000, [(3, 1, 1, 1, scattered)])
    return c


def build(outdir, thin_restore):
    os.makedirs(outdir, exist_ok=True)
    stamp = os.path.join(outdir, "VERSION")
    out = []
    fresh = os.path.exists(stamp) and open(stamp).read() == VERSION
    for name, text in sorted(cases().items()):
        xml = os.path.join(outdir, name + ".xml")
        binp = os.path.join(outdir, name + ".bin")
        out.append((name, xml, binp))
        if fresh:
            continue
        with open(xml, "w") as f:
            f.write(text)
        nr_maps = text.count("_mapping")
        size = max(1024, 64 + nr_maps // 40 + text.count("<device") * 2) * 4096 * 4
        with open(binp, "wb") as f:
            f.truncate(size)
        subprocess.run([thin_restore, "-i", xml, "-o", binp], check=True,
                       stdout=subprocess.DEVNULL)
    with open(stamp, "w") as f:
        f.write(VERSION)
    return out


if __name__ == "__main__":
    import sys
    for n, x, b in build(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "/usr/sbin/thin_restore"):
        print(n, x, b)
