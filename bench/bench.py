#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark suite (not part of the tests). Generates its corpus (bench/gen.py: an origin
and three snapshots sharing ~90% of its blocks, fragmented; restored by the reference's
thin_restore as in the issue, or by ours with --restore-with ours), then runs each tool, ours
and the reference 0.9.0 alternately, several times, and prints a table of median wall time, CPU time
and peak RSS with the ratios reference/ours, and each wall time as a multiple of the image's I/O
floor (every used metadata block read once with O_DIRECT and checksummed, bench_floor).
thin_restore's yardstick is the write floor instead (its own row, "restore floor": the XML read
once and as many blocks as our restore writes for it, written the same way; bench_floor --write).

  bench/bench.py [--sizes 16m,huge,tiny] [--reps 5] [--slow-reps 1] [--only check,dump]
                 [--restore-with ref|ours] [--out build/bench] [--ours build/bin]
                 [--ref /usr/sbin] [--timeout 300] [--regime cold|warm|loop] [--ours-only]

Sizes: 1m, 4m, 8m (the issue's image: origin of 2 million blocks + 3 snapshots, 8 million
mappings), 16m (16.8 million mappings: origin of 4.2 million blocks + 3 snapshots), 100m (100
million mappings, restored by ours; ~1.6 GB image, ~0.8 GB XML: use --ours-only), huge
(4 million mappings on a data device of over 2^32 blocks: check and ls memory stay bounded), tiny
(start-up and exit: -V and a 4-mapping image; their wall time is the median of 30 direct
runs, and the time to spawn /bin/true is printed beside them). Ours reads with O_DIRECT through libaio
(THINMETA_IO_ENGINE=aio), as the reference does. --slow-reps applies to the cases where the
reference takes minutes (restore, repair, the huge image).

