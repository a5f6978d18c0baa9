#include "data/loader.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "core/work_pool.h"
#include "monitoring/metrics.h"

namespace facetex::data {
namespace {

class AlignedHeap : public HostAllocator {
 public:
  void* allocate(size_t bytes) override {
    void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    FACETEX_CHECK_RUNTIME(p != nullptr, "out of memory allocating a {} byte batch", bytes);
    return p;
  }
  void deallocate(void* p, size_t) override { std::free(p); }
};

// Recycles batch buffers: large allocations are page-faulted on first touch, which costs as much as reading the
// images, so buffers go back to the pool when the consumer drops a batch.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  BufferPool(std::shared_ptr<HostAllocator> allocator, size_t bytes, size_t keep)
      : allocator_(std::move(allocator)), bytes_(bytes), keep_(keep) {}
  ~BufferPool() {
    for (void* p : free_) allocator_->deallocate(p, bytes_);
  }
  std::shared_ptr<uint8_t> acquire() {
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        p = free_.back();
        free_.pop_back();
      }
    }
    if (p == nullptr) p = allocator_->allocate(bytes_);
    auto self = shared_from_this();
    return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [self](uint8_t* q) { self->release(q); });
  }

 private:
  void release(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < keep_) {
      free_.push_back(p);
    } else {
      allocator_->deallocate(p, bytes_);
    }
  }
  std::shared_ptr<HostAllocator> allocator_;
  size_t bytes_, keep_;
  std::mutex mu_;
  std::vector<void*> free_;
};

struct Result {
  std::optional<Batch> batch;
  std::exception_ptr error;
};

struct LoaderMetrics {
  metrics::Counter& images = metrics::counter("facetex_loader_images_total", "Images delivered by the loader");
  metrics::Counter& bytes = metrics::counter("facetex_loader_read_bytes_total", "Stored bytes read from shards");
  metrics::Counter& corrupt =
      metrics::counter("facetex_loader_corrupt_rows_total", "Corrupt rows replaced under --on-corrupt=skip");
  metrics::Gauge& queue = metrics::gauge("facetex_loader_queue_depth", "Ready batches waiting for the consumer");
  metrics::Histogram& wait = metrics::histogram(
      "facetex_loader_wait_seconds", "Time the consumer waited for a batch (starvation)", metrics::seconds_buckets());
};
LoaderMetrics& loader_metrics() {
  static LoaderMetrics m;
  return m;
}

}  // namespace

struct StreamingLoader::Impl {
  std::shared_ptr<const Dataset> ds;
  LoaderOptions o;
  int64_t n_rows = 0, n_items = 0, start = 0, end_step = INT64_MAX;
  size_t image_bytes = 0;
  std::shared_ptr<BufferPool> pool;

  mutable std::mutex mu;
  std::condition_variable work_cv, ready_cv;
  int64_t next_claim = 0, next_deliver = 0;
  bool stop = false;
  std::map<int64_t, Result> ready;
  std::exception_ptr failed;  // once a step failed, every later next() reports the same error
  std::vector<std::thread> workers;

  std::mutex perm_mu;
  std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> perms;
  std::mutex bad_mu;
  std::set<int64_t> bad_rows;

  std::atomic<int64_t> images{0}, stored_bytes{0}, corrupt_skips{0};
  double wait_seconds = 0;

  std::shared_ptr<const std::vector<int64_t>> permutation(int64_t epoch) {
    std::lock_guard<std::mutex> lock(perm_mu);
    auto it = perms.find(epoch);
    if (it != perms.end()) return it->second;
    auto p = std::make_shared<const std::vector<int64_t>>(epoch_permutation(n_items, o.seed, epoch));
    perms.emplace(epoch, p);
    while (perms.size() > 3) perms.erase(perms.begin());  // steps move forward: old epochs are not needed again
    return p;
  }

  bool known_bad(int64_t row) {
    std::lock_guard<std::mutex> lock(bad_mu);
    return bad_rows.count(row) > 0;
  }

  // Reads item v into `out`; returns false (after recording it) when the row is corrupt and skipping is allowed.
  bool try_read(int64_t v, uint8_t* out, std::string& scratch, int64_t* row_out, bool* flip_out) {
    const int64_t row = v % n_rows;
    const bool flip = o.xflip && v >= n_rows;
    if (o.on_corrupt == OnCorrupt::kSkip && known_bad(row)) return false;
    auto loc = ds->locate(row);
    try {
      loc.shard->read_chw(loc.row, flip, out, scratch);
    } catch (const DataError& e) {
      if (o.on_corrupt == OnCorrupt::kFail) throw;
      bool first;
      {
        std::lock_guard<std::mutex> lock(bad_mu);
        first = bad_rows.insert(row).second;
      }
      if (first) log::get("data").warn("skipping corrupt row (--on-corrupt=skip): {}", e.what());
      return false;
    }
    const int64_t n = loc.shard->stored_bytes(loc.row);
    stored_bytes += n;
    loader_metrics().bytes.inc(static_cast<double>(n));
    *row_out = row;
    *flip_out = flip;
    return true;
  }

