#include "cluster/gradient_reducer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace facetex::cluster {

GradientReducer::GradientReducer(std::shared_ptr<Communicator> comm, std::vector<at::Tensor> params,
                                 ReducerOptions options)
    : comm_(std::move(comm)), params_(std::move(params)) {
  FACETEX_CHECK_USAGE(options.bucket_mb > 0, "gradient bucket size must be positive (got {} MB)", options.bucket_mb);
  FACETEX_CHECK_USAGE(!params_.empty(), "gradient reducer: no parameters");
  const auto options0 = params_.front().options();
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(options.bucket_mb * 1024 * 1024) /
                                               static_cast<int64_t>(params_.front().element_size()));
  slots_.resize(params_.size());
  // Reverse registration order: backward reaches the last layers first, so their bucket completes first.
  std::vector<int64_t> sizes;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    FACETEX_CHECK_USAGE(p.scalar_type() == options0.dtype().toScalarType() && p.device() == options0.device(),
                        "gradient reducer: parameters must share one dtype and device");
    if (buckets_.empty() || (sizes.back() > 0 && sizes.back() + p.numel() > cap)) {
      buckets_.emplace_back();
      sizes.push_back(0);
    }
    slots_[k] = {buckets_.size() - 1, sizes.back(), p.numel()};
    buckets_.back().params.push_back(k);
    sizes.back() += p.numel();
  }
  for (size_t b = 0; b < buckets_.size(); ++b) buckets_[b].buffer = at::zeros({sizes[b]}, options0);
  for (size_t k = 0; k < params_.size(); ++k) {
    hooks_.push_back(params_[k].register_hook([this, k](const at::Tensor& grad) { on_gradient(k, grad); }));
  }
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < params_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  FACETEX_CHECK_RUNTIME(!armed_, "gradient reducer armed twice without finish()");
  armed_ = true;
  next_launch_ = 0;
  for (auto& s : slots_) s.reported = false;
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.work.reset();
  }
  last_ = ReductionStats{};
}

// The gradient of this backward plus what earlier rounds accumulated — what .grad will hold after backward.
void GradientReducer::on_gradient(size_t k, const at::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;  // an earlier accumulation round: gradients just accumulate locally
  Slot& s = slots_[k];
  at::Tensor view = buckets_[s.bucket].buffer.narrow(0, s.offset, s.numel).view_as(params_[k]);
  if (s.reported) {  // a second gradient for the same leaf in one backward (kept correct, not expected)
    view.add_(grad);
    return;
  }
  const at::Tensor& old = params_[k].grad();
  if (old.defined()) {
    at::add_out(view, old, grad);
  } else {
    view.copy_(grad);
  }
  s.reported = true;
  if (--buckets_[s.bucket].pending == 0) launch_ready_locked();
}

void GradientReducer::fill_from_grad(size_t k) {
  Slot& s = slots_[k];
  at::Tensor view = buckets_[s.bucket].buffer.narrow(0, s.offset, s.numel);
  const at::Tensor& g = params_[k].grad();
  if (g.defined()) {
    view.copy_(g.reshape({-1}));
  } else {
    view.zero_();
  }
  s.reported = true;
}

void GradientReducer::launch_ready_locked() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_++];
    b.work = comm_->allreduce_async(b.buffer);
    last_.bytes += b.buffer.numel() * static_cast<int64_t>(b.buffer.element_size());
    last_.buckets += 1;
  }
}

ReductionStats GradientReducer::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  FACETEX_CHECK_RUNTIME(armed_, "gradient reducer: finish() without arm()");
  last_.buckets_before_finish = static_cast<int>(next_launch_);
  // Parameters this backward did not reach contribute their .grad (or zeros); same set on every rank.
  for (size_t k = 0; k < params_.size(); ++k) {
    if (slots_[k].reported) continue;
    fill_from_grad(k);
    --buckets_[slots_[k].bucket].pending;
  }
  launch_ready_locked();
  armed_ = false;
  lock.unlock();
  return complete();
}

ReductionStats GradientReducer::reduce_now() {
  arm();
  return finish();
}

ReductionStats GradientReducer::complete() {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  for (auto& b : buckets_) b.work->wait();
  last_.exposed_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  at::NoGradGuard no_grad;
  for (auto& b : buckets_) last_.comm_seconds += b.work->busy_seconds();
  const double scale = 1.0 / comm_->size();
  for (size_t k = 0; k < params_.size(); ++k) {
    at::Tensor& p = params_[k];
    const Slot& s = slots_[k];
    at::Tensor sum = buckets_[s.bucket].buffer.narrow(0, s.offset, s.numel).view_as(p);
    // Backward gave every parameter it reached a .grad; the others stay without one (unused on every rank).
    // The average is written in the same pass as the copy back.
    if (p.grad().defined()) at::mul_out(p.mutable_grad(), sum, scale);
  }
  return last_;
}

}  // namespace facetex::cluster