Regimes (--regime): `cold` (default) as above, the floor read with O_DIRECT: what a disk slower
than the CPU gives. `warm`: the image stays in the page cache and ours reads it with the sync
engine (THINMETA_IO_ENGINE=sync), the floor being the same blocks read from the page cache
(bench_floor --warm): what a device faster than the CPU looks like. `loop`: the image in the
page cache behind a read-only loop device, read with O_DIRECT by the asynchronous engine (as
on a block device), the floor read the same way. Each row also gives ns of CPU (user + system)
per mapping."""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen  # noqa: E402

# The engine ours reads with (THINMETA_IO_ENGINE): aio unless the environment or --regime warm
# says otherwise.
ENGINE = [os.environ.get("THINMETA_IO_ENGINE", "aio")]

# name: (origin blocks, snapshots, data spread)
SIZES = {"1m": (250_000, 3, 0), "4m": (1_050_000, 3, 0), "8m": (2_000_000, 3, 0),
         "16m": (4_200_000, 3, 0), "huge": (1_000_000, 3, 1 << 32),
         "100m": (25_000_000, 3, 0)}
# The sizes 0.9.0's thin_restore builds by default (the others: ours; 0.9.0 would take an hour
# at 100m).
REF_RESTORED = ("1m", "4m", "8m", "16m")
ALL_FIELDS = ("DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_SECTORS,EXCLUSIVE_SECTORS,"
              "SHARED_SECTORS,MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,MAPPED,EXCLUSIVE,SHARED,"
              "TRANSACTION,CREATE_TIME,SNAP_TIME")
LS4 = "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS"
TINY_XML = ('<superblock uuid="" time="1" transaction="1" flags="0" version="2" '
            'data_block_size="128" nr_data_blocks="100">\n'
            '  <device dev_id="1" mapped_blocks="4" transaction="0" creation_time="0" '
            'snap_time="0">\n'
            '    <range_mapping origin_begin="0" data_begin="0" length="4" time="0"/>\n'
            '  </device>\n</superblock>\n')


def run_timed(argv, timeout=None):
    """(wall s, cpu s, peak RSS KiB, exit code) of one run, measured by GNU time (the rusage
    of a child of this Python process would mix in Python's own pages); None if it ran longer
    than `timeout` seconds (it is then killed). Dirty data is synced first, untimed: 0.9.0's
    thin_restore and thin_repair exit without flushing gigabytes of writes, and the next run's
    own flush would otherwise pay for them."""
    os.sync()
    tf = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench-time-{os.getpid()}")
    env = dict(os.environ, THINMETA_IO_ENGINE=ENGINE[0])
    t0 = time.perf_counter()
    p = subprocess.Popen(["/usr/bin/time", "-o", tf, "-f", "%U %S %M %x"] + argv,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                         start_new_session=True)
    # The timeout by a timer thread: Popen.wait(timeout=...) polls with sleeps of up to 50 ms,
    # which rounded every wall time up to the next ~50 ms; a plain wait() returns at the exit.
    killed = []
    timer = None
    if timeout is not None:
        def kill():
            killed.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended meanwhile
                killed.clear()
        timer = threading.Timer(timeout, kill)
        timer.start()
    p.wait()
    wall = time.perf_counter() - t0
    if timer is not None:
        timer.cancel()
    if killed:
        return None
    u, s, m, x = open(tf).read().split()[-4:]
    os.unlink(tf)
    return wall, float(u) + float(s), int(m), int(x)


def run_startup(argv, runs=30):
    """Median wall time of `runs` back-to-back runs started directly (no GNU time, whose own
    start-up would dominate a run of a few milliseconds)."""
    env = dict(os.environ, THINMETA_IO_ENGINE=ENGINE[0])
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def prepare(out, name, ours, restorer):
    """Generates <name>.xml and restores it into <name>-<restorer>.bin with `restorer` (a
    directory holding thin_restore)."""
    xml = os.path.join(out, f"{name}.xml")
    who = "ours" if restorer == ours else "ref"
    img = os.path.join(out, f"{name}-{who}.bin")
    meta = os.path.join(out, f"{name}-{who}.info")
    if os.path.exists(meta) and os.path.exists(xml):
        nr, nr_data = map(int, open(meta).read().split())
        return xml, img, nr, nr_data
    if not os.path.exists(xml):
        print(f"# generating {name}", file=sys.stderr, flush=True)
        with open(xml + ".tmp", "w") as f:
            if name == "tiny":
                f.write(TINY_XML)
            else:
                origin, snaps, spread = SIZES[name]
                gen.write_pool(f.write, origin, snaps, 0.1, spread)
        os.rename(xml + ".tmp", xml)
    nr, nr_data = xml_size(xml)
    print(f"# restoring {name} with {who} thin_restore", file=sys.stderr, flush=True)
    with open(img, "wb") as f:
        f.truncate(scratch_size(nr, nr_data))
    subprocess.run([os.path.join(restorer, "thin_restore"), "-i", xml, "-o", img], check=True,
                   stdout=subprocess.DEVNULL)
    with open(meta, "w") as f:
        f.write(f"{nr} {nr_data}\n")
    return xml, img, nr, nr_data


def xml_size(xml):
    """(mappings, nr_data_blocks) of a generated XML file."""
    nr, nr_data = 0, 0
    with open(xml) as f:
        for line in f:
            if "<superblock" in line:
                nr_data = int(line.split('nr_data_blocks="')[1].split('"')[0])
            elif "<device" in line:
                nr += int(line.split('mapped_blocks="')[1].split('"')[0])
                # Generated files give each device's mapped_blocks: no need to read mappings.
    return nr, nr_data


def scratch_size(nr, nr_data):
    # Room for 0.9.0's restore (half-full leaves, no sharing) and the data space map's bitmaps.
    return max(64 << 20, nr * 96 + (nr_data // 16000 + 1024) * 4096)


def cases(name, xml, img, nr_data, scratch):
    """[(label, tool, args, slow)]"""
    if name == "tiny":
        return [("start-up: -V", "thin_dump", ["-V"], False),
                ("start-up: dump tiny image", "thin_dump", [img], False),
                ("start-up: check tiny image", "thin_check", [img], False)]
    if name == "huge":
        # 0.9.0 takes minutes here (thin_ls: a counter per data block): --slow-reps.
        return [("check", "thin_check", [img], True),
                ("check --skip-mappings", "thin_check", ["--skip-mappings", img], False),
                ("ls all fields", "thin_ls", ["-o", ALL_FIELDS, img], True)]
    return [
        ("check", "thin_check", [img], False),
        ("check --skip-mappings", "thin_check", ["--skip-mappings", img], False),
        ("dump xml", "thin_dump", [img], False),
        ("dump human_readable", "thin_dump", ["-f", "human_readable", img], False),
        ("restore", "thin_restore", ["-i", xml, "-o", scratch], True),
        ("repair", "thin_repair", ["-i", img, "-o", scratch], True),
        ("delta snap 2 vs origin 1", "thin_delta", ["--snap1", "1", "--snap2", "2", img], False),
        ("ls all fields", "thin_ls", ["-o", ALL_FIELDS, img], False),
        ("ls 4 fields", "thin_ls", ["-o", LS4, img], False),  # the 1.3.3 row
        ("rmap whole data range", "thin_rmap", ["--region", f"0..{nr_data}", img], False),
    ]


def ours_only_cases(img, scratch):
    """[(label, tool, args)] of the tools 0.9.0 does not have (1.x's pack and unpack), with
    the time to copy the image (read it and write it, fsync'd) as their yardstick."""
    pack = scratch + ".pack"
    return [
        ("pack", "thin_metadata_pack", ["-i", img, "-o", pack, "-f"]),
        ("unpack", "thin_metadata_unpack", ["-i", pack, "-o", scratch, "-f"]),
        ("copy the image (dd, fsync)", "/usr/bin/dd",
         [f"if={img}", f"of={scratch}", "bs=4M", "conv=fsync,notrunc"]),
    ]


def ensure_built(ours):
    if ours != os.path.join(TOP, "build", "bin"):
        return
    if all(os.path.exists(os.path.join(ours, t)) for t in ("thin_restore", "bench_floor")):
        return
    print("# building into build/", file=sys.stderr, flush=True)
    subprocess.run(["cmake", "-S", TOP, "-B", os.path.join(TOP, "build")], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["make", "-C", os.path.join(TOP, "build"), "-j2", "thinmeta", "bench_floor"],
                   check=True, stdout=subprocess.DEVNULL)


def measure_floor(floor_bin, img, reps, warm=False):
    """(median wall s, median CPU s, used blocks) of bench_floor on img."""
    floors, cpus, used = [], [], 0
    for _ in range(reps):
        out = subprocess.run([floor_bin] + (["--warm"] if warm else []) + [img],
                             capture_output=True, text=True, check=True).stdout.split()
        used = int(out[0])
        floors.append(float(out[1]))
        cpus.append(float(out[3]))
    return statistics.median(floors), statistics.median(cpus), used


def measure_write_floor(ours, xml, scratch, reps):
    """(median wall s, median CPU s, blocks) of bench_floor --write: the XML read once and as
    many blocks written to scratch as our thin_restore writes for it, the way it writes them
    (the same engine, batches and flushes). The count is the used blocks of one untimed
    restore of ours into scratch."""
    env = dict(os.environ, THINMETA_IO_ENGINE=ENGINE[0])
    subprocess.run([os.path.join(ours, "thin_restore"), "-i", xml, "-o", scratch], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    blocks = subprocess.run([os.path.join(ours, "bench_floor"), "--warm", scratch],
                            capture_output=True, text=True, check=True).stdout.split()[0]
    walls, cpus = [], []
    for _ in range(reps):
        os.sync()
        out = subprocess.run([os.path.join(ours, "bench_floor"), "--write", xml, scratch, blocks],
                             capture_output=True, text=True, check=True, env=env).stdout.split()
        walls.append(float(out[1]))
        cpus.append(float(out[3]))
    return statistics.median(walls), statistics.median(cpus), int(blocks)


def cache_file(path):
    """Reads path once so that it is in the page cache (warm and loop regimes)."""
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


class LoopDevice:
    """A read-only loop device over an image (the kernel's page cache of the file serves its
    O_DIRECT reads: a device as fast as memory), detached on exit."""

    def __init__(self, img):
        self.dev = subprocess.run(["losetup", "--read-only", "--find", "--show", img],
                                  capture_output=True, text=True, check=True).stdout.strip()

    def close(self):
        subprocess.run(["losetup", "-d", self.dev], check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="16m,huge,tiny")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--slow-reps", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated label prefixes")
    ap.add_argument("--out", default=os.path.join(TOP, "build", "bench"))
    ap.add_argument("--ours", default=os.path.join(TOP, "build", "bin"))
    ap.add_argument("--ref", default="/usr/sbin")
    ap.add_argument("--restore-with", choices=("ref", "ours"), default="ref",
                    help="which thin_restore builds the 1m/4m/16m images (the issue's are "
                         "restored by 0.9.0, which takes about a minute at 16m; huge and tiny "
                         "are always restored by ours)")
    ap.add_argument("--timeout", type=int, default=300,
                    help="kill a run after this many seconds (0.9.0 thin_ls on the huge image)")
    ap.add_argument("--ours-only", action="store_true",
                    help="run only ours (the 100m image, where 0.9.0 takes many minutes a tool)")
    ap.add_argument("--regime", choices=("cold", "warm", "loop"), default="cold",
                    help="cold: O_DIRECT reads of the image (the disk bounds); warm: the image "
                         "in the page cache, ours with the sync engine; loop: the cached "
                         "image behind a read-only loop device, O_DIRECT async reads")
    a = ap.parse_args()
    if a.regime == "warm":
        ENGINE[0] = "sync"
    ensure_built(a.ours)
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for size in a.sizes.split(","):
        restorer = a.ref if a.restore_with == "ref" and size in REF_RESTORED else a.ours
        xml, img, nr, nr_data = prepare(a.out, size, a.ours, restorer)
        label_img = size + (" (0.9.0-restored)" if restorer == a.ref else "")
        label_img += {"cold": "", "warm": ", page cache", "loop": ", loop device"}[a.regime]
        scratch = os.path.join(a.out, f"{size}.scratch")
        with open(scratch, "wb") as f:
            f.truncate(scratch_size(nr, nr_data))
        loop = None
        if a.regime != "cold":
            cache_file(img)
        if a.regime == "loop":
            loop = LoopDevice(img)
            img = loop.dev
        floor, floor_cpu, used = measure_floor(os.path.join(a.ours, "bench_floor"), img, a.reps,
                                               warm=a.regime == "warm")
        if size == "tiny":
            print(f"# spawning /bin/true from here takes {run_startup(['/bin/true']) * 1000:.1f} ms "
                  "(included in the start-up rows)", file=sys.stderr, flush=True)
        print(f"# {size}: {nr} mappings, {nr_data} data blocks, {used} metadata blocks used, "
              f"{a.regime} floor {floor:.3f} s ({floor_cpu:.3f} s CPU, "
              f"{floor_cpu * 1e9 / max(nr, 1):.1f} ns a mapping)", file=sys.stderr, flush=True)
        rows.append((label_img, f"floor ({a.regime})", (floor, floor_cpu, 0, "0"), None, floor,
                     nr))
        for label, tool, args, slow in cases(size, xml, img, nr_data, scratch):
            if a.only and not any(label.startswith(o) for o in a.only.split(",")):
                continue
            ours_tool = os.path.join(a.ours, tool)
            if not os.path.exists(ours_tool):
                rows.append((label_img, label, None, None, floor, nr))
                continue
            row_floor = floor
            if tool == "thin_restore":  # its yardstick: the write floor (read input + write)
                wf, wf_cpu, blocks = measure_write_floor(a.ours, xml, scratch, a.reps)
                print(f"# {size}: restore writes {blocks} blocks; write floor {wf:.3f} s "
                      f"({wf_cpu:.3f} s CPU)", file=sys.stderr, flush=True)
                rows.append((label_img, "restore floor (write + read input)",
                             (wf, wf_cpu, 0, "0"), None, wf, nr))
                row_floor = wf
            who_runs = [("ours", ours_tool)] + ([] if a.ours_only else
                                                [("ref", os.path.join(a.ref, tool))])
            res = {who: [] for who, _ in who_runs}
            for _ in range(a.slow_reps if slow else a.reps):
                for who, t in who_runs:
                    r = run_timed([t] + args, a.timeout)
                    if r is None:  # counted as the timeout, marked in the exit column
                        r = (float(a.timeout), float("nan"), 0, f"killed>{a.timeout}s")
                    res[who].append(r)
            med = {w: tuple(statistics.median(r[i] for r in res[w]) for i in range(3)) +
                   ("/".join(sorted({str(r[3]) for r in res[w]})),) for w in res}
            if size == "tiny":  # wall: median of many direct runs (see run_startup)
                for who, t in who_runs:
                    med[who] = (run_startup([t] + args),) + med[who][1:]
            rows.append((label_img, label, med["ours"], med.get("ref"), row_floor, nr))
            print(f"# {size} {label}: ours {med['ours'][0]:.3f} s" +
                  (f", ref {med['ref'][0]:.3f} s" if "ref" in med else ""),
                  file=sys.stderr, flush=True)
        for label, tool, args in ([] if size in ("tiny", "huge") else
                                  ours_only_cases(img, scratch)):
            if a.only and not any(label.startswith(o) for o in a.only.split(",")):
                continue
            t = tool if os.path.isabs(tool) else os.path.join(a.ours, tool)
            res = [r for r in (run_timed([t] + args, a.timeout) for _ in range(a.reps)) if r]
            if not res:
                continue
            med = tuple(statistics.median(r[i] for r in res) for i in range(3)) + \
                ("/".join(sorted({str(r[3]) for r in res})),)
            rows.append((label_img, label, med, None, floor, nr))
            note = f", pack {os.path.getsize(scratch + '.pack')} bytes" if label == "pack" else ""
            print(f"# {size} {label}: {med[0]:.3f} s{note}", file=sys.stderr, flush=True)
        if loop:
            loop.close()
    print_table(rows)


def print_table(rows):
    """One row a case; a floor row (ours columns only) opens each image. ns/mapping: CPU
    (user + system) divided by the image's mappings."""
    hdr = ("image", "case", "ours wall s", "ref wall s", "ref/ours wall", "ours CPU s",
           "ref CPU s", "ref/ours CPU", "ours ns CPU/mapping", "ref ns CPU/mapping",
           "ours RSS MiB", "ref RSS MiB", "ours/floor", "ref/floor", "exit o/r")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for size, label, o, r, floor, nr in rows:
        if o is None:
            print(f"| {size} | {label} | not built |" + " |" * (len(hdr) - 3))
            continue
        ratio = lambda x, y: f"{x / y:.1f}" if y > 0 else "inf"  # noqa: E731
        ns = lambda cpu: f"{cpu * 1e9 / nr:.1f}" if nr else "-"  # noqa: E731
        if r is None:  # the floor, a tool 0.9.0 does not have, or --ours-only
            ex = "-" if label.startswith(("floor", "restore floor")) else f"{o[3]}/-"
            print(f"| {size} | {label} | {o[0]:.3f} | - | - | {o[1]:.2f} | - | - | {ns(o[1])} | "
                  f"- | {o[2] / 1024:.1f} | - | {o[0] / floor:.1f} | - | {ex} |")
            continue
        print(f"| {size} | {label} | {o[0]:.3f} | {r[0]:.3f} | {ratio(r[0], o[0])} | "
              f"{o[1]:.2f} | {r[1]:.2f} | {ratio(r[1], o[1])} | {ns(o[1])} | {ns(r[1])} | "
              f"{o[2] / 1024:.1f} | {r[2] / 1024:.1f} | {o[0] / floor:.1f} | {r[0] / floor:.1f} | "
              f"{o[3]}/{r[3]} |")


if __name__ == "__main__":
    main()
