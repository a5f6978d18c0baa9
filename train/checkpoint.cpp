#include "train/checkpoint.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/log.h"
#include "core/version.h"

namespace fs = std::filesystem;

namespace facetex::train {
namespace {

constexpr int64_t kCheckpointVersion = 1;

void write_tensor(hid_t g, const std::string& name, const at::Tensor& t) {
  at::Tensor c = t.detach().cpu().contiguous();
  std::vector<hsize_t> dims(c.sizes().begin(), c.sizes().end());
  if (c.scalar_type() == at::kByte) {
    h5::write_dataset(g, name, c.data_ptr<uint8_t>(), dims);
  } else if (c.scalar_type() == at::kDouble) {
    h5::write_dataset(g, name, c.data_ptr<double>(), dims);
  } else {
    c = c.to(at::kFloat);
    h5::write_dataset(g, name, c.data_ptr<float>(), dims);
  }
}

at::Tensor read_tensor(hid_t g, const std::string& name, at::ScalarType type) {
  std::vector<hsize_t> dims;
  std::vector<int64_t> sizes;
  at::Tensor t;
  if (type == at::kByte) {
    auto v = h5::read_dataset<uint8_t>(g, name, &dims);
    sizes.assign(dims.begin(), dims.end());
    t = at::empty(sizes, at::kByte);
    std::copy(v.begin(), v.end(), t.data_ptr<uint8_t>());
  } else {
    auto v = h5::read_dataset<float>(g, name, &dims);
    sizes.assign(dims.begin(), dims.end());
    t = at::empty(sizes, at::kFloat);
    std::copy(v.begin(), v.end(), t.data_ptr<float>());
  }
  return t;
}

void write_optimizer(hid_t parent, const std::string& name, Adam& opt) {
  h5::Id g = h5::create_group(parent, name);
  std::vector<int64_t> steps;
  std::vector<std::string> names;
  for (auto& s : opt.state()) {
    write_tensor(g, s.name + ".exp_avg", s.exp_avg);
    write_tensor(g, s.name + ".exp_avg_sq", s.exp_avg_sq);
    steps.push_back(s.step);
    names.push_back(s.name);
  }
  h5::write_dataset(g, "_steps", steps.data(), {steps.size()});
  h5::write_strings(g, "_names", names);
}

void read_optimizer(hid_t parent, const std::string& name, Adam& opt, const std::string& context) {
  h5::Id g = h5::open_group(parent, name);
  auto names = h5::read_strings(g, "_names");
  auto steps = h5::read_dataset<int64_t>(g, "_steps");
  FACETEX_CHECK_DATA(names.size() == steps.size(), "{}: /train/{} is inconsistent", context, name);
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < names.size(); ++i) index[names[i]] = i;
  for (auto& s : opt.state()) {
    auto it = index.find(s.name);
    FACETEX_CHECK_DATA(it != index.end(), "{}: optimiser state for {} is missing", context, s.name);
    at::Tensor m = read_tensor(g, s.name + ".exp_avg", at::kFloat);
    at::Tensor v = read_tensor(g, s.name + ".exp_avg_sq", at::kFloat);
    FACETEX_CHECK_DATA(m.sizes() == s.exp_avg.sizes() && v.sizes() == s.exp_avg_sq.sizes(),
                       "{}: optimiser state for {} has shape {}, the network expects {}", context, s.name,
                       m.sizes().vec(), s.exp_avg.sizes().vec());
    // A diverged run's state is refused as its weights are (load_network): Adam would carry the NaN into them.
    FACETEX_CHECK_DATA(at::isfinite(m).all().item<bool>() && at::isfinite(v).all().item<bool>(),
                       "{}: optimiser state for {} holds NaN/Inf values", context, s.name);
    at::NoGradGuard no_grad;
    s.exp_avg.copy_(m);
    s.exp_avg_sq.copy_(v);
    s.step = steps[it->second];
  }
}

}  // namespace

