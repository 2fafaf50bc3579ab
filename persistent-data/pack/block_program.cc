// SPDX-License-Identifier: GPL-3.0-or-later
// Block programs of pack records: encoder (PACK.md §6.2-§6.4) and decoder (§5).
#include "persistent-data/pack/block_program.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "persistent-data/endian.h"
#include "persistent-data/io/block.h"

namespace thinmeta::pdata::pack {
namespace {

// Instruction tags (PACK.md §5.2): the high nibble of the instruction byte.
enum Tag : std::uint8_t {
  kSet = 0, kPos = 1, kPosW = 2, kNeg = 3, kNegW = 4, kConst = 5, kConst8 = 6,
  kCount = 7, kCount8 = 8, kLit = 9, kLitW = 10, kShiftedRun = 11,
};

// The smallest operand width (1, 2, 4 or 8 bytes) that holds v.
unsigned width_of(std::uint64_t v) {
  if (v < 0x100) return 1;
  if (v < 0x10000) return 2;
  if (v < 0x100000000ull) return 4;
  return 8;
}

void put_operand(std::vector<std::uint8_t>& out, std::uint64_t v, unsigned w) {
  for (unsigned i = 0; i < w; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void put_byte(std::vector<std::uint8_t>& out, unsigned tag, unsigned nibble) {
  out.push_back(static_cast<std::uint8_t>(tag << 4 | nibble));
}

// LIT / LITW with the smallest width; nothing at all for an empty literal (the 1.3.3 packer's
// zero-length `90` after a full block desynchronises its own unpacker, PACK.md §6.3).
void put_literal(std::vector<std::uint8_t>& out, const std::uint8_t* p, std::size_t len) {
  if (len == 0) return;
  if (len < 16) {
    put_byte(out, kLit, static_cast<unsigned>(len));
  } else {
    unsigned w = width_of(len);
    put_byte(out, kLitW, w);
    put_operand(out, len, w);
  }
  out.insert(out.end(), p, p + len);
}

// A count prefix (COUNT/COUNT8) or a CONST/CONST8; counts are < 4096 (a block has at most 508
// u64 slots).
void put_counted(std::vector<std::uint8_t>& out, unsigned short_tag, unsigned long_tag,
                 std::size_t c) {
  if (c < 16) {
    put_byte(out, short_tag, static_cast<unsigned>(c));
  } else {
    put_byte(out, long_tag, static_cast<unsigned>(c >> 8));
    out.push_back(static_cast<std::uint8_t>(c & 0xFF));
  }
}

// Greedy run-length / delta coding of a sequence of u64 values (PACK.md §6.4).
void put_u64s(std::vector<std::uint8_t>& out, const std::uint64_t* ns, std::size_t n) {
  if (n == 0) return;
  std::uint64_t base = ns[0];
  unsigned w = width_of(base);
  put_byte(out, kSet, w);
  put_operand(out, base, w);
  std::size_t i = 1;
  while (i < n) {
    std::uint64_t v = ns[i];
    if (v == base) {
      std::size_t c = 1;
      while (i + c < n && ns[i + c] == base) ++c;
      put_counted(out, kConst, kConst8, c);
      i += c;
      continue;
    }
    bool up = v > base;
    std::uint64_t d = up ? v - base : base - v;
    std::size_t c = 1;
    std::uint64_t next = v;
    while (i + c < n && ns[i + c] == (up ? next + d : next - d)) {
      next = up ? next + d : next - d;
      ++c;
    }
    if (c > 1) put_counted(out, kCount, kCount8, c);
    if (d < 16) {
      put_byte(out, up ? kPos : kNeg, static_cast<unsigned>(d));
    } else {
      unsigned dw = width_of(d);
      put_byte(out, up ? kPosW : kNegW, dw);
      put_operand(out, d, dw);
    }
    base = next;
    i += c;
  }
}

void load_u64s(const std::uint8_t* p, std::size_t n, std::vector<std::uint64_t>& v) {
  v.resize(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = load_le64(p + 8 * i);
}

// A btree node (PACK.md §6.3): all max_entries slots are encoded, used or not.
void encode_node(const std::uint8_t* block, std::vector<std::uint8_t>& out) {
  const std::uint32_t flags = load_le32(block + 4);
  const std::size_t m = load_le32(block + 20);
  const std::uint32_t value_size = load_le32(block + 24);
  const bool leaf = flags == 2;
  const bool shifted = leaf && value_size == 8;
  const bool reads_values = shifted || !leaf;
  if (32 + 8 * m > kBlockSize || (reads_values && 32 + 16 * m > kBlockSize)) {
    put_literal(out, block, kBlockSize);  // 1.3.3 gives up on the whole pack here
    return;
  }
  put_literal(out, block, 32);
  std::vector<std::uint64_t> v;
  load_u64s(block + 32, m, v);
  put_u64s(out, v.data(), m);
  if (!reads_values) {
    put_literal(out, block + 32 + 8 * m, kBlockSize - 32 - 8 * m);
    return;
  }
  load_u64s(block + 32 + 8 * m, m, v);
  if (shifted) {
    // block_time values: the 40-bit data block and the 24-bit time coded separately.
    put_byte(out, kShiftedRun, static_cast<unsigned>(m >> 8));
    out.push_back(static_cast<std::uint8_t>(m & 0xFF));
    std::vector<std::uint64_t> part(m);
    for (std::size_t i = 0; i < m; ++i) part[i] = v[i] >> 24;
    put_u64s(out, part.data(), m);
    for (std::size_t i = 0; i < m; ++i) part[i] = v[i] & 0xFFFFFF;
    put_u64s(out, part.data(), m);
  } else {
    put_u64s(out, v.data(), m);
  }
  put_literal(out, block + 32 + 16 * m, kBlockSize - 32 - 16 * m);
}

// Where a program writes: the record's block, or a SHIFTED_RUN scratch buffer. Bytes past
// `cap` are counted, not stored.
struct Output {
  std::uint8_t* buf;
  std::size_t cap;
  std::size_t produced = 0;
  bool strict;  // the record itself: producing past cap is an error

  void put(const std::uint8_t* p, std::size_t n) {
    if (produced < cap) std::memcpy(buf + produced, p, std::min(n, cap - produced));
    produced += n;
  }
  void emit(std::uint64_t v) {
    std::uint8_t b[8];
    store_le64(b, v);
    put(b, 8);
  }
};

constexpr unsigned kMaxNesting = 16;  // SHIFTED_RUN inside SHIFTED_RUN: legal, pointless

class Decoder {
 public:
  Decoder(const std::uint8_t* p, std::size_t len) : p_(p), end_(len) {}

  // Runs one instruction (with its COUNT prefixes) into `out`.
  bool step(Output& out, unsigned depth) {
    std::uint64_t n = 1;
    std::uint8_t byte;
    for (;;) {
      if (!take_byte(byte)) return false;
      unsigned tag = byte >> 4, nib = byte & 0xF;
      if (tag == kCount) {
        n = nib;
      } else if (tag == kCount8) {
        std::uint8_t lo;
        if (!take_byte(lo)) return false;
        n = std::uint64_t{nib} << 8 | lo;
      } else {
        break;
      }
    }
    const unsigned tag = byte >> 4, nib = byte & 0xF;
    std::uint64_t operand = 0;
    switch (tag) {
      case kSet:
        if (!take_operand(nib, operand)) return false;
        base_ = operand;
        return emit_n(out, n);
      case kPos:
      case kNeg:
        return steps(out, n, tag == kPos, nib);
      case kPosW:
      case kNegW:
        if (!take_operand(nib, operand)) return false;
        return steps(out, n, tag == kPosW, operand);
      case kConst:
        if (!single(n, "CONST")) return false;
        return emit_n(out, nib);
      case kConst8: {
        std::uint8_t lo;
        if (!take_byte(lo)) return false;
        if (!single(n, "CONST8")) return false;
        return emit_n(out, std::uint64_t{nib} << 8 | lo);
      }
      case kLit:
        if (!single(n, "LIT")) return false;
        return literal(out, nib);
      case kLitW:
        if (!take_operand(nib, operand)) return false;
        if (!single(n, "LITW")) return false;
        return literal(out, operand);
      case kShiftedRun: {
        std::uint8_t lo;
        if (!take_byte(lo)) return false;
        return shifted_run(out, std::size_t{nib} << 8 | lo, depth);
      }
      default:
        return fail("bad instruction 0x" + hex(byte));
    }
  }

  std::size_t pos() const { return pos_; }
  bool short_input() const { return short_; }
  const std::string& error() const { return error_; }
  void reset_base() { base_ = 0; }

 private:
  static std::string hex(unsigned v) {
    const char* d = "0123456789abcdef";
    return std::string{d[(v >> 4) & 0xF], d[v & 0xF]};
  }
  bool fail(std::string what) {
    error_ = std::move(what);
    return false;
  }
  bool need(std::uint64_t bytes) {
    if (end_ - pos_ >= bytes) return true;
    short_ = true;
    return fail("record ends early");
  }
  bool take_byte(std::uint8_t& b) {
    if (!need(1)) return false;
    b = p_[pos_++];
    return true;
  }
  bool take_operand(unsigned w, std::uint64_t& v) {
    if (w != 1 && w != 2 && w != 4 && w != 8)
      return fail("operand of bad width " + std::to_string(w));
    if (!need(w)) return false;
    v = 0;
    for (unsigned i = 0; i < w; ++i) v |= std::uint64_t{p_[pos_ + i]} << (8 * i);
    pos_ += w;
    return true;
  }
  bool single(std::uint64_t n, const char* what) {
    if (n == 1) return true;
    return fail(std::string(what) + " under a repeat count of " + std::to_string(n));
  }
  bool room(Output& out, std::uint64_t bytes) {
    if (!out.strict || bytes <= out.cap - std::min(out.cap, out.produced)) return true;
    return fail("program produces more than 4096 bytes");
  }
  bool emit_n(Output& out, std::uint64_t n) {
    if (!room(out, 8 * n)) return false;
    for (std::uint64_t i = 0; i < n; ++i) out.emit(base_);
    return true;
  }
  bool steps(Output& out, std::uint64_t n, bool up, std::uint64_t d) {
    if (!room(out, 8 * n)) return false;
    for (std::uint64_t i = 0; i < n; ++i) {
      base_ = up ? base_ + d : base_ - d;
      out.emit(base_);
    }
    return true;
  }
  bool literal(Output& out, std::uint64_t len) {
    if (!room(out, len) || !need(len)) return false;
    out.put(p_ + pos_, len);
    pos_ += len;
    return true;
  }
  // N values: high parts (<< 24) and low parts (24 bits) from two sub-programs (PACK.md §5.4).
  bool shifted_run(Output& out, std::size_t n, unsigned depth) {
    if (n == 0) return true;
    if (depth >= kMaxNesting) return fail("SHIFTED_RUN nested too deeply");
    if (!room(out, 8 * n)) return false;
    auto scratch = std::make_unique<std::uint8_t[]>(16 * n);
    Output high{scratch.get(), 8 * n, 0, false};
    Output low{scratch.get() + 8 * n, 8 * n, 0, false};
    while (high.produced < 8 * n)
      if (!step(high, depth + 1)) return false;
    while (low.produced < 8 * n)
      if (!step(low, depth + 1)) return false;
    for (std::size_t i = 0; i < n; ++i)
      out.emit(load_le64(high.buf + 8 * i) << 24 | (load_le64(low.buf + 8 * i) & 0xFFFFFF));
    return true;
  }

  const std::uint8_t* p_;
  std::size_t pos_ = 0;
  std::size_t end_;
  std::uint64_t base_ = 0;
  bool short_ = false;
  std::string error_;
};

}  // namespace

void encode_block(const std::uint8_t* block, PackedKind kind, std::vector<std::uint8_t>& out) {
  if (kind == PackedKind::kNode)
    encode_node(block, out);
  else
    put_literal(out, block, kBlockSize);
}

DecodeStatus decode_record(const std::uint8_t* in, std::size_t len, std::uint8_t* block,
                           std::uint64_t& block_nr, std::size_t& consumed, std::string& error) {
  if (len < 8) return DecodeStatus::kNeedMore;
  block_nr = load_le64(in);
  Decoder d(in + 8, len - 8);
  Output out{block, kBlockSize, 0, true};
  while (out.produced < kBlockSize) {
    if (!d.step(out, 0)) {
      if (d.short_input()) return DecodeStatus::kNeedMore;
      error = d.error();
      return DecodeStatus::kError;
    }
  }
  consumed = 8 + d.pos();
  return DecodeStatus::kDone;
}

}  // namespace thinmeta::pdata::pack
