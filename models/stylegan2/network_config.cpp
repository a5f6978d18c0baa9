#include "models/stylegan2/network_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/log.h"

using nlohmann::json;

namespace facetex::models::stylegan2 {
namespace {

// Reads known keys from a JSON object, complaining about wrong types; unknown keys are logged once, not fatal:
// newer pickles may carry arguments that do not change the architecture.
class Reader {
 public:
  Reader(const json& j, std::string context) : j_(j), context_(std::move(context)) {
    FACETEX_CHECK_USAGE(j_.is_object(), "{}: init_kwargs must be a JSON object", context_);
  }
  ~Reader() {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (!used_.count(it.key())) log::get("models").debug("{}: ignoring init_kwargs key '{}'", context_, it.key());
    }
  }
  template <typename T>
  void get(const char* key, T& out) {
    used_.insert(key);
    if (!j_.contains(key) || j_.at(key).is_null()) return;
    try {
      out = j_.at(key).get<T>();
    } catch (const json::exception&) {
      throw UsageError(fmt::format("{}: init_kwargs '{}' has the wrong type ({})", context_, key, j_.at(key).dump()));
    }
  }
  template <typename T>
  void get_optional(const char* key, std::optional<T>& out) {
    used_.insert(key);
    if (!j_.contains(key)) return;
    if (j_.at(key).is_null()) {
      out.reset();
      return;
    }
    T v{};
    get(key, v);
    out = v;
  }
  void filter(const char* key, std::vector<double>& out) {
    used_.insert(key);
    if (!j_.contains(key) || j_.at(key).is_null()) return;
    const json& f = j_.at(key);
    FACETEX_CHECK_USAGE(f.is_array() && !f.empty() && std::all_of(f.begin(), f.end(), [](const json& v) { return v.is_number(); }),
                        "{}: init_kwargs '{}' must be a list of filter taps", context_, key);
    out = f.get<std::vector<double>>();
  }
  json sub(const char* key) {
    used_.insert(key);
    if (!j_.contains(key) || j_.at(key).is_null()) return json::object();
    return j_.at(key);
  }
  const std::string& context() const { return context_; }

 private:
  const json& j_;
  std::string context_;
  std::set<std::string> used_;
};

json parse(const std::string& text, const std::string& context) {
  try {
    return text.empty() ? json::object() : json::parse(text);
  } catch (const json::parse_error& e) {
    throw UsageError(fmt::format("{}: init_kwargs is not valid JSON: {}", context, e.what()));
  }
}

void check_resolution(int res, const std::string& context) {
  FACETEX_CHECK_USAGE(res >= 4 && res <= 8192 && (res & (res - 1)) == 0,
                      "{}: img_resolution {} must be a power of two in 4..8192", context, res);
}

void check_arch(const std::string& arch, const std::string& context) {
  FACETEX_CHECK_USAGE(arch == "orig" || arch == "skip" || arch == "resnet",
                      "{}: architecture '{}' is not orig, skip or resnet", context, arch);
}

void read_mapping(Reader& r, MappingConfig& m) {
  std::optional<int> embed_features;  // only used with labels (c_dim > 0), which are refused
  r.get_optional("embed_features", embed_features);
  r.get("num_layers", m.num_layers);
  r.get_optional("layer_features", m.layer_features);
  r.get("activation", m.activation);
  r.get("lr_multiplier", m.lr_multiplier);
  r.get_optional("w_avg_beta", m.w_avg_beta);
  FACETEX_CHECK_USAGE(m.num_layers >= 1, "{}: mapping num_layers must be >= 1", r.context());
}

int log2_int(int v) { return static_cast<int>(std::lround(std::log2(v))); }

}  // namespace

std::vector<int> SynthesisConfig::block_resolutions() const {
  std::vector<int> out;
  for (int r = 4; r <= img_resolution; r *= 2) out.push_back(r);
  return out;
}
int SynthesisConfig::channels(int res) const { return std::min(channel_base / res, channel_max); }
int SynthesisConfig::fp16_resolution() const {
  return std::max(1 << std::max(0, log2_int(img_resolution) + 1 - num_fp16_res), 8);
}
int SynthesisConfig::num_ws() const {
  // conv1 per block, conv0 for every block above 4, plus the last block's torgb.
  const int blocks = static_cast<int>(block_resolutions().size());
  return blocks + (blocks - 1) + 1;
}