void save_checkpoint(const fs::path& path, const CheckpointNetworks& n, Adam& opt_G, Adam& opt_D,
                     const TrainState& s) {
  AtomicFile file(path);
  {
    h5::Id f = h5::create_file(file.temp_path().string());
    h5::write_attr(f, "format", models::kCheckpointFormat);
    h5::write_attr(f, "version", kCheckpointVersion);
    h5::write_attr(f, "created_by", std::string("facetex ") + FACETEX_VERSION + " train");
    h5::write_attr(f, "source", "training run");
    models::write_network_group(f, "G", n.G);
    models::write_network_group(f, "D", n.D);
    models::write_network_group(f, "G_ema", n.G_ema);
    h5::Id t = h5::create_group(f, "train");
    h5::write_attr(t, "cur_nimg", s.cur_nimg);
    h5::write_attr(t, "batch_idx", s.batch_idx);
    h5::write_attr(t, "cur_tick", s.cur_tick);
    h5::write_attr(t, "tick_start_nimg", s.tick_start_nimg);
    h5::write_attr(t, "training_seconds", s.training_seconds);
    h5::write_attr(t, "augment_p", s.augment_p);
    h5::write_attr(t, "pl_mean", s.pl_mean);
    if (!s.pl_mean_ranks.empty()) {
      h5::write_dataset(t, "pl_mean_ranks", s.pl_mean_ranks.data(), {s.pl_mean_ranks.size()});
    }
    h5::write_attr(t, "loader_epoch", s.loader_cursor.epoch);
    h5::write_attr(t, "loader_position", s.loader_cursor.position);
    h5::write_attr(t, "background_epoch", s.background_cursor.epoch);
    h5::write_attr(t, "background_position", s.background_cursor.position);
    h5::write_attr(t, "config", s.config_toml);
    h5::write_attr(t, "ada_state", s.ada_state);
    h5::write_strings(t, "stats_names", s.stats_names);
    h5::write_dataset(t, "stats_values", s.stats_values.data(), {s.stats_values.size()});
    write_tensor(t, "cpu_rng_state", s.cpu_rng_state);
    if (s.cuda_rng_state.defined()) write_tensor(t, "cuda_rng_state", s.cuda_rng_state);
    if (s.latent_rng_state.defined()) write_tensor(t, "latent_rng_state", s.latent_rng_state);
    write_optimizer(t, "opt_G", opt_G);
    write_optimizer(t, "opt_D", opt_D);
  }
  file.commit();
}

std::pair<CheckpointNetworks, TrainState> load_checkpoint(const fs::path& path, Adam& opt_G, Adam& opt_D) {
  const std::string context = path.string();
  h5::Id f = h5::open_file(context);
  FACETEX_CHECK_DATA(h5::has_attr(f, "format") && h5::read_attr_string(f, "format") == models::kCheckpointFormat,
                     "{}: not a facetex checkpoint", context);
  FACETEX_CHECK_DATA(h5::read_attr_int(f, "version") == kCheckpointVersion, "{}: unsupported checkpoint version",
                     context);
  CheckpointNetworks n;
  {
    h5::Id g = h5::open_group(f, "G"), d = h5::open_group(f, "D"), e = h5::open_group(f, "G_ema");
    n.G = models::read_network_group(g, context + " /G");
    n.D = models::read_network_group(d, context + " /D");
    n.G_ema = models::read_network_group(e, context + " /G_ema");
  }
  TrainState s;
  h5::Id t = h5::open_group(f, "train");
  s.cur_nimg = h5::read_attr_int(t, "cur_nimg");
  s.batch_idx = h5::read_attr_int(t, "batch_idx");
  s.cur_tick = h5::read_attr_int(t, "cur_tick");
  s.tick_start_nimg = h5::read_attr_int(t, "tick_start_nimg");
  s.training_seconds = h5::read_attr_double(t, "training_seconds");
  s.augment_p = h5::read_attr_double(t, "augment_p");
  s.pl_mean = h5::read_attr_double(t, "pl_mean");
  if (h5::exists(t, "pl_mean_ranks")) s.pl_mean_ranks = h5::read_dataset<double>(t, "pl_mean_ranks");
  s.loader_cursor = {h5::read_attr_int(t, "loader_epoch"), h5::read_attr_int(t, "loader_position")};
  s.background_cursor = {h5::read_attr_int(t, "background_epoch"), h5::read_attr_int(t, "background_position")};
  s.config_toml = h5::read_attr_string(t, "config");
  s.ada_state = h5::read_attr_string(t, "ada_state");
  s.stats_names = h5::read_strings(t, "stats_names");
  s.stats_values = h5::read_dataset<double>(t, "stats_values");
  s.cpu_rng_state = read_tensor(t, "cpu_rng_state", at::kByte);
  if (h5::exists(t, "cuda_rng_state")) s.cuda_rng_state = read_tensor(t, "cuda_rng_state", at::kByte);
  if (h5::exists(t, "latent_rng_state")) s.latent_rng_state = read_tensor(t, "latent_rng_state", at::kByte);
  read_optimizer(t, "opt_G", opt_G, context);
  read_optimizer(t, "opt_D", opt_D, context);
  return {std::move(n), std::move(s)};
}

