// SPDX-License-Identifier: GPL-3.0-or-later
// Failures (cannot open, short device, XML syntax, output full) travel as Result<T>.
// Damage found inside metadata is reported to visitors instead (see btree_walker.h).
#pragma once

#include <version>
#if defined(__cpp_lib_expected)
#include <expected>
#else
#include "persistent-data/expected_compat.h"
#endif
#include <string>
#include <utility>

namespace thinmeta {

enum class Errc {
  kIo,
  kChecksum,
  kBadFormat,
  kTooSmall,
  kNoSpace,
  kInvalidArgument,
  kNotFound,
  kXmlSyntax,
  kBrokenPipe,
  kDamage,
};

struct Error {
  Errc code;
  std::string what;  // one line, no trailing newline
};

template <typename T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Errc code, std::string what) {
  return std::unexpected<Error>(Error{code, std::move(what)});
}

}  // namespace thinmeta

#define THINMETA_CONCAT_(a, b) a##b
#define THINMETA_CONCAT(a, b) THINMETA_CONCAT_(a, b)
// THINMETA_TRY(auto x, expr): evaluate a Result, return its error, else bind the value.
#define THINMETA_TRY(decl, expr) THINMETA_TRY_(THINMETA_CONCAT(try_r_, __LINE__), decl, expr)
#define THINMETA_TRY_(tmp, decl, expr)                            \
  auto tmp = (expr);                                              \
  if (!tmp) return std::unexpected<::thinmeta::Error>(tmp.error()); \
  decl = std::move(*tmp)
// THINMETA_CHECK(expr): for Result<void>.
#define THINMETA_CHECK(expr)                                                        \
  do {                                                                              \
    auto THINMETA_CONCAT(chk_r_, __LINE__) = (expr);                                \
    if (!THINMETA_CONCAT(chk_r_, __LINE__))                                         \
      return std::unexpected<::thinmeta::Error>(THINMETA_CONCAT(chk_r_, __LINE__).error()); \
  } while (0)