std::vector<int> DiscriminatorConfig::block_resolutions() const {
  std::vector<int> out;
  for (int r = img_resolution; r > 4; r /= 2) out.push_back(r);
  return out;
}
int DiscriminatorConfig::channels(int res) const { return std::min(channel_base / res, channel_max); }
int DiscriminatorConfig::fp16_resolution() const {
  return std::max(1 << std::max(0, log2_int(img_resolution) + 1 - num_fp16_res), 8);
}

void check_channel_counts(int img_resolution, int channel_base, int channel_max, const char* network) {
  FACETEX_CHECK_USAGE(channel_max >= 1, "{}: channel_max {} must be >= 1", network, channel_max);
  // The widest block is 4x4, the narrowest img_resolution: channel_base / img_resolution decides.
  FACETEX_CHECK_USAGE(channel_base / img_resolution >= 1,
                      "{}: channel_base {} gives {} channels at {}x{} (min(channel_base / resolution, channel_max)); "
                      "channel_base must be at least the resolution, {}", network, channel_base,
                      channel_base / img_resolution, img_resolution, img_resolution, img_resolution);
}

namespace {

MappingConfig read_mapping_config(const std::string& text, const std::string& context) {
  json j = parse(text, context);
  Reader r(j, context);
  MappingConfig m;
  r.get("z_dim", m.z_dim);
  r.get("c_dim", m.c_dim);
  r.get("w_dim", m.w_dim);
  std::optional<int> num_ws;
  r.get_optional("num_ws", num_ws);
  m.num_ws = num_ws.value_or(0);
  read_mapping(r, m);
  FACETEX_CHECK_USAGE(m.c_dim == 0, "{}: conditional networks (c_dim = {}) are not supported", context, m.c_dim);
  return m;
}

GeneratorConfig read_generator_config(const std::string& text, const std::string& context) {
  json j = parse(text, context);
  Reader r(j, context);
  GeneratorConfig g;
  r.get("z_dim", g.z_dim);
  r.get("c_dim", g.c_dim);
  r.get("w_dim", g.w_dim);
  r.get("img_resolution", g.img_resolution);
  r.get("img_channels", g.img_channels);
  FACETEX_CHECK_USAGE(g.c_dim == 0, "{}: conditional networks (c_dim = {}) are not supported", context, g.c_dim);
  check_resolution(g.img_resolution, context);
  {
    json mj = r.sub("mapping_kwargs");
    Reader mr(mj, context + " mapping_kwargs");
    read_mapping(mr, g.mapping);
  }
  {
    json sj = r.sub("synthesis_kwargs");
    Reader sr(sj, context + " synthesis_kwargs");
    SynthesisConfig& s = g.synthesis;
    sr.get("channel_base", s.channel_base);
    sr.get("channel_max", s.channel_max);
    sr.get("num_fp16_res", s.num_fp16_res);
    sr.get_optional("conv_clamp", s.conv_clamp);
    sr.get("architecture", s.architecture);
    sr.filter("resample_filter", s.resample_filter);
    sr.get("use_noise", s.use_noise);
    sr.get("activation", s.activation);
    sr.get("kernel_size", s.kernel_size);
    sr.get("fp16_channels_last", s.fp16_channels_last);  // a memory-format choice; the function is the same
    check_arch(s.architecture, context);
  }
  g.synthesis.w_dim = g.w_dim;
  g.synthesis.img_resolution = g.img_resolution;
  g.synthesis.img_channels = g.img_channels;
  g.mapping.z_dim = g.z_dim;
  g.mapping.c_dim = g.c_dim;
  g.mapping.w_dim = g.w_dim;
  g.mapping.num_ws = g.synthesis.num_ws();
  return g;
}

DiscriminatorConfig read_discriminator_config(const std::string& text, const std::string& context) {
  json j = parse(text, context);
  Reader r(j, context);
  DiscriminatorConfig d;
  r.get("c_dim", d.c_dim);
  r.get("img_resolution", d.img_resolution);
  r.get("img_channels", d.img_channels);
  r.get("architecture", d.architecture);
  r.get("channel_base", d.channel_base);
  r.get("channel_max", d.channel_max);
  r.get("num_fp16_res", d.num_fp16_res);
  r.get_optional("conv_clamp", d.conv_clamp);
  std::optional<int> cmap_dim;
  r.get_optional("cmap_dim", cmap_dim);
  FACETEX_CHECK_USAGE(d.c_dim == 0, "{}: conditional networks (c_dim = {}) are not supported", context, d.c_dim);
  check_resolution(d.img_resolution, context);
  check_arch(d.architecture, context);
  {
    json bj = r.sub("block_kwargs");
    Reader br(bj, context + " block_kwargs");
    br.get("activation", d.activation);
    br.filter("resample_filter", d.resample_filter);
    br.get("freeze_layers", d.freeze_layers);
    br.get("fp16_channels_last", d.fp16_channels_last);
  }
  r.sub("mapping_kwargs");  // only used with labels
  {
    json ej = r.sub("epilogue_kwargs");
    Reader er(ej, context + " epilogue_kwargs");
    if (ej.contains("mbstd_group_size")) er.get_optional("mbstd_group_size", d.mbstd_group_size);
    er.get("mbstd_num_channels", d.mbstd_num_channels);
    er.get("activation", d.epilogue_activation);
  }
  return d;
}

}  // namespace

