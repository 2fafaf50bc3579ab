# SPDX-License-Identifier: GPL-3.0-or-later
"""The repair score's damage corpus (test_repair_score.py, and the kernel tier's repair
scenario): one byte flipped in every in-use metadata block of an image that a checker then
rejects, every superblock field flipped (checksum broken) or zeroed (checksum valid), and every
superblock pointer turned to the newest older copy of its block that copy-on-write left in a
free block (checksum broken), each with the live mappings the damaged block itself stored (lost
whatever the repair does)."""
import os
import re
import struct

import meta

SB_FIELDS = [("flags", 4, 4), ("blocknr", 8, 8), ("uuid", 16, 16), ("magic", 32, 8),
             ("version", 40, 4), ("time", 44, 4), ("trans_id", 48, 8), ("held_root", 56, 8),
             ("data_sm.nr_blocks", 64, 8), ("data_sm.nr_allocated", 72, 8),
             ("data_sm.bitmap_root", 80, 8), ("data_sm.ref_count_root", 88, 8),
             ("metadata_sm.nr_blocks", 192, 8), ("metadata_sm.nr_allocated", 200, 8),
             ("metadata_sm.bitmap_root", 208, 8), ("metadata_sm.ref_count_root", 216, 8),
             ("data_mapping_root", 320, 8), ("device_details_root", 328, 8),
             ("data_block_size", 336, 4), ("metadata_block_size", 340, 4),
             ("metadata_nr_blocks", 344, 8), ("compat_flags", 352, 4),
             ("compat_ro_flags", 356, 4), ("incompat_flags", 360, 4)]
# Superblock pointers, and the kind of block each names.
SB_POINTERS = [("data_sm.bitmap_root", 80, "index"), ("data_sm.ref_count_root", 88, "node"),
               ("metadata_sm.bitmap_root", 208, "index"), ("metadata_sm.ref_count_root", 216, "node"),
               ("data_mapping_root", 320, "node"), ("device_details_root", 328, "node")]


def mappings(xml):
    """{(dev, vblock): (data, time)} and the superblock's attributes of a thin_dump XML."""
    sb = dict(re.findall(r'(\w+)="([^"]*)"', xml.split("\n", 1)[0]))
    maps, dev = {}, None
    for line in xml.splitlines():
        a = {k: int(v) for k, v in re.findall(r'(\w+)="(\d+)"', line)}
        if "<device" in line:
            dev = a["dev_id"]
        elif "<single_mapping" in line:
            maps[(dev, a["origin_block"])] = (a["data_block"], a["time"])
        elif "<range_mapping" in line:
            for i in range(a["length"]):
                maps[(dev, a["origin_begin"] + i)] = (a["data_begin"] + i, a["time"])
    return sb, maps


def used_blocks(img):
    """Metadata blocks with a non-zero count in the metadata space map (FORMAT.md §7)."""
    nr, _, index, _ = img.sb()["metadata_sm"]
    blk = img.block(index)
    used = []
    for e in range((nr + 16319) // 16320):
        bitmap, = struct.unpack_from("<Q", blk, 16 + 16 * e)
        bm = img.block(bitmap)
        for i in range(min(16320, nr - e * 16320)):
            w, = struct.unpack_from("<Q", bm, 16 + 8 * (i // 32))
            if (w >> (2 * (i % 32))) & 3:
                used.append(e * 16320 + i)
    return used


def in_block(img, blk):
    """Live mappings stored in block `blk` (a bottom-level leaf of a live device tree)."""
    out = set()
    for dev, root in img.device_roots().items():
        for b, leaf in img.leaves(root):
            if b == blk:
                out |= {(dev, k) for k in leaf["keys"]}
    return out


def cases(data, work, checks):
    """(label, damaged bytes, live mappings lost with the damaged block). `checks(path)` tells
    whether the checkers pass an image (only damage they notice makes a case)."""
    img = meta.Image(data)
    path = os.path.join(work, "probe.bin")
    for b in used_blocks(img):
        d = bytearray(data)
        d[b * 4096 + 2000] ^= 0x5A
        with open(path, "wb") as f:
            f.write(d)
        if all(checks(path)):
            continue  # nothing notices the damage
        yield f"block {b}", bytes(d), (in_block(img, b) if b else set())
    for field, off, size in SB_FIELDS:
        d = bytearray(data)
        d[off] ^= 0x5A
        yield f"sb {field} flip", bytes(d), set()
        d = bytearray(data)
        if d[off:off + size] == bytes(size):
            continue
        d[off:off + size] = bytes(size)
        blk = bytearray(d[0:4096])
        meta.fix_checksum(blk, "superblock")
        d[0:4096] = blk
        yield f"sb {field} zero", bytes(d), set()
    used = set(used_blocks(img))
    for field, off, kind in SB_POINTERS:
        older = [b for b in meta.valid_blocks(data, kind) if b not in used]
        if older:
            d = bytearray(data)
            struct.pack_into("<Q", d, off, older[-1])
            yield f"sb {field} stale", bytes(d), set()
