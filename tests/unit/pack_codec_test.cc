// SPDX-License-Identifier: GPL-3.0-or-later
// The pack record codec (PACK.md §5, §6): the 1.3.3 instruction bytes for known node shapes
// (§11), round trips, the programs §9 says an unpacker must accept, and malformed programs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "persistent-data/io/block.h"
#include "persistent-data/pack/block_program.h"

namespace thinmeta::pdata::pack {
namespace {

using Bytes = std::vector<std::uint8_t>;

struct Node {
  AlignedBuffer buf{1};
  std::uint8_t* p() { return buf.data(); }
};

// A node header: flags, blocknr, nr_entries, max_entries, value_size.
Node make_node(std::uint32_t flags, std::uint64_t blocknr, std::uint32_t nr, std::uint32_t max,
               std::uint32_t vsize) {
  Node n;
  store_le32(n.p() + 4, flags);
  store_le64(n.p() + 8, blocknr);
  store_le32(n.p() + 16, nr);
  store_le32(n.p() + 20, max);
  store_le32(n.p() + 24, vsize);
  return n;
}

Bytes record(std::uint64_t nr, const Bytes& program) {
  Bytes r(8 + program.size());
  store_le64(r.data(), nr);
  std::copy(program.begin(), program.end(), r.begin() + 8);
  return r;
}

// Decodes `program` as one record; the status, and the block if done.
DecodeStatus run(const Bytes& program, std::uint8_t* out, std::string* err = nullptr,
                 std::size_t* used = nullptr) {
  Bytes r = record(7, program);
  std::uint64_t nr = 0;
  std::size_t consumed = 0;
  std::string e;
  auto st = decode_record(r.data(), r.size(), out, nr, consumed, e);
  if (st == DecodeStatus::kDone) {
    EXPECT_EQ(nr, 7u);
  }
  if (err) *err = e;
  if (used) *used = consumed;
  return st;
}

void expect_round_trip(const std::uint8_t* block, PackedKind kind) {
  Bytes prog;
  encode_block(block, kind, prog);
  Bytes r = record(42, prog);
  AlignedBuffer out(1);
  std::uint64_t nr = 0;
  std::size_t used = 0;
  std::string err;
  ASSERT_EQ(decode_record(r.data(), r.size(), out.data(), nr, used, err), DecodeStatus::kDone)
      << err;
  EXPECT_EQ(used, r.size());  // nothing after the 4096th byte
  EXPECT_EQ(nr, 42u);
  EXPECT_EQ(std::memcmp(out.data(), block, kBlockSize), 0);
}

TEST(PackCodec, MappingLeafAsThe133Packer) {  // PACK.md §11, block 10
  Node n = make_node(2, 10, 3, 252, 8);
  std::uint64_t keys[] = {0, 1, 5};
  std::uint64_t vals[] = {10ull << 24, 11ull << 24, 20ull << 24 | 1};
  for (int i = 0; i < 3; ++i) {
    store_le64(n.p() + 32 + 8 * i, keys[i]);
    store_le64(n.p() + 32 + 8 * 252 + 8 * i, vals[i]);
  }
  stamp_checksum(n.p(), BlockKind::kNode);
  Bytes prog;
  encode_block(n.p(), PackedKind::kNode, prog);
  Bytes want = {0xa1, 0x20};
  want.insert(want.end(), n.p(), n.p() + 32);
  Bytes rest = {0x01, 0x00, 0x11, 0x14, 0x35, 0x60, 0xf8,              // keys
                0xb0, 0xfc,                                            // SHIFTED_RUN 252
                0x01, 0x0a, 0x11, 0x19, 0x41, 0x14, 0x60, 0xf8,        // high parts
                0x01, 0x00, 0x51, 0x11, 0x31, 0x60, 0xf8,              // low parts
                0xa1, 0x20};
  want.insert(want.end(), rest.begin(), rest.end());
  want.insert(want.end(), 32, 0);
  EXPECT_EQ(prog, want);
  expect_round_trip(n.p(), PackedKind::kNode);
}

TEST(PackCodec, RefCountLeafAsThe133Packer) {  // PACK.md §11, block 2
  Node n = make_node(2, 2, 0, 336, 4);
  stamp_checksum(n.p(), BlockKind::kNode);
  Bytes prog;
  encode_block(n.p(), PackedKind::kNode, prog);
  ASSERT_EQ(prog.size(), 2u + 32 + 4 + 3 + 1376);
  EXPECT_EQ((Bytes{prog.begin() + 34, prog.begin() + 41}),
            (Bytes{0x01, 0x00, 0x61, 0x4f, 0xa2, 0x60, 0x05}));
  expect_round_trip(n.p(), PackedKind::kNode);
}

TEST(PackCodec, U64sExamples) {  // PACK.md §6.4 via an internal node's values
  Node n = make_node(1, 3, 4, 252, 8);
  std::uint64_t vals[] = {10, 8};
  for (int i = 0; i < 2; ++i) store_le64(n.p() + 32 + 8 * 252 + 8 * i, vals[i]);
  for (int i = 0; i < 4; ++i) store_le64(n.p() + 32 + 8 * i, static_cast<std::uint64_t>(i + 1));
  Bytes prog;
  encode_block(n.p(), PackedKind::kNode, prog);
  // keys 1, 2, 3, 4, then 248 zeros: SET 1; COUNT 3 POS 1; NEG 4; CONST8 247
  Bytes want_keys = {0x01, 0x01, 0x73, 0x11, 0x34, 0x60, 0xf7};
  EXPECT_EQ((Bytes{prog.begin() + 34, prog.begin() + 41}), want_keys);
  Bytes want_vals = {0x01, 0x0a, 0x32, 0x38, 0x60, 0xf9};
  EXPECT_EQ((Bytes{prog.begin() + 41, prog.begin() + 47}), want_vals);
  expect_round_trip(n.p(), PackedKind::kNode);
}

TEST(PackCodec, RandomNodesAndLiteralsRoundTrip) {
  std::mt19937_64 rng(17);
  struct Shape {
    std::uint32_t flags, max, vsize;
  } shapes[] = {{2, 252, 8}, {1, 252, 8}, {2, 336, 4}, {2, 168, 16}, {2, 126, 24},
                {0, 252, 8}, {3, 100, 8}, {2, 508, 4}, {1, 254, 8}, {2, 1000, 8}, {2, 0, 8}};
  for (const auto& s : shapes) {
    for (int round = 0; round < 20; ++round) {
      Node n = make_node(s.flags, 99, s.max, s.max, s.vsize);
      std::uint64_t base = rng();
      for (std::size_t off = 32; off + 8 <= kBlockSize; off += 8) {
        std::uint64_t v;
        switch (rng() % 4) {
          case 0: v = base; break;
          case 1: v = base += rng() % 5; break;
          case 2: v = base -= rng() % 70000; break;
          default: v = rng() >> (rng() % 64); break;
        }
        store_le64(n.p() + off, v);
      }
      store_le32(n.p() + 4, s.flags);
      store_le32(n.p() + 20, s.max);
      store_le32(n.p() + 24, s.vsize);
      stamp_checksum(n.p(), BlockKind::kNode);
      expect_round_trip(n.p(), PackedKind::kNode);
      expect_round_trip(n.p(), PackedKind::kBitmap);  // literal
    }
  }
}

TEST(PackCodec, FullBlockOfKeysHasNothingAfterIt) {  // the 1.3.3 defect of PACK.md §6.3
  Node n = make_node(2, 5, 508, 508, 4);
  for (int i = 0; i < 508; ++i) store_le64(n.p() + 32 + 8 * i, static_cast<std::uint64_t>(i * 3));
  Bytes prog;
  encode_block(n.p(), PackedKind::kNode, prog);
  EXPECT_NE(prog.back(), 0x90);
  expect_round_trip(n.p(), PackedKind::kNode);
}

// Programs other packers may write (PACK.md §9 "must accept").
TEST(PackCodec, AcceptsEveryLegalProgram) {
  AlignedBuffer out(1);
  // SET width 8 with a small value, COUNT 0 SET (loads only), SET under COUNT 3, COUNT 1 CONST,
  // POS 0, CONST 0, LIT 0, then a block of 8-byte values 3,3,3,9,9,... and short literals.
  Bytes p = {0x08, 3, 0, 0, 0, 0, 0, 0, 0,  // SET 3 (w8) -> 3
             0x70, 0x01, 9,                 // COUNT 0; SET 9: base 9, nothing emitted
             0x73, 0x01, 3,                 // COUNT 3; SET 3 -> 3 3 3
             0x71, 0x52,                    // COUNT 1; CONST 2 -> 3 3
             0x10,                          // POS 0 -> 3
             0x50, 0x90};                   // CONST 0, LIT 0
  // 7 values so far (56 bytes); fill the rest with 4040 bytes of short literals.
  for (int i = 0; i < 4040 / 8; ++i) {
    p.push_back(0x98);
    for (int j = 0; j < 8; ++j) p.push_back(static_cast<std::uint8_t>(i + j));
  }
  ASSERT_EQ(run(p, out.data()), DecodeStatus::kDone);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(load_le64(out.data() + 8 * i), 3u) << i;
  EXPECT_EQ(out.data()[56], 0);
  EXPECT_EQ(out.data()[57], 1);

  // SHIFTED_RUN under a COUNT prefix (ignored), a LIT in the high sub-program, a low
  // sub-program that overshoots (excess dropped) with bits above 23 (masked); then the rest.
  Bytes q = {0x75, 0xb0, 0x02,                        // COUNT 5; SHIFTED_RUN 2
             0x98, 1, 0, 0, 0, 0, 0, 0, 0, 0x12,       // high: LIT 8 bytes (1), POS 2 (2)
             0x04, 0x05, 0, 0, 0x01, 0x53,             // low: SET 0x01000005 (w4), CONST 3
             0x01, 0x00, 0x61, 0xfd};                  // SET 0, CONST8 509 -> 510 zeros
  ASSERT_EQ(run(q, out.data()), DecodeStatus::kDone);
  EXPECT_EQ(load_le64(out.data()), (1ull << 24) | 5);
  EXPECT_EQ(load_le64(out.data() + 8), (2ull << 24) | 5);
  EXPECT_EQ(load_le64(out.data() + 16), 0u);

  // NEG wraps modulo 2^64; COUNT8; NEGW/POSW of every width.
  Bytes w = {0x01, 0x01, 0x80, 0x02, 0x31,       // SET 1; COUNT8 2; NEG 1 -> 1 0 ~0
             0x21, 0x02, 0x22, 0x00, 0x01, 0x24, 0, 0, 1, 0, 0x28, 0, 0, 0, 0, 1, 0, 0, 0,
             0x41, 0x02, 0x42, 0x00, 0x01, 0x44, 0, 0, 1, 0, 0x48, 0, 0, 0, 0, 1, 0, 0, 0,
             0x61, 0xf5};                        // 11 values so far, CONST8 501
  ASSERT_EQ(run(w, out.data()), DecodeStatus::kDone);
  EXPECT_EQ(load_le64(out.data() + 16), ~0ull);
  EXPECT_EQ(load_le64(out.data() + 24), 1u);
  EXPECT_EQ(load_le64(out.data() + 48), 1u + 256 + 65536 + (1ull << 32));
  EXPECT_EQ(load_le64(out.data() + 80), ~0ull);
}

TEST(PackCodec, RejectsMalformedPrograms) {
  AlignedBuffer out(1);
  std::string err;
  EXPECT_EQ(run({0xc0}, out.data(), &err), DecodeStatus::kError);
  EXPECT_NE(err.find("bad instruction"), std::string::npos) << err;
  EXPECT_EQ(run({0x03, 1, 2, 3}, out.data(), &err), DecodeStatus::kError);  // width 3
  EXPECT_EQ(run({0x01, 0, 0x72, 0x52}, out.data(), &err), DecodeStatus::kError);  // COUNT 2 CONST
  EXPECT_NE(err.find("repeat count"), std::string::npos) << err;
  Bytes over = {0xa2, 0x01, 0x10};  // LITW 4097
  over.insert(over.end(), 4097, 0);
  EXPECT_EQ(run(over, out.data(), &err), DecodeStatus::kError);
  EXPECT_NE(err.find("more than 4096"), std::string::npos) << err;
  EXPECT_EQ(run({0x01, 0, 0x61, 0xfe, 0x72, 0x11}, out.data(), &err), DecodeStatus::kError);
  EXPECT_EQ(run({0x01, 0, 0x61}, out.data(), &err), DecodeStatus::kNeedMore);
  EXPECT_EQ(run({0xa2, 0x00, 0x10, 1, 2}, out.data(), &err), DecodeStatus::kNeedMore);
  Bytes nest;  // SHIFTED_RUN 1 nested 100 deep
  for (int i = 0; i < 100; ++i) nest.insert(nest.end(), {0xb0, 0x01});
  EXPECT_EQ(run(nest, out.data(), &err), DecodeStatus::kError);
}

// Random and mutated programs: any status, never a crash or a read past the input (run under
// the sanitizers in the debug preset).
TEST(PackCodec, HostileProgramsNeverCrash) {
  std::mt19937_64 rng(1717);
  Node n = make_node(2, 10, 3, 252, 8);
  for (int i = 0; i < 3; ++i) store_le64(n.p() + 32 + 8 * i, static_cast<std::uint64_t>(i));
  stamp_checksum(n.p(), BlockKind::kNode);
  Bytes good;
  encode_block(n.p(), PackedKind::kNode, good);
  AlignedBuffer out(1);
  int done = 0;
  for (int round = 0; round < 20000; ++round) {
    Bytes prog;
    if (round % 2) {
      prog = good;
      for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k)
        prog[rng() % prog.size()] = static_cast<std::uint8_t>(rng());
      prog.resize(prog.size() - rng() % std::min<std::size_t>(prog.size(), 8));
    } else {
      prog.resize(rng() % 64);
      for (auto& b : prog)
        b = static_cast<std::uint8_t>(rng() % 4 ? (rng() % 12) << 4 | rng() % 16 : rng());
    }
    Bytes r = record(1, prog);
    std::uint64_t nr = 0;
    std::size_t used = 0;
    std::string err;
    auto st = decode_record(r.data(), r.size(), out.data(), nr, used, err);
    if (st == DecodeStatus::kDone) {
      ++done;
      EXPECT_LE(used, r.size());
    }
    if (st == DecodeStatus::kError) {
      EXPECT_FALSE(err.empty());
    }
  }
  EXPECT_GT(done, 0);
}

TEST(PackCodec, RecordsFollowEachOther) {
  Node n = make_node(2, 1, 0, 126, 24);
  stamp_checksum(n.p(), BlockKind::kNode);
  Bytes prog;
  encode_block(n.p(), PackedKind::kNode, prog);
  Bytes two = record(1, prog);
  Bytes second = record(2, prog);
  two.insert(two.end(), second.begin(), second.end());
  AlignedBuffer out(1);
  std::uint64_t nr;
  std::size_t used;
  std::string err;
  ASSERT_EQ(decode_record(two.data(), two.size(), out.data(), nr, used, err), DecodeStatus::kDone);
  EXPECT_EQ(nr, 1u);
  ASSERT_EQ(decode_record(two.data() + used, two.size() - used, out.data(), nr, used, err),
            DecodeStatus::kDone);
  EXPECT_EQ(nr, 2u);
}

}  // namespace
}  // namespace thinmeta::pdata::pack
