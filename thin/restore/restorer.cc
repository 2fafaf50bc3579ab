// SPDX-License-Identifier: GPL-3.0-or-later
// The collecting and validating half of the Restorer (the writing half is restore_writer.cc).
#include <algorithm>

#include "thin/restore/restorer.h"

namespace thinmeta::thin {

namespace {

Result<> invalid(std::string what) { return fail(Errc::kBadFormat, std::move(what)); }

}  // namespace

Result<> Restorer::begin_superblock(const SuperblockInfo& info) {
  if (in_superblock_ || done_) return invalid("duplicated superblock");
  in_superblock_ = true;
  sb_ = Superblock{};
  sb_.time = info.time;
  sb_.flags = opts_.clear_needs_check ? 0 : info.flags;
  sb_.trans_id = opts_.trans_id.value_or(info.trans_id);
  sb_.data_block_size = opts_.data_block_size.value_or(info.data_block_size);
  sb_.data_sm.nr_blocks = opts_.nr_data_blocks.value_or(info.nr_data_blocks);
  std::uint32_t dbs = sb_.data_block_size;
  if (dbs < kMinDataBlockSize || dbs > kMaxDataBlockSize || dbs % kMinDataBlockSize != 0)
    return invalid("invalid data block size " + std::to_string(dbs) +
                   " (it must be a multiple of 128 sectors between 128 and 2097152)");
  if (sb_.data_sm.nr_blocks > kMaxDataBlock + 1)
    return invalid("nr_data_blocks " + std::to_string(sb_.data_sm.nr_blocks) +
                   " is too large (data block numbers have 40 bits)");
  if (info.metadata_snap && *info.metadata_snap != 0)
    warnings_.push_back("metadata_snap attribute ignored: a restore never holds a snapshot");
  return {};
}

Result<> Restorer::end_superblock() {
  if (!in_superblock_) return invalid("missing superblock");
  in_superblock_ = false;
  done_ = true;
  if (opts_.time_covers_mappings) sb_.time = std::max(sb_.time, max_time_);
  return {};
}

Result<> Restorer::begin_device(const DeviceInfo& dev) {
  if (!in_superblock_ || cur_dev_ || cur_def_) return invalid("unexpected <device>");
  if (!dev_ids_.insert(dev.dev_id).second)
    return invalid("Device already exists (dev_id " + std::to_string(dev.dev_id) + ")");
  // The pool time only grows and a device takes it when created or snapshotted (FORMAT.md
  // §10): a device time beyond it is metadata no kernel wrote.
  if (!opts_.time_covers_mappings) {
    auto newer = [&](const char* attr, std::uint32_t t) {
      return invalid("device " + std::to_string(dev.dev_id) + " " + attr + " " +
                     std::to_string(t) + " is newer than the superblock time " +
                     std::to_string(sb_.time) + "; fix the superblock's time attribute");
    };
    if (dev.details.creation_time > sb_.time)
      return newer("creation_time", dev.details.creation_time);
    if (dev.details.snapshotted_time > sb_.time)
      return newer("snap_time", dev.details.snapshotted_time);
  }
  devices_.push_back(RestoreDevice{dev.dev_id, dev.details, {}, true});
  max_time_ = std::max({max_time_, dev.details.creation_time, dev.details.snapshotted_time});
  cur_dev_ = &devices_.back();
  if (opts_.streaming) {
    has_last_ = false;
    counter_ = pdata::LeafLevelCounter(kMappingValueSize);
    stream_entries_ = 0;
  }
  return {};
}

Result<> Restorer::end_device() {
  if (!cur_dev_) return invalid("unexpected </device>");
  std::uint64_t entries = 0;
  if (opts_.streaming) {
    stream_flush();
    entries = stream_entries_;
    stream_blocks_ += counter_.finish();
  }
  auto r = opts_.streaming ? Result<>{} : finish_items(cur_dev_->items, cur_dev_->sorted, entries);
  if (!r) return fail(r.error().code, r.error().what + " in device " + std::to_string(cur_dev_->id));
  cur_dev_->details.mapped_blocks = entries;  // recomputed, never taken from the XML
  cur_dev_->sorted = true;
  cur_dev_ = nullptr;
  return {};
}

Result<> Restorer::begin_def(std::string_view name) {
  if (!in_superblock_ || cur_dev_ || cur_def_)
    return invalid("<def> is only allowed between devices (nested subtrees are not allowed)");
  if (opts_.streaming) {
    needs_memory_ = true;
    return fail(Errc::kInvalidArgument, "<def> needs the in-memory restore");
  }
  if (!def_names_.emplace(std::string(name), static_cast<std::uint32_t>(defs_.size())).second)
    return invalid("duplicate <def> name '" + std::string(name) + "'");
  defs_.emplace_back();
  cur_def_ = &defs_.back();
  return {};
}

Result<> Restorer::end_def() {
  if (!cur_def_) return invalid("unexpected </def>");
  THINMETA_CHECK(finish_items(cur_def_->runs, cur_def_->sorted, cur_def_->nr_entries));
  cur_def_->sorted = true;
  cur_def_ = nullptr;
  return {};
}

Result<> Restorer::ref(std::string_view name) {
  if (!cur_dev_) return invalid("<ref> is only allowed inside a <device>");
  auto it = def_names_.find(std::string(name));
  if (it == def_names_.end()) return invalid("Couldn't find sub tree '" + std::string(name) + "'");
  const RestoreDef& d = defs_[it->second];
  if (d.runs.empty()) return {};
  RestoreItem item;
  item.begin = d.runs.front().begin;
  item.end = d.runs.back().end;
  item.def = it->second;
  return add_item(cur_dev_->items, cur_dev_->sorted, item);
}

Result<> Restorer::map(const MappingRun& run) {
  // The common case in one test: a run of a device in streaming mode that passes every check
  // below (each is repeated there, with its message, when this one fails).
  const std::uint64_t nr_data = sb_.data_sm.nr_blocks;
  if (opts_.streaming && cur_dev_ && run.len && run.time <= kMaxTime &&
      (opts_.time_covers_mappings || run.time <= sb_.time) &&
      run.thin_begin <= std::numeric_limits<std::uint64_t>::max() - run.len &&
      run.data_begin < nr_data && run.len <= nr_data - run.data_begin) {
    max_time_ = std::max(max_time_, run.time);
    return stream_item(RestoreItem{run.thin_begin, run.thin_begin + run.len, run.data_begin,
                                   run.time, RestoreItem::kRun});
  }
  return map_checked(run);
}

Result<> Restorer::map_checked(const MappingRun& run) {
  if (!cur_dev_ && !cur_def_) return invalid("Mapping tags must appear within a <def> or <device> tag");
  if (run.time > kMaxTime)
    return invalid("time " + std::to_string(run.time) + " in a mapping is too large (max " +
                   std::to_string(kMaxTime) + ")");
  if (!opts_.time_covers_mappings && run.time > sb_.time)
    return invalid("mapping time " + std::to_string(run.time) +
                   " is newer than the superblock time " + std::to_string(sb_.time) +
                   ": the kernel would take a shared block for an unshared one; fix the "
                   "superblock's time attribute");
  if (run.len == 0) return {};
  max_time_ = std::max(max_time_, run.time);
  if (run.thin_begin > std::numeric_limits<std::uint64_t>::max() - run.len)
    return invalid("range mapping beyond the largest virtual block");
  const std::uint64_t nr_data = sb_.data_sm.nr_blocks;
  if (nr_data == 0)  // a dump of a metadata snapshot: it has no data size (FORMAT.md §9)
    return invalid("mapping beyond end of data device (" + std::to_string(run.data_begin) +
                   " >= 0): nr_data_blocks is 0, as thin_dump -m prints for a live pool; give "
                   "the data size with --nr-data-blocks N (N: nr_data_blocks of a thin_dump "
                   "without -m, or the total after '/' in the data usage of 'dmsetup status "
                   "POOL')");
  if (run.data_begin >= nr_data || run.len > nr_data - run.data_begin)
    return invalid("mapping beyond end of data device (" +
                   std::to_string(std::max(run.data_begin, nr_data)) + " >= " +
                   std::to_string(nr_data) + ")");
  RestoreItem item{run.thin_begin, run.thin_begin + run.len, run.data_begin, run.time,
                   RestoreItem::kRun};
  if (cur_def_) return add_item(cur_def_->runs, cur_def_->sorted, item);
  if (opts_.streaming) return stream_item(item);
  return add_item(cur_dev_->items, cur_dev_->sorted, item);
}

// Streaming: the same checks and merging as add_item, keeping only the last run; a run that
// comes out of order stops the pass (needs_memory()).
Result<> Restorer::stream_item(const RestoreItem& it) {
  if (has_last_) {
    if (it.begin < last_.end) {
      if (it.end > last_.begin)
        return invalid("duplicate or overlapping mapping of virtual block " +
                       std::to_string(std::max(it.begin, last_.begin)));
      needs_memory_ = true;
      return fail(Errc::kInvalidArgument, "unsorted mappings need the in-memory restore");
    }
    if (it.begin == last_.end && it.data == last_.data + (last_.end - last_.begin) &&
        it.time == last_.time) {
      last_.end = it.end;
      return {};
    }
    stream_flush();
  }
  last_ = it;
  has_last_ = true;
  return {};
}

void Restorer::stream_flush() {
  if (!has_last_) return;
  std::uint64_t n = last_.end - last_.begin;
  counter_.add(n);
  stream_data_.add(last_.data, n);
  stream_entries_ += n;
  has_last_ = false;
}

// In-order input is appended (and merged with the previous run when it continues it);
// anything else is sorted once at the end of the device.
Result<> Restorer::add_item(std::vector<RestoreItem>& items, bool& sorted, const RestoreItem& it) {
  if (sorted && !items.empty()) {
    RestoreItem& last = items.back();
    if (it.begin < last.end) {
      if (it.end > last.begin)
        return invalid("duplicate or overlapping mapping of virtual block " +
                       std::to_string(std::max(it.begin, last.begin)));
      sorted = false;
    } else if (it.def == RestoreItem::kRun && last.def == RestoreItem::kRun &&
               it.begin == last.end && it.data == last.data + (last.end - last.begin) &&
               it.time == last.time) {
      last.end = it.end;
      return {};
    }
  }
  items.push_back(it);
  return {};
}

Result<> Restorer::finish_items(std::vector<RestoreItem>& items, bool sorted,
                                std::uint64_t& entries) {
  if (!sorted) {
    std::sort(items.begin(), items.end(),
              [](const RestoreItem& a, const RestoreItem& b) { return a.begin < b.begin; });
    std::size_t out = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (out > 0) {
        RestoreItem& last = items[out - 1];
        const RestoreItem& it = items[i];
        if (it.begin < last.end)
          return invalid("duplicate or overlapping mapping of virtual block " +
                         std::to_string(it.begin));
        if (it.def == RestoreItem::kRun && last.def == RestoreItem::kRun &&
            it.begin == last.end && it.data == last.data + (last.end - last.begin) &&
            it.time == last.time) {
          last.end = it.end;
          continue;
        }
      }
      items[out++] = items[i];
    }
    items.resize(out);
  }
  items.shrink_to_fit();
  entries = 0;
  for (const RestoreItem& it : items)
    entries += it.def == RestoreItem::kRun ? it.end - it.begin : defs_[it.def].nr_entries;
  return {};
}

}  // namespace thinmeta::thin
