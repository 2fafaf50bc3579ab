// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/text_output.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace thinmeta::thin {

void TextOutput::write_all(const char* p, std::size_t n) {
  while (n && !error_) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      if (errno == EPIPE)
        error_ = Error{Errc::kBrokenPipe, "broken pipe"};
      else
        error_ = Error{Errc::kIo, std::string("write failed: ") + std::strerror(errno)};
      return;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace thinmeta::thin
