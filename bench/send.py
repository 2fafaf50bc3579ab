#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_send / thin_receive throughput on files: a pool whose snapshots 1 -> 2 differ by
GIB GiB of data (runs of 1-64 blocks of 64 KiB scattered over a larger data image), measured
against `dd iflag=direct bs=1M` reading (and `dd oflag=direct bs=1M` writing) the same number
of bytes on the same disk, and against the per-range dd loop of the old recipe (one dd per
thin_delta range). Prints a Markdown table. Usage: bench/send.py [--gib 1] [--dir DIR] [--bin build/bin]"""
import argparse
import os
import random
import re
import subprocess
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--gib", type=float, default=1.0)
p.add_argument("--dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bench-send"))
p.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin"))
p.add_argument("--reps", type=int, default=3)
p.add_argument("--layout", choices=["shuffled", "sequential"], default="shuffled",
               help="virtual order of the runs vs their order on the data device")
a = p.parse_args()
os.makedirs(a.dir, exist_ok=True)
BS = 128 * 512
diff_blocks = int(a.gib * (1 << 30)) // BS
nr_data = int(diff_blocks * 1.5) + 1024
V = diff_blocks * 2
rng = random.Random(1)

# Device 1: a few mappings; device 2: runs covering diff_blocks blocks, placed at random
# distinct data blocks (runs of 1..64 blocks, shuffled run order: a fragmented pool).
runs = []
left = diff_blocks
while left:
    n = min(left, rng.randint(1, 64))
    runs.append(n)
    left -= n
data_starts = []
d = 0
for n in runs:
    d += rng.randint(0, 8)
    data_starts.append(d)
    d += n
assert d < nr_data
order = list(range(len(runs)))
if a.layout == "shuffled":
    rng.shuffle(order)
xml = os.path.join(a.dir, "pool.xml")
with open(xml, "w") as f:
    f.write(f'<superblock uuid="" time="1" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="{nr_data}">\n')
    f.write('  <device dev_id="1" mapped_blocks="1" transaction="0" creation_time="0" snap_time="1">\n'
            f'    <single_mapping origin_block="0" data_block="{nr_data - 1}" time="0"/>\n  </device>\n')
    f.write(f'  <device dev_id="2" mapped_blocks="{diff_blocks}" transaction="0" creation_time="1" snap_time="1">\n')
    v = 0
    for i in order:
        v += rng.randint(0, 4)
        f.write(f'    <range_mapping origin_begin="{v}" data_begin="{data_starts[i]}" length="{runs[i]}" time="1"/>\n')
        v += runs[i]
    f.write('  </device>\n</superblock>\n')
size_sectors = (v + 16) * 128
meta = os.path.join(a.dir, "pool.meta")
with open(meta, "wb") as f:
    f.truncate(64 << 20)
subprocess.run([os.path.join(a.bin, "thin_restore"), "-i", xml, "-o", meta], check=True)
data = os.path.join(a.dir, "pool.data")
if not os.path.exists(data) or os.path.getsize(data) != nr_data * BS:
    chunk = bytes(rng.getrandbits(8) for _ in range(BS))
    with open(data, "wb") as f:
        for b in range(nr_data):
            f.write(chunk[:BS - 8] + b.to_bytes(8, "little"))
subprocess.run(["sync"])
diff_bytes = diff_blocks * BS


def timed(cmd, **kw):
    best = None
    for _ in range(a.reps):
        subprocess.run(["sync"])
        t = time.monotonic()
        subprocess.run(cmd, shell=True, check=True, **kw)
        dt = time.monotonic() - t
        best = dt if best is None else min(best, dt)
    return best


B = a.bin
send_args = f"{B}/thin_send --metadata-dev {meta} --data-dev {data} --snap1 1 --snap2 2 --size {size_sectors}"
stream = os.path.join(a.dir, "s.stream")
target = os.path.join(a.dir, "target.img")
ddfile = os.path.join(a.dir, "dd.out")
rows = []
t_send = timed(f"{send_args} > /dev/null")
t_dd_read = timed(f"dd if={data} of=/dev/null bs=1M iflag=direct count={diff_bytes >> 20} status=none")
# The recipe's loop: one dd per range of thin_delta's output, reading from the data image at
# the mapped blocks (as the recipe reads the thin device).
delta = subprocess.run([f"{B}/thin_delta", "--snap1", "1", "--snap2", "2", meta], capture_output=True, text=True, check=True).stdout
ranges = [(int(m.group(1)), int(m.group(2))) for m in re.finditer(r'<(?:right_only|different) begin="(\d+)" length="(\d+)"', delta)]
# thin_delta gives virtual ranges; the recipe reads the thin device there: here the equivalent
# is reading the same number of blocks from the data image at the mapped runs.
loop = os.path.join(a.dir, "loop.sh")
with open(loop, "w") as f:
    for i in order:
        f.write(f"dd if={data} of=/dev/null bs={BS} skip={data_starts[i]} count={runs[i]} iflag=direct status=none\n")
t_loop = timed(f"bash {loop}")
subprocess.run(f"{send_args} -o {stream}", shell=True, check=True)
env = dict(os.environ, THINMETA_RECEIVE_STATE_DIR=os.path.join(a.dir, "state"))


def receive_once():
    if os.path.exists(target):
        os.unlink(target)
    subprocess.run(f"{B}/thin_receive --force {target} < {stream}", shell=True, check=True, env=env)


best_recv = None
for _ in range(a.reps):
    if os.path.exists(target):
        os.unlink(target)
    subprocess.run(["sync"])
    t = time.monotonic()
    subprocess.run(f"{B}/thin_receive --force {target} < {stream} && sync", shell=True, check=True, env=env)
    dt = time.monotonic() - t
    best_recv = dt if best_recv is None else min(best_recv, dt)
t_dd_write = timed(f"rm -f {ddfile}; dd if={stream} of={ddfile} bs=1M oflag=direct count={diff_bytes >> 20} status=none && sync")
best_pipe = None
for _ in range(a.reps):
    if os.path.exists(target):
        os.unlink(target)
    subprocess.run(["sync"])
    t = time.monotonic()
    subprocess.run(f"{send_args} | {B}/thin_receive --force {target} && sync", shell=True, check=True, env=env)
    dt = time.monotonic() - t
    best_pipe = dt if best_pipe is None else min(best_pipe, dt)


def mbs(t):
    return diff_bytes / t / 1e6


print(f"{diff_bytes / (1 << 30):.2f} GiB of data in {len(runs)} runs of 1-64 blocks of 64 KiB, {a.layout} on the data device; best of {a.reps}\n")
print("| case | seconds | MB/s | vs dd bs=1M direct |")
print("|---|---|---|---|")
print(f"| dd iflag=direct bs=1M (read, sequential) | {t_dd_read:.2f} | {mbs(t_dd_read):.0f} | 1.00 |")
print(f"| thin_send 1 2 > /dev/null (read) | {t_send:.2f} | {mbs(t_send):.0f} | {t_dd_read / t_send:.2f} |")
print(f"| per-range dd loop (read, {len(runs)} dd processes) | {t_loop:.2f} | {mbs(t_loop):.0f} | {t_dd_read / t_loop:.2f} |")
print(f"| dd oflag=direct bs=1M (write) + sync | {t_dd_write:.2f} | {mbs(t_dd_write):.0f} | 1.00 |")
print(f"| thin_receive (write a file) + sync | {best_recv:.2f} | {mbs(best_recv):.0f} | {t_dd_write / best_recv:.2f} |")
print(f"| thin_send \\| thin_receive + sync | {best_pipe:.2f} | {mbs(best_pipe):.0f} | {t_dd_read / best_pipe:.2f} (of the read) |")
