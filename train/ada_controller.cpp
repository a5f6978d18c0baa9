// The ADA p controller (see ada_controller.h).
#include "train/ada_controller.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace facetex::train {
namespace {

void check_options(const AdaOptions& o) {
  FACETEX_CHECK_USAGE(std::isfinite(o.target), "ada target must be finite, got {}", o.target);
  FACETEX_CHECK_USAGE(o.interval >= 1, "ada interval must be >= 1, got {}", o.interval);
  FACETEX_CHECK_USAGE(std::isfinite(o.kimg) && o.kimg > 0, "ada kimg must be > 0, got {}", o.kimg);
}

double sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }  // np.sign (x is never NaN here)

}  // namespace

nlohmann::json AdaOptions::to_json() const { return {{"target", target}, {"interval", interval}, {"kimg", kimg}}; }

AdaOptions AdaOptions::from_json(const nlohmann::json& j) {
  FACETEX_CHECK_USAGE(j.is_object(), "ada options must be a JSON object, got {}", j.dump());
  AdaOptions o;
  for (const auto& [key, value] : j.items()) {
    FACETEX_CHECK_USAGE(value.is_number(), "ada option {} must be a number, got {}", key, value.dump());
    if (key == "target") {
      o.target = value.get<double>();
    } else if (key == "interval") {
      FACETEX_CHECK_USAGE(value.is_number_integer(), "ada option interval must be an integer, got {}", value.dump());
      o.interval = value.get<int>();
    } else if (key == "kimg") {
      o.kimg = value.get<double>();
    } else {
      throw UsageError(fmt::format("unknown ada option '{}' (target, interval, kimg)", key));
    }
  }
  check_options(o);
  return o;
}

nlohmann::json AdaState::to_json() const {
  nlohmann::json j = {{"p", p}, {"count", count}, {"sum", sum}, {"iteration", iteration}};
  j["last_rt"] = std::isnan(last_rt) ? nlohmann::json(nullptr) : nlohmann::json(last_rt);
  return j;
}

AdaState AdaState::from_json(const nlohmann::json& j) {
  FACETEX_CHECK_DATA(j.is_object() && j.contains("p") && j.contains("count") && j.contains("sum") &&
                         j.contains("iteration"),
                     "ada state must be an object with p, count, sum and iteration, got {}", j.dump());
  AdaState s;
  s.p = j.at("p").get<double>();
  s.count = j.at("count").get<double>();
  s.sum = j.at("sum").get<double>();
  s.iteration = j.at("iteration").get<int64_t>();
  if (j.contains("last_rt") && !j.at("last_rt").is_null()) s.last_rt = j.at("last_rt").get<double>();
  return s;
}

AdaController::AdaController(AdaOptions options, double initial_p) : options_(options) {
  check_options(options_);
  set_p(initial_p);
}

void AdaController::set_p(double p) {
  FACETEX_CHECK_USAGE(std::isfinite(p) && p >= 0.0, "augment probability p must be finite and >= 0, got {}", p);
  p_ = static_cast<float>(p);
}

void AdaController::report(const at::Tensor& real_logits) {
  FACETEX_CHECK_RUNTIME(real_logits.defined(), "AdaController::report: undefined logits");
  if (real_logits.numel() == 0) return;
  const at::Tensor s = real_logits.detach().sign().sum(at::kDouble);
  device_sum_ = device_sum_.defined() ? device_sum_ + s : s;
  count_ += static_cast<double>(real_logits.numel());
}

void AdaController::fold() const {
  if (!device_sum_.defined()) return;
  sum_ += device_sum_.item<double>();  // integer-valued: exact in float64 whatever the order
  device_sum_ = at::Tensor();
}

std::array<double, 2> AdaController::stats() const {
  fold();
  return {count_, sum_};
}

void AdaController::report(double count, double sum_of_signs) {
  FACETEX_CHECK_RUNTIME(count >= 0 && std::isfinite(count) && std::isfinite(sum_of_signs) &&
                            std::abs(sum_of_signs) <= count,
                        "AdaController::report: invalid statistic count {} sum {}", count, sum_of_signs);
  count_ += count;
  sum_ += sum_of_signs;
}

at::Tensor AdaController::stats_tensor(const c10::Device& device) const {
  fold();
  return at::tensor(std::vector<double>{count_, sum_}, at::TensorOptions().dtype(at::kDouble)).to(device);
}

double AdaController::step_size(int64_t batch_size) const {
  return static_cast<double>(batch_size * options_.interval) / (options_.kimg * 1000);
}

double AdaController::adjust(int64_t batch_size, const std::array<double, 2>& global_stats) {
  FACETEX_CHECK_RUNTIME(batch_size > 0, "AdaController::adjust: batch size must be > 0, got {}", batch_size);
  const auto [count, sum] = global_stats;
  if (!(count > 0)) return 0.0;
  last_rt_ = sum / count;
  const double change = sign(last_rt_ - options_.target) * step_size(batch_size);
  // The reference: p.copy_((p + adjust).max(0)) on a float32 buffer, i.e. float32 arithmetic.
  p_ = std::max(p_ + static_cast<float>(change), 0.0f);
  return change;
}

bool AdaController::step(int64_t batch_size, const Reducer& reduce) {
  ++iteration_;
  if (iteration_ % options_.interval != 0) return false;
  const std::array<double, 2> global = reduce ? reduce(stats()) : stats();
  adjust(batch_size, global);
  count_ = 0.0;
  sum_ = 0.0;
  device_sum_ = at::Tensor();
  return true;
}

AdaState AdaController::state() const {
  fold();
  AdaState s;
  s.p = p();
  s.count = count_;
  s.sum = sum_;
  s.iteration = iteration_;
  s.last_rt = last_rt_;
  return s;
}

void AdaController::load_state(const AdaState& s) {
  FACETEX_CHECK_DATA(std::isfinite(s.p) && s.p >= 0 && std::isfinite(s.count) && s.count >= 0 &&
                         std::isfinite(s.sum) && s.iteration >= 0,
                     "invalid ADA state p {} count {} sum {} iteration {}", s.p, s.count, s.sum, s.iteration);
  p_ = static_cast<float>(s.p);
  count_ = s.count;
  sum_ = s.sum;
  device_sum_ = at::Tensor();
  iteration_ = s.iteration;
  last_rt_ = s.last_rt;
}

}  // namespace facetex::train
