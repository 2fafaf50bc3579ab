// SPDX-License-Identifier: GPL-3.0-or-later
#include "data-plane/stream_format.h"

#include <cstdio>
#include <cstring>

#include "persistent-data/crc32c.h"
#include "persistent-data/endian.h"

namespace thinmeta::dataplane {

using pdata::load_le32;
using pdata::load_le64;
using pdata::store_le32;
using pdata::store_le64;

namespace {

constexpr char kMagic[8] = {'T', 'H', 'I', 'N', 'S', 'E', 'N', 'D'};
constexpr std::uint32_t kRecordMagic = 0x43455254;  // "TREC"

std::string to_hex(const std::uint8_t* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    s.push_back(d[p[i] >> 4]);
    s.push_back(d[p[i] & 15]);
  }
  return s;
}

bool from_hex(const std::string& s, std::uint8_t* p, std::size_t n) {
  if (s.size() != n * 2) return false;
  auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < n; ++i) {
    int hi = v(s[2 * i]), lo = v(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    p[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

}  // namespace

void Identity::encode(std::uint8_t* p) const {
  std::memset(p, 0, 64);
  std::memcpy(p, pool_uuid.data(), 16);
  store_le64(p + 16, thin_id);
  store_le64(p + 24, mapping_root);
  store_le64(p + 32, mapped_blocks);
  store_le32(p + 40, creation_time);
  store_le32(p + 44, snapshotted_time);
  store_le32(p + 48, data_block_sectors);
}

Identity Identity::decode(const std::uint8_t* p) {
  Identity i;
  std::memcpy(i.pool_uuid.data(), p, 16);
  i.thin_id = load_le64(p + 16);
  i.mapping_root = load_le64(p + 24);
  i.mapped_blocks = load_le64(p + 32);
  i.creation_time = load_le32(p + 40);
  i.snapshotted_time = load_le32(p + 44);
  i.data_block_sectors = load_le32(p + 48);
  return i;
}

std::uint64_t Identity::digest() const {
  std::uint8_t b[64];
  encode(b);
  std::uint64_t lo = pdata::crc32c(b, sizeof b);
  std::uint64_t hi = ~pdata::crc32c_update(0x9E3779B9u, b, sizeof b);
  return hi << 32 | lo;
}

std::string Identity::hex() const {
  std::uint8_t b[64];
  encode(b);
  return to_hex(b, sizeof b);
}

std::optional<Identity> Identity::from_hex(const std::string& s) {
  std::uint8_t b[64];
  if (!dataplane::from_hex(s, b, sizeof b)) return std::nullopt;
  return decode(b);
}

std::string Identity::describe() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "thin %llu (state %016llx)",
                static_cast<unsigned long long>(thin_id), static_cast<unsigned long long>(digest()));
  return buf;
}

void StreamHeader::encode(std::uint8_t* p) const {
  std::memset(p, 0, kHeaderBytes);
  std::memcpy(p, kMagic, 8);
  store_le32(p + 8, version);
  store_le32(p + 12, flags);
  store_le64(p + 16, virtual_size);
  store_le32(p + 24, data_block_sectors);
  store_le32(p + 28, static_cast<std::uint32_t>(kHeaderBytes));
  store_le64(p + 32, resume_offset);
  base.encode(p + 40);
  snap.encode(p + 104);
  store_le32(p + 252, pdata::crc32c(p, 252));
}

Result<StreamHeader> StreamHeader::decode(const std::uint8_t* p) {
  if (std::memcmp(p, kMagic, 8) != 0) return fail(Errc::kBadFormat, "not a thin_send stream (bad magic)");
  StreamHeader h;
  h.version = load_le32(p + 8);
  if (h.version != kStreamVersion)
    return fail(Errc::kBadFormat, "unsupported stream version " + std::to_string(h.version) +
                                      " (this thin_receive reads version " +
                                      std::to_string(kStreamVersion) + ")");
  if (load_le32(p + 252) != pdata::crc32c(p, 252))
    return fail(Errc::kChecksum, "bad stream header checksum");
  if (load_le32(p + 28) != kHeaderBytes) return fail(Errc::kBadFormat, "bad stream header length");
  h.flags = load_le32(p + 12);
  h.virtual_size = load_le64(p + 16);
  h.data_block_sectors = load_le32(p + 24);
  h.resume_offset = load_le64(p + 32);
  h.base = Identity::decode(p + 40);
  h.snap = Identity::decode(p + 104);
  if (h.flags & ~std::uint32_t(kIncremental | kMappedOnly | kResumed))
    return fail(Errc::kBadFormat, "unknown stream flags");
  if (h.virtual_size % 512 || h.resume_offset % 512 || h.resume_offset > h.virtual_size ||
      (!h.resumed() && h.resume_offset))
    return fail(Errc::kBadFormat, "inconsistent stream header");
  return h;
}

void RecordHeader::encode(std::uint8_t* p) const {
  store_le32(p, static_cast<std::uint32_t>(type));
  store_le32(p + 4, kRecordMagic);
  store_le64(p + 8, offset);
  store_le64(p + 16, length);
  store_le64(p + 24, sequence);
  store_le32(p + 32, payload_crc);
  store_le32(p + 36, chain_crc);
  store_le32(p + 40, 0);
  store_le32(p + 44, pdata::crc32c(p, 44));
}

Result<RecordHeader> RecordHeader::decode(const std::uint8_t* p) {
  if (load_le32(p + 4) != kRecordMagic || load_le32(p + 44) != pdata::crc32c(p, 44))
    return fail(Errc::kChecksum, "bad record header checksum");
  RecordHeader r;
  std::uint32_t t = load_le32(p);
  if (t < 1 || t > 3) return fail(Errc::kBadFormat, "unknown record type " + std::to_string(t));
  r.type = static_cast<RecordType>(t);
  r.offset = load_le64(p + 8);
  r.length = load_le64(p + 16);
  r.sequence = load_le64(p + 24);
  r.payload_crc = load_le32(p + 32);
  r.chain_crc = load_le32(p + 36);
  return r;
}

void EndRecord::encode(std::uint8_t* p) const {
  std::memset(p, 0, kEndPayloadBytes);
  store_le64(p, nr_records);
  store_le64(p + 8, data_bytes);
  store_le64(p + 16, zero_bytes);
}

EndRecord EndRecord::decode(const std::uint8_t* p) {
  return EndRecord{load_le64(p), load_le64(p + 8), load_le64(p + 16)};
}

std::string ResumeToken::encode() const {
  std::uint8_t b[32];
  store_le32(b, flags);
  store_le64(b + 4, offset);
  store_le64(b + 12, base_digest);
  store_le64(b + 20, snap_digest);
  store_le32(b + 28, pdata::crc32c(b, 28));
  return "1-" + to_hex(b, sizeof b);
}

Result<ResumeToken> ResumeToken::decode(const std::string& s) {
  std::uint8_t b[32];
  if (s.size() < 2 || s.compare(0, 2, "1-") != 0 || !from_hex(s.substr(2), b, sizeof b) ||
      load_le32(b + 28) != pdata::crc32c(b, 28))
    return fail(Errc::kInvalidArgument, "invalid resume token '" + s + "'");
  ResumeToken t;
  t.flags = load_le32(b);
  t.offset = load_le64(b + 4);
  t.base_digest = load_le64(b + 12);
  t.snap_digest = load_le64(b + 20);
  return t;
}

void StreamCrc::add(std::span<const std::uint8_t> b) {
  reg_ = pdata::crc32c_update(reg_, b.data(), b.size());
}

std::uint32_t StreamCrc::value() const { return ~reg_; }

}  // namespace thinmeta::dataplane
