// TOML configuration (toml++) with dotted-key overrides: the single source of truth for every job's settings.
// Precedence (lowest to highest): built-in defaults < --config FILE < --set key=value < explicit CLI flags.
// The resolved config is written next to a job's outputs, so every result says exactly how it was made.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace facetex {

class Config {
 public:
  Config();
  ~Config();
  Config(const Config&);
  Config& operator=(const Config&);
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;

  // UsageError naming file:line:column on a syntax error.
  static Config load(const std::filesystem::path& file);
  static Config parse(std::string_view toml_text, const std::string& source_name = "<config>");

  // "section.key=value": the value is read as a TOML number, boolean or string (64, 0.5, true, "x"); anything else
  // (not TOML, or a date, array or table) is taken as the text itself, so paths need no quotes. A number or boolean
  // read as a string is the text as typed (`--out 123`, `--seeds 0x10`). Creates tables on the way.
  void set(const std::string& assignment);
  void set_value(const std::string& key, const std::string& value_text);
  // Keys of `other` override ours (tables merge recursively).
  void merge(const Config& other);

  bool has(const std::string& key) const;
  // Typed access; a present value of the wrong type is a UsageError naming the key. Integers convert to double.
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_double(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;

  int64_t get_int(const std::string& key, int64_t fallback) const { return get_int(key).value_or(fallback); }
  // An integer that must be >= 0 (seeds, counts): a negative value is a usage error naming the key, not a wrap.
  uint64_t get_uint(const std::string& key, uint64_t fallback) const;
  double get_double(const std::string& key, double fallback) const { return get_double(key).value_or(fallback); }
  bool get_bool(const std::string& key, bool fallback) const { return get_bool(key).value_or(fallback); }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    return get_string(key).value_or(fallback);
  }
  int64_t require_int(const std::string& key) const;
  std::string require_string(const std::string& key) const;

  // Every leaf as a dotted key, sorted.
  std::vector<std::string> keys() const;
  // Leaves no get_*/require_*/has call asked for (sorted), and the keys that were asked for: after a job has read its
  // settings, an unread key is a typo or a setting the job does not have.
  std::vector<std::string> unread_keys() const;
  std::vector<std::string> asked_keys() const;
  // A leaf's value as TOML text (64, 0.5, true, "x", [1, 2]); nullopt when absent or a table.
  std::optional<std::string> value_text(const std::string& key) const;
  std::string to_toml() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The key of `known` that `key` was probably meant to be (same letters in another case, or at most two edits away:
// train.lr_g -> train.lr_G, pack.shardsize -> pack.shard_size); empty when none is that close.
std::string nearest_key(const std::string& key, const std::vector<std::string>& known);

// "unknown config key K (did you mean ...?)[, ...]: <who> does not read it (them)", for a usage error.
std::string unknown_keys_message(const std::vector<std::string>& unknown, const std::vector<std::string>& known,
                                 const std::string& who);

}  // namespace facetex