  Batch build(int64_t step) {
    Batch b;
    b.step = step;
    b.height = b.width = ds->resolution();
    b.buffer = pool->acquire();
    for (int64_t j = 0; j < o.batch; ++j) {
      const int64_t g = stream_position(start, step, o.rank, o.world, o.batch, j);
      if (o.limit >= 0 && g >= o.limit) break;
      const Cursor c = Cursor::from_global(g, n_items);
      auto perm = permutation(c.epoch);
      uint8_t* out = b.data() + size_t(j) * image_bytes;
      int64_t row = 0;
      bool flip = false;
      thread_local std::string scratch;
      bool ok = try_read((*perm)[c.position], out, scratch, &row, &flip);
      if (!ok) {
        ++corrupt_skips;
        loader_metrics().corrupt.inc();
      }
      // Under --on-corrupt=skip a bad row is replaced by the next readable item of the same epoch's order:
      // deterministic, local to this rank, and the batch keeps its size.
      for (int64_t k = 1; !ok && k < n_items; ++k) {
        ok = try_read((*perm)[(c.position + k) % n_items], out, scratch, &row, &flip);
      }
      FACETEX_CHECK_DATA(ok, "{}: no readable row left in the dataset", ds->dir().string());
      b.rows.push_back(row);
      b.flipped.push_back(flip ? 1 : 0);
      b.positions.push_back(g);
    }
    b.size = static_cast<int64_t>(b.rows.size());
    int64_t after = start + (step + 1) * o.world * o.batch;
    if (o.limit >= 0) after = std::min(after, o.limit);
    b.cursor_after = Cursor::from_global(after, n_items);
    return b;
  }

  void work() {
    for (;;) {
      int64_t step;
      {
        std::unique_lock<std::mutex> lock(mu);
        work_cv.wait(lock, [&] { return stop || (next_claim < next_deliver + o.prefetch && next_claim < end_step); });
        if (stop) return;
        step = next_claim++;
      }
      Result r;
      try {
        r.batch = build(step);
      } catch (...) {
        r.error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu);
      ready.emplace(step, std::move(r));
      loader_metrics().queue.set(static_cast<double>(ready.size()));
      ready_cv.notify_all();
    }
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    work_cv.notify_all();
    for (auto& t : workers) {
      if (t.joinable()) t.join();
    }
    workers.clear();
  }
};

StreamingLoader::StreamingLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.ds = std::move(dataset);
  s.o = std::move(options);
  FACETEX_CHECK_USAGE(s.o.batch >= 1, "batch must be >= 1, got {}", s.o.batch);
  FACETEX_CHECK_USAGE(s.o.world >= 1 && s.o.rank >= 0 && s.o.rank < s.o.world, "rank {} of world {} is invalid",
                      s.o.rank, s.o.world);
  if (s.o.threads <= 0) s.o.threads = hardware_workers();
  if (s.o.prefetch <= 0) s.o.prefetch = 2 * s.o.threads;
  if (!s.o.allocator) s.o.allocator = std::make_shared<AlignedHeap>();
  s.n_rows = s.ds->size();
  s.n_items = s.o.xflip ? 2 * s.n_rows : s.n_rows;
  FACETEX_CHECK_USAGE(s.o.start.epoch >= 0 && s.o.start.position >= 0 && s.o.start.position < s.n_items,
                      "loader cursor (epoch {}, position {}) does not fit a dataset of {} items", s.o.start.epoch,
                      s.o.start.position, s.n_items);
  s.start = s.o.start.global(s.n_items);
  if (s.o.limit >= 0) {
    const int64_t per_step = s.o.world * s.o.batch, remaining = std::max<int64_t>(0, s.o.limit - s.start);
    // The same step count on every rank (collectives need it): without drop_last the last step may leave some
    // ranks with a short or even empty batch.
    s.end_step = s.o.drop_last ? remaining / per_step : (remaining + per_step - 1) / per_step;
  }
  s.image_bytes = size_t(3) * s.ds->resolution() * s.ds->resolution();
  s.pool = std::make_shared<BufferPool>(s.o.allocator, s.image_bytes * size_t(s.o.batch), size_t(s.o.prefetch) + 2);
  for (int i = 0; i < s.o.threads; ++i) s.workers.emplace_back([this] { impl_->work(); });
}

StreamingLoader::~StreamingLoader() { impl_->shutdown(); }

std::optional<Batch> StreamingLoader::next() {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mu);
  if (s.failed) std::rethrow_exception(s.failed);
  if (s.next_deliver >= s.end_step) return std::nullopt;
  const auto t0 = std::chrono::steady_clock::now();
  s.ready_cv.wait(lock, [&] { return s.ready.count(s.next_deliver) > 0; });
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.wait_seconds += waited;
  loader_metrics().wait.observe(waited);
  auto node = s.ready.extract(s.next_deliver);
  loader_metrics().queue.set(static_cast<double>(s.ready.size()));
  Result r = std::move(node.mapped());
  if (r.error) {
    s.failed = r.error;
    lock.unlock();
    s.shutdown();
    std::rethrow_exception(r.error);
  }
  ++s.next_deliver;
  lock.unlock();
  s.work_cv.notify_all();
  s.images += r.batch->size;
  loader_metrics().images.inc(static_cast<double>(r.batch->size));
  return std::move(r.batch);
}

Cursor StreamingLoader::cursor() const {
  const Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  int64_t g = s.start + s.next_deliver * s.o.world * s.o.batch;
  if (s.o.limit >= 0) g = std::min(g, std::max(s.o.limit, s.start));
  return Cursor::from_global(g, s.n_items);
}

int64_t StreamingLoader::items() const { return impl_->n_items; }

LoaderStats StreamingLoader::stats() const {
  const Impl& s = *impl_;
  LoaderStats st;
  st.images = s.images.load();
  st.stored_bytes = s.stored_bytes.load();
  st.corrupt_skips = s.corrupt_skips.load();
  std::lock_guard<std::mutex> lock(s.mu);
  st.consumer_wait_seconds = s.wait_seconds;
  return st;
}

}  // namespace facetex::data
