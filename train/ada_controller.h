// The ADA heuristic that tunes the augmentation probability p (StyleGAN2-ADA training_loop.py; paper spec §4.6):
// every `interval` training iterations, r_t = mean(sign(D(A(real)))) over every real-logit report since the last
// adjustment (all ranks; the Dmain and the Dreg phases both report), and
//     p <- max(0, p + sign(r_t - target) * batch_size * interval / (kimg * 1000))
// with no upper clamp. p is kept as a float32 value, and the update rounds like the reference's float32 buffer
// (p_f32 + float32(adjust), then max with 0), so a run follows the reference's p exactly.
//
// Multi-rank: report() accumulates this rank's raw [count, sum]; stats() / stats_tensor() expose them and step()
// takes a reducer that must return the sum of [count, sum] over all ranks (e.g. an allreduce). Every rank calls
// step() on every iteration, so the reducer runs collectively on the same iterations everywhere.
//
// Differences from the reference, both deliberate: when no sign was reported since the last adjustment (count 0)
// p is left alone (the reference would turn p into NaN — it cannot happen in its loop); and the whole state (p, the
// accumulators, the iteration phase) is checkpointed, where the reference restarts p at its initial value.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <limits>

namespace facetex::train {

struct AdaOptions {
  double target = 0.6;  // ada_target: the wanted mean sign of D's real logits
  int interval = 4;     // ada_interval: iterations between adjustments
  double kimg = 100;    // ada_kimg: kimg for p to move by 1 (the paper forces 100)

  nlohmann::json to_json() const;
  static AdaOptions from_json(const nlohmann::json& j);  // defaults for missing keys; UsageError for unknown ones
};

// Everything a checkpoint needs to continue exactly.
struct AdaState {
  double p = 0.0;          // the augmentation probability (a float32 value)
  double count = 0.0;      // signs reported on this rank since the last adjustment
  double sum = 0.0;        // their sum
  int64_t iteration = 0;   // step() calls so far (adjustments happen when it reaches a multiple of interval)
  double last_rt = std::numeric_limits<double>::quiet_NaN();  // r_t of the last adjustment (NaN: none yet)

  nlohmann::json to_json() const;
  static AdaState from_json(const nlohmann::json& j);
};

class AdaController {
 public:
  // Takes this rank's [count, sum] and returns the sum over all ranks.
  using Reducer = std::function<std::array<double, 2>(const std::array<double, 2>&)>;

  explicit AdaController(AdaOptions options = {}, double initial_p = 0.0);

  // Accumulates sign(real_logits) (any shape, any device): count += numel, sum += sum of signs (exact, in
  // float64). The sum stays on the logits' device until the statistic is read (stats(), state(), an adjusting
  // step()), so reporting costs no host sync.
  void report(const at::Tensor& real_logits);
  // The same from numbers computed elsewhere.
  void report(double count, double sum_of_signs);

  // This rank's raw accumulators since the last adjustment: [count, sum].
  std::array<double, 2> stats() const;
  // The same as a float64 [2] tensor on `device`, ready for an allreduce (sum).
  at::Tensor stats_tensor(const c10::Device& device = c10::Device(c10::kCPU)) const;

  // Ends one training iteration (the reference's batch_idx += 1). When the iteration count reaches a multiple of
  // interval, adjusts p from the accumulated statistic — reduce(stats()) when a reducer is given, else this rank's
  // — clears the accumulators and returns true; otherwise returns false. batch_size is the global batch.
  bool step(int64_t batch_size, const Reducer& reduce = nullptr);
  // Whether the next step() adjusts p (so a caller can prepare a collective).
  bool adjusts_on_next_step() const { return (iteration_ + 1) % options_.interval == 0; }

  // The rule alone, from global [count, sum]: p <- max(0, p + sign(sum/count - target) * step_size(batch_size)).
  // Leaves p alone when count == 0. Returns the signed change that was added before the floor (0 when none).
  // Does not touch the accumulators or the iteration count.
  double adjust(int64_t batch_size, const std::array<double, 2>& global_stats);
  // batch_size * interval / (kimg * 1000): how far one adjustment moves p.
  double step_size(int64_t batch_size) const;

  double p() const { return static_cast<double>(p_); }
  void set_p(double p);  // rounded to float32; must be finite and >= 0
  double last_rt() const { return last_rt_; }
  int64_t iteration() const { return iteration_; }
  const AdaOptions& options() const { return options_; }

  AdaState state() const;
  void load_state(const AdaState& state);

 private:
  AdaOptions options_;
  float p_ = 0.0f;
  void fold() const;  // adds the device-side sum into sum_
  double count_ = 0.0;
  mutable double sum_ = 0.0;
  mutable at::Tensor device_sum_;  // float64 scalar on the logits' device (undefined: nothing pending)
  int64_t iteration_ = 0;
  double last_rt_ = std::numeric_limits<double>::quiet_NaN();
};

}  // namespace facetex::train
