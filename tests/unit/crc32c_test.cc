// SPDX-License-Identifier: GPL-3.0-or-later
// CRC-32C test vectors from FORMAT.md §3, for both implementations.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "persistent-data/crc32c.h"

using namespace thinmeta::pdata;

class Crc32cTest : public ::testing::TestWithParam<Crc32cImpl> {
 protected:
  void SetUp() override { crc32c_force_impl(GetParam()); }
  void TearDown() override { crc32c_force_impl(Crc32cImpl::kAuto); }
};

TEST_P(Crc32cTest, StandardVector) { EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u); }

TEST_P(Crc32cTest, RawVector) {
  EXPECT_EQ(crc32c_update(0xFFFFFFFFu, "123456789", 9), 0x1CF96D7Cu);
}

TEST_P(Crc32cTest, ZeroBlockTail) {
  std::vector<unsigned char> z(4092, 0);
  EXPECT_EQ(crc32c_update(0xFFFFFFFFu, z.data(), z.size()), 0x58CDA791u);
}

TEST_P(Crc32cTest, UnalignedLengthsAgreeWithPortable) {
  std::vector<unsigned char> d(13000);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<unsigned char>(i * 37 + 11);
  for (std::size_t off = 0; off < 9; ++off)
    for (std::size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 500u, 4079u, 4080u, 4092u, 8200u, 12289u})
      EXPECT_EQ(crc32c_update(0x12345678u, d.data() + off, len),
                crc32c_update_portable(0x12345678u, d.data() + off, len));
}

// Random data and starting values over the lengths that take the three-stream path (a
// 4 KiB block's 4080 bytes once, twice): the streams' join is exact for every byte value.
TEST_P(Crc32cTest, RandomBlocksAgreeWithPortable) {
  std::mt19937 rng(18);
  std::vector<unsigned char> d(3 * 4096);
  for (int t = 0; t < 200; ++t) {
    for (auto& b : d) b = static_cast<unsigned char>(rng());
    std::uint32_t init = rng();
    for (std::size_t len : {4080u, 4092u, 4096u, 8160u, 3u * 4096u})
      ASSERT_EQ(crc32c_update(init, d.data(), len), crc32c_update_portable(init, d.data(), len))
          << t << " " << len;
  }
}

INSTANTIATE_TEST_SUITE_P(Impl, Crc32cTest,
                         ::testing::Values(Crc32cImpl::kAuto, Crc32cImpl::kPortable));
