#include "cluster/gradient_reducer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "core/error.h"

namespace facetex::cluster {

namespace {

// Runs after a parameter's AccumulateGrad node: its .grad (a view into the bucket) holds this backward's gradient.
class AccumulatedHook final : public torch::autograd::FunctionPostHook {
 public:
  AccumulatedHook(std::weak_ptr<GradientReducer*> reducer, std::function<void(GradientReducer&)> notify)
      : reducer_(std::move(reducer)), notify_(std::move(notify)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    if (auto r = reducer_.lock()) notify_(**r);
    return outputs;
  }

 private:
  std::weak_ptr<GradientReducer*> reducer_;
  std::function<void(GradientReducer&)> notify_;
};

}  // namespace

GradientReducer::GradientReducer(std::shared_ptr<Communicator> comm, std::vector<at::Tensor> params,
                                 ReducerOptions options)
    : comm_(std::move(comm)), params_(std::move(params)), self_(std::make_shared<GradientReducer*>(this)) {
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
    FACETEX_CHECK_USAGE(params_[k].requires_grad(), "gradient reducer: parameter {} does not require grad", k);
    std::shared_ptr<torch::autograd::Node> acc = torch::autograd::impl::grad_accumulator(params_[k]);
    FACETEX_CHECK_RUNTIME(acc != nullptr, "gradient reducer: parameter {} has no gradient accumulator", k);
    acc->add_post_hook(std::make_unique<AccumulatedHook>(self_, [k](GradientReducer& r) { r.on_accumulated(k); }));
    accumulators_.push_back(acc);
  }
}

GradientReducer::~GradientReducer() { self_.reset(); }

at::Tensor GradientReducer::slot_view(size_t k) const {
  const Slot& s = slots_[k];
  return buckets_[s.bucket].buffer.narrow(0, s.offset, s.numel).view_as(params_[k]);
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  FACETEX_CHECK_RUNTIME(!armed_, "gradient reducer armed twice without finish()");
  armed_ = true;
  next_launch_ = 0;
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < params_.size(); ++k) {
    Slot& s = slots_[k];
    s.reported = false;
    at::Tensor view = slot_view(k);
    const at::Tensor& g = params_[k].grad();
    s.had_grad = g.defined();
    if (!s.had_grad) {
      view.zero_();
    } else if (g.data_ptr() != view.data_ptr()) {
      view.copy_(g);  // earlier accumulation rounds' sum (or a gradient from elsewhere) moves into the bucket
    }
    params_[k].mutable_grad() = view;  // backward now accumulates in place into the bucket
  }
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.work.reset();
  }
  last_ = ReductionStats{};
}

void GradientReducer::on_accumulated(size_t k) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || slots_[k].reported) return;  // an earlier round (not armed), or a leaf reached twice
  slots_[k].reported = true;
  if (--buckets_[slots_[k].bucket].pending == 0) launch_ready_locked();
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
  // Parameters this backward did not reach contribute what their slot holds (their earlier .grad, or zeros); the
  // set is the same on every rank.
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!slots_[k].reported) --buckets_[slots_[k].bucket].pending;
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
  for (auto& b : buckets_) {
    last_.comm_seconds += b.work->busy_seconds();
    if (comm_->size() > 1) b.buffer.mul_(1.0 / comm_->size());  // in place: every .grad is a view of a bucket
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    const Slot& s = slots_[k];
    if (!s.reported && !s.had_grad) params_[k].mutable_grad() = at::Tensor();  // unused everywhere: no gradient
  }
  return last_;
}

}  // namespace facetex::cluster
