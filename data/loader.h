// The streaming loader: worker threads read rows (pread, outside the HDF5 lock), check CRCs, decode, and fill
// uint8 NCHW batches into a bounded queue; batches come out in a deterministic order that depends only on
// (seed, rank, world, batch, start cursor) — never on thread timing. Order semantics: data/sampler.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "data/dataset.h"
#include "data/sampler.h"

namespace facetex::data {

// Host memory for batch buffers (e.g. pinned memory, so host-to-device copies can overlap). The trainer keeps the
// default pageable memory: its non-blocking copies are staged by the driver before the call returns, so a batch
// buffer may be reused as soon as the copy is queued — with pinned memory it would have to outlive the copy.
class HostAllocator {
 public:
  virtual ~HostAllocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
};

struct LoaderOptions {
  int64_t batch = 32;         // images per rank per step
  int64_t rank = 0;
  int64_t world = 1;
  uint64_t seed = 0;
  int threads = 0;            // worker threads; 0: one per hardware thread
  int prefetch = 0;           // ready batches kept ahead of the consumer; 0: 2 * threads
  bool xflip = false;         // mirror augmentation as in StyleGAN2-ADA --mirror: 2n items, item i >= n is row i-n
                              // mirrored along x
  OnCorrupt on_corrupt = OnCorrupt::kFail;
  Cursor start;               // resume point (from a checkpoint)
  int64_t limit = -1;         // stop at this stream position (e.g. epochs * items()); -1: endless
  bool drop_last = false;     // with a limit: stop before a step that would be partial on any rank. Without it,
                              // every rank still gets the same number of batches; the last may be short or empty
  std::shared_ptr<HostAllocator> allocator;  // null: 4 KiB-aligned heap memory
};

struct Batch {
  int64_t step = 0;           // steps since the start cursor
  int64_t size = 0;           // images in this batch (< batch, even 0, only in the last step of a finite stream)
  int channels = 3, height = 0, width = 0;
  std::shared_ptr<uint8_t> buffer;  // size x channels x height x width, uint8, NCHW
  std::vector<int64_t> rows;        // dataset row of each image
  std::vector<uint8_t> flipped;     // 1 where the image was mirrored
  std::vector<int64_t> positions;   // stream position of each image
  Cursor cursor_after;              // the cursor of every rank after this step: what a checkpoint saves

  uint8_t* data() const { return buffer.get(); }
  size_t image_bytes() const { return size_t(channels) * height * width; }
  size_t bytes() const { return size_t(size) * image_bytes(); }
};

struct LoaderStats {
  int64_t images = 0;
  int64_t stored_bytes = 0;     // bytes read from shards
  int64_t corrupt_skips = 0;    // rows replaced under --on-corrupt=skip
  double consumer_wait_seconds = 0;  // time next() spent waiting for workers (loader starvation)
};

class StreamingLoader {
 public:
  StreamingLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);
  ~StreamingLoader();  // stops and joins the workers
  StreamingLoader(const StreamingLoader&) = delete;
  StreamingLoader& operator=(const StreamingLoader&) = delete;

  // The next batch in order; nullopt at the end of a finite stream. A corrupt row under OnCorrupt::kFail throws
  // DataError naming the shard file, row and key.
  std::optional<Batch> next();
  // The cursor after the last batch next() returned (to store in a checkpoint).
  Cursor cursor() const;
  // Items per epoch (rows, doubled with xflip).
  int64_t items() const;
  LoaderStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace facetex::data