fs::path checkpoint_path(const fs::path& run_dir, int64_t cur_nimg) {
  return run_dir / "checkpoints" / fmt::format("ckpt-{:012d}.h5", cur_nimg);
}

void publish_checkpoint(const fs::path& run_dir, const fs::path& written, int64_t keep) {
  const fs::path dir = run_dir / "checkpoints";
  // latest.h5 -> the new file, replaced atomically (a symlink renamed over the old one).
  const fs::path link = dir / "latest.h5", tmp = dir / fmt::format(".latest.h5{}{}", kPartialMarker, ::getpid());
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_symlink(written.filename(), tmp, ec);
  FACETEX_CHECK_RUNTIME(!ec, "cannot create {}: {}", tmp.string(), ec.message());
  fs::rename(tmp, link, ec);
  FACETEX_CHECK_RUNTIME(!ec, "cannot update {}: {}", link.string(), ec.message());
  // Keep the newest `keep` checkpoints by name (kimg), and never the one just written: files named after it (left by a
  // run resumed from an older checkpoint) must not push it out.
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("ckpt-", 0) == 0 && e.path().extension() == ".h5") all.push_back(e.path());
  }
  std::sort(all.begin(), all.end());
  size_t excess = all.size() > static_cast<size_t>(keep) ? all.size() - static_cast<size_t>(keep) : 0;
  for (size_t i = 0; i < all.size() && excess > 0; ++i) {
    if (all[i].filename() == written.filename()) continue;
    fs::remove(all[i], ec);
    --excess;
  }
}

std::optional<fs::path> find_latest_checkpoint(const fs::path& run_dir) {
  const fs::path dir = run_dir / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  std::vector<fs::path> candidates;
  const fs::path latest = dir / "latest.h5";
  if (fs::exists(latest, ec)) {
    candidates.push_back(fs::canonical(latest, ec));
  } else if (fs::is_symlink(latest, ec)) {
    log::get("train").warn("{} points to {}, which is gone; using the newest checkpoint file", latest.string(),
                           fs::read_symlink(latest, ec).string());
  }
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    // Canonical, as latest.h5's target: the newest file is then listed once.
    if (name.rfind("ckpt-", 0) == 0 && e.path().extension() == ".h5") all.push_back(fs::canonical(e.path(), ec));
  }
  std::sort(all.rbegin(), all.rend());
  for (const auto& p : all)
    if (std::find(candidates.begin(), candidates.end(), p) == candidates.end()) candidates.push_back(p);
  std::vector<std::string> unreadable;
  for (const auto& c : candidates) {
    std::string why;
    try {
      h5::Id f = h5::open_file(c.string());
      const bool is_checkpoint =
          h5::has_attr(f, "format") && h5::read_attr_string(f, "format") == models::kCheckpointFormat;
      // Every value read back against its CRC-32 (checkpoints of older versions have none): a checkpoint damaged
      // on disk is passed over like a truncated one, instead of resuming on garbage.
      const std::vector<std::string> damaged = is_checkpoint ? h5::checksum_mismatches(f) : std::vector<std::string>{};
      if (!damaged.empty()) {
        why = fmt::format("damaged: {} dataset(s) do not match their CRC-32, the first {}", damaged.size(),
                          damaged.front());
      } else if (is_checkpoint) {
        if (!unreadable.empty()) {
          log::get("train").warn("newer checkpoints are unreadable ({}); using {}", fmt::join(unreadable, "; "),
                                 c.string());
        }
        return c;
      } else {
        why = fmt::format("not a facetex checkpoint (format '{}')",
                          h5::has_attr(f, "format") ? h5::read_attr_string(f, "format") : "none");
      }
    } catch (const Error& e) {
      why = e.what();
    }
    unreadable.push_back(fmt::format("{}: {}", c.filename().string(), why));
  }
  // Checkpoint files, none usable: starting over would write into (and prune) this run's folder as if it were new.
  FACETEX_CHECK_DATA(unreadable.empty(),
                     "{}: {} checkpoint file(s) and none readable ({}); restore one, or move the folder away to start "
                     "this run over",
                     dir.string(), unreadable.size(), fmt::join(unreadable, "; "));
  return std::nullopt;
}

std::string read_checkpoint_config(const fs::path& path) {
  const h5::Id f = h5::open_file(path.string());
  const h5::Id t = h5::open_group(f, "train");
  return h5::read_attr_string(t, "config");
}

}  // namespace facetex::train
