# SPDX-License-Identifier: GPL-3.0-or-later
"""An independent little decoder of dm-thin metadata for tests: checksums (FORMAT.md §3),
superblock fields, btree nodes, and helpers to damage a copy of an image."""
import struct

SALTS = {"superblock": 160774, "node": 121107, "bitmap": 240779, "index": 160478}
BS = 4096


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _table()


def crc32c_raw(data, crc=0xFFFFFFFF):
    for b in data:
        crc = (crc >> 8) ^ _T[(crc ^ b) & 0xFF]
    return crc


def checksum(block, kind):
    return crc32c_raw(bytes(block[4:BS])) ^ SALTS[kind]


def fix_checksum(block, kind):
    block[0:4] = struct.pack("<I", checksum(block, kind))


def valid_blocks(data, kind):
    """Addresses of the blocks of an image that validate as `kind` (own block number, checksum),
    in ascending order: live ones and the older copies copy-on-write left behind."""
    out = []
    for b in range(1, len(data) // BS):
        blk = data[b * BS:(b + 1) * BS]
        if struct.unpack_from("<Q", blk, 8)[0] == b and struct.unpack_from("<I", blk, 0)[0] == checksum(blk, kind):
            out.append(b)
    return out


def node(block):
    flags, blocknr, nr, mx, vs = struct.unpack_from("<IQIII", block, 4)
    keys = list(struct.unpack_from(f"<{nr}Q", block, 32))
    vals = [bytes(block[32 + 8 * mx + vs * i: 32 + 8 * mx + vs * (i + 1)]) for i in range(nr)]
    return {"flags": flags, "blocknr": blocknr, "nr": nr, "max": mx, "vsize": vs, "keys": keys,
            "values": vals}


class Image:
    def __init__(self, data):
        self.data = bytes(data)

    def block(self, b):
        return self.data[b * BS:(b + 1) * BS]

    def sb(self):
        s = self.block(0)
        return {"held_root": struct.unpack_from("<Q", s, 56)[0],
                "mapping_root": struct.unpack_from("<Q", s, 320)[0],
                "details_root": struct.unpack_from("<Q", s, 328)[0],
                "data_sm": struct.unpack_from("<QQQQ", s, 64),
                "metadata_sm": struct.unpack_from("<QQQQ", s, 192)}

    def leaves(self, root):
        """(block, node) of every leaf under root, in key order."""
        n = node(self.block(root))
        if n["flags"] == 2:
            return [(root, n)]
        out = []
        for v in n["values"]:
            out += self.leaves(struct.unpack("<Q", v)[0])
        return out

    def device_roots(self, mapping_root=None):
        r = mapping_root if mapping_root is not None else self.sb()["mapping_root"]
        out = {}
        for _, leaf in self.leaves(r):
            for k, v in zip(leaf["keys"], leaf["values"]):
                out[k] = struct.unpack("<Q", v)[0]
        return out

    def first_leaf(self, root):
        return self.leaves(root)[0][0]

    def with_block_changed(self, b, mutate, fix_csum=True, kind="node"):
        data = bytearray(self.data)
        blk = bytearray(data[b * BS:(b + 1) * BS])
        mutate(blk)
        if fix_csum:
            fix_checksum(blk, kind)
        data[b * BS:(b + 1) * BS] = blk
        return bytes(data)


def encode_node(blocknr, leaf, keys, values, value_size=8):
    """A btree node block (FORMAT.md §5.1) with a valid checksum."""
    mx = 3 * (((BS - 32) // (8 + value_size)) // 3)
    blk = bytearray(BS)
    struct.pack_into("<IQIII", blk, 4, 2 if leaf else 1, blocknr, len(keys), mx, value_size)
    for i, k in enumerate(keys):
        struct.pack_into("<Q", blk, 32 + 8 * i, k)
    for i, v in enumerate(values):
        blk[32 + 8 * mx + value_size * i: 32 + 8 * mx + value_size * (i + 1)] = v
    fix_checksum(blk, "node")
    return bytes(blk)


def put_block(data, b, blk):
    data = bytearray(data)
    data[b * BS:(b + 1) * BS] = blk
    return bytes(data)


def with_held_snapshot(data, held, mapping_root=None):
    """A copy of the image holding a metadata snapshot at block `held` (FORMAT.md §9): the
    superblock copied there (own blocknr, no held root, zeroed space-map roots, optionally
    another mapping root), and the live superblock's held_root pointing at it."""
    sb = bytearray(data[0:BS])
    copy = bytearray(sb)
    struct.pack_into("<Q", copy, 8, held)
    struct.pack_into("<Q", copy, 56, 0)
    copy[64:320] = bytes(256)
    if mapping_root is not None:
        struct.pack_into("<Q", copy, 320, mapping_root)
    fix_checksum(copy, "superblock")
    struct.pack_into("<Q", sb, 56, held)
    fix_checksum(sb, "superblock")
    return put_block(put_block(data, held, bytes(copy)), 0, bytes(sb))
