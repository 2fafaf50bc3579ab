# SPDX-License-Identifier: GPL-3.0-or-later
"""Images whose devices share subtrees, as the kernel's snapshots make them: built from a
restored image by pointing one device's nodes (or its whole tree) at another's."""
import struct

import meta


def set_value(data, block, index, value):
    """Points entry `index` of the node at `block` at `value` (checksum recomputed)."""
    img = meta.Image(data)
    return img.with_block_changed(block, lambda blk: struct.pack_into(
        "<Q", blk, 32 + 8 * meta.node(blk)["max"] + 8 * index, value))


def share(data, a_root, b_root, depth, pattern):
    """Makes B's tree point at A's nodes: at each level, children i with i % 2 == pattern are
    replaced by A's (keys must agree); the others are descended into, down to `depth`."""
    img = meta.Image(data)
    na, nb = meta.node(img.block(a_root)), meta.node(img.block(b_root))
    if na["flags"] != 1 or nb["flags"] != 1:
        return data
    for i, (ka, kb) in enumerate(zip(na["keys"], nb["keys"])):
        ca, cb = (struct.unpack("<Q", v)[0] for v in (na["values"][i], nb["values"][i]))
        if ka != kb:
            continue
        if i % 2 == pattern:
            data = set_value(data, b_root, i, ca)
        elif depth > 1:
            data = share(data, ca, cb, depth - 1, pattern)
    return data


def shared_image(src, out, plan):
    data = open(src, "rb").read()
    img = meta.Image(data)
    roots = img.device_roots()
    top = img.leaves(img.sb()["mapping_root"])
    for kind, a, b, arg in plan:
        if kind == "whole":  # device b's top-level entry -> device a's root
            for blk, leaf in top:
                if b in leaf["keys"]:
                    data = set_value(data, blk, leaf["keys"].index(b), roots[a])
        else:
            data = share(data, roots[a], roots[b], arg, 0 if kind == "even" else 1)
    open(out, "wb").write(data)
    return out
