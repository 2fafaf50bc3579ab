// SPDX-License-Identifier: GPL-3.0-or-later
// The mapped engine, for image files: the whole file mapped read-only, blocks handed out in
// place (IoEngine::view_many) so a walk checksums and decodes them where the page cache holds
// them, with no copy and no buffer to fault in. Writes go through pwrite (the sync engine),
// which the mapping sees. A file that shrinks while mapped (or a page the kernel cannot read)
// ends the process with one line on stderr and exit status 1 instead of SIGBUS
// (install_mapped_fault_handler).
#pragma once

#include <memory>
#include <string>

#include "persistent-data/io/io_engine.h"

namespace thinmeta::pdata {

// Takes ownership of fd (a regular file). Returns nullptr (fd still owned by the caller) when
// the file cannot be mapped (empty, or no address space for it): the caller reads with pread.
std::unique_ptr<IoEngine> make_mmap_engine(int fd, std::uint64_t size_bytes,
                                           const std::string& path);

// Called (async-signal-safe) before the process exits on a fault in a mapping, e.g. to remove
// temporary output files. One hook; nullptr clears it.
void set_mapped_fault_hook(void (*hook)());

}  // namespace thinmeta::pdata
