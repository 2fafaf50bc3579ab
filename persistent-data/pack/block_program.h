// SPDX-License-Identifier: GPL-3.0-or-later
// The per-block "program" of a pack record (PACK.md §5, §6): the encoder emits exactly what the
// 1.3.3 packer emits for a block (so records compare byte for byte), except that it never
// writes anything past a block's 4096th byte and falls back to a literal for a node whose
// header does not fit the block; the decoder runs any program §5 allows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "persistent-data/pack/pack_format.h"

namespace thinmeta::pdata::pack {

// Appends the program that regenerates the 4096-byte `block` of kind `kind` to `out`.
void encode_block(const std::uint8_t* block, PackedKind kind, std::vector<std::uint8_t>& out);

enum class DecodeStatus {
  kDone,      // one record decoded
  kNeedMore,  // the input ends inside the record: give more bytes (or it is truncated)
  kError,     // malformed; `error` says why (one line)
};

// Decodes one record (le64 block number, then a program) from the start of `in`: on kDone the
// 4096 bytes are in `block`, the block number in `block_nr` and the record's length in
// `consumed`. Thread-safe (no shared state).
DecodeStatus decode_record(const std::uint8_t* in, std::size_t len, std::uint8_t* block,
                           std::uint64_t& block_nr, std::size_t& consumed, std::string& error);

}  // namespace thinmeta::pdata::pack