std::string to_init_kwargs(const GeneratorConfig& g) {
  json mapping = {{"num_layers", g.mapping.num_layers}, {"activation", g.mapping.activation},
                  {"lr_multiplier", g.mapping.lr_multiplier}};
  if (g.mapping.layer_features) mapping["layer_features"] = *g.mapping.layer_features;
  mapping["w_avg_beta"] = g.mapping.w_avg_beta ? json(*g.mapping.w_avg_beta) : json(nullptr);
  const auto& s = g.synthesis;
  json synthesis = {{"channel_base", s.channel_base}, {"channel_max", s.channel_max},
                    {"num_fp16_res", s.num_fp16_res}, {"architecture", s.architecture},
                    {"resample_filter", s.resample_filter}, {"use_noise", s.use_noise},
                    {"activation", s.activation}, {"kernel_size", s.kernel_size}};
  synthesis["conv_clamp"] = s.conv_clamp ? json(*s.conv_clamp) : json(nullptr);
  if (s.fp16_channels_last) synthesis["fp16_channels_last"] = true;  // absent = the reference's default (false)
  return json{{"z_dim", g.z_dim}, {"c_dim", g.c_dim}, {"w_dim", g.w_dim}, {"img_resolution", g.img_resolution},
              {"img_channels", g.img_channels}, {"mapping_kwargs", mapping}, {"synthesis_kwargs", synthesis}}
      .dump();
}

std::string to_init_kwargs(const DiscriminatorConfig& d) {
  json j = {{"c_dim", d.c_dim}, {"img_resolution", d.img_resolution}, {"img_channels", d.img_channels},
            {"architecture", d.architecture}, {"channel_base", d.channel_base}, {"channel_max", d.channel_max},
            {"num_fp16_res", d.num_fp16_res},
            {"block_kwargs", {{"activation", d.activation}, {"resample_filter", d.resample_filter},
                              {"freeze_layers", d.freeze_layers}}},
            {"epilogue_kwargs", {{"mbstd_num_channels", d.mbstd_num_channels}, {"activation", d.epilogue_activation}}}};
  j["conv_clamp"] = d.conv_clamp ? json(*d.conv_clamp) : json(nullptr);
  j["epilogue_kwargs"]["mbstd_group_size"] = d.mbstd_group_size ? json(*d.mbstd_group_size) : json(nullptr);
  if (d.fp16_channels_last) j["block_kwargs"]["fp16_channels_last"] = true;
  return j.dump();
}

MappingConfig parse_mapping_config(const std::string& text, const std::string& context) {
  return as_data_errors(context, [&] { return read_mapping_config(text, context); });
}

GeneratorConfig parse_generator_config(const std::string& text, const std::string& context) {
  return as_data_errors(context, [&] { return read_generator_config(text, context); });
}

DiscriminatorConfig parse_discriminator_config(const std::string& text, const std::string& context) {
  return as_data_errors(context, [&] { return read_discriminator_config(text, context); });
}

}  // namespace facetex::models::stylegan2
