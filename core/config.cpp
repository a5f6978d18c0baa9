#include "core/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "core/error.h"

namespace facetex {

struct Config::Impl {
  toml::table root;
  // Keys a job asked for (get_*, require_*, has): what is left over is a typo or a setting no code reads. Shared by
  // copies, so that a copy handed to a parser records into the original.
  std::shared_ptr<std::set<std::string>> asked = std::make_shared<std::set<std::string>>();
  // The text a command line gave for a key whose TOML reading is a number or a boolean: read as a string (a path,
  // a name, a seed list), the key is that text, not the number's spelling (`--out 123`, `--seeds 0x10`).
  std::map<std::string, std::string> typed_text;
};

Config::Config() : impl_(std::make_unique<Impl>()) {}
Config::~Config() = default;
Config::Config(const Config& o) : impl_(std::make_unique<Impl>(*o.impl_)) {}
Config& Config::operator=(const Config& o) {
  if (this != &o) impl_ = std::make_unique<Impl>(*o.impl_);
  return *this;
}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;

namespace {

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::stringstream ss(key);
  std::string p;
  while (std::getline(ss, p, '.')) {
    FACETEX_CHECK_USAGE(!p.empty(), "invalid config key '{}'", key);
    parts.push_back(p);
  }
  FACETEX_CHECK_USAGE(!parts.empty(), "empty config key");
  return parts;
}

const toml::node* find(const toml::table& root, const std::string& key) {
  const toml::node* node = &root;
  for (const auto& part : split_key(key)) {
    const toml::table* t = node->as_table();
    if (t == nullptr) return nullptr;
    node = t->get(part);
    if (node == nullptr) return nullptr;
  }
  return node;
}

// What a value of the wrong type is, for messages: its type, and for a string its text (`--set` keeps text that is
// not TOML as a string, so a 20-digit seed arrives here as a string and is named as an out-of-range integer).
std::string type_name(const toml::node& n) {
  std::ostringstream ss;
  ss << n.type();
  if (const auto* text = n.as_string()) {
    const std::string& v = text->get();
    const size_t digits_from = (!v.empty() && (v[0] == '-' || v[0] == '+')) ? 1 : 0;
    const bool integer_text = v.size() > digits_from &&
                              v.find_first_not_of("0123456789_", digits_from) == std::string::npos;
    if (integer_text) return fmt::format("'{}', an integer outside the 64-bit range", v);
    ss << " '" << (v.size() > 60 ? v.substr(0, 57) + "..." : v) << "'";
  }
  return ss.str();
}

// `prefix`: the dotted path of dst, for messages. A value over a table (`--set train=1` over a preset's [train]) or
// a table over a value would silently drop settings: a usage error naming the key.
void merge_into(toml::table& dst, const toml::table& src, const std::string& prefix = "") {
  for (const auto& [k, v] : src) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    toml::node* existing = dst.get(k);
    if (existing != nullptr) {
      FACETEX_CHECK_USAGE(existing->is_table() == v.is_table(), "config key '{}' is a {} here and a {} there; set {}",
                          key, existing->is_table() ? "table" : "value", v.is_table() ? "table" : "value",
                          existing->is_table() ? "one of its keys (e.g. " + key + ".name=value)" : "it as a value");
    }
    if (const toml::table* sub = v.as_table(); sub != nullptr && existing != nullptr) {
      merge_into(*existing->as_table(), *sub, key);
      continue;
    }
    dst.insert_or_assign(k, v);
  }
}

// Sets `key` (dotted) to `value`, creating tables on the way; a key that names a table, or passes through a value,
// is a usage error.
void assign(toml::table& root, const std::string& key, const toml::node& value) {
  const auto parts = split_key(key);
  toml::table* t = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    toml::node* n = t->get(parts[i]);
    if (n == nullptr) {
      t->insert(parts[i], toml::table{});
      n = t->get(parts[i]);
    }
    FACETEX_CHECK_USAGE(n->is_table(), "config key '{}': '{}' is a value, not a table", key, parts[i]);
    t = n->as_table();
  }
  const toml::node* existing = t->get(parts.back());
  FACETEX_CHECK_USAGE(existing == nullptr || !existing->is_table(), "config key '{}' is a table; set one of its keys",
                      key);
  t->insert_or_assign(parts.back(), value);
}

void collect_keys(const toml::table& t, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& [k, v] : t) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = v.as_table()) {
      collect_keys(*sub, key, out);
    } else {
      out.push_back(key);
    }
  }
}

}  // namespace

Config Config::parse(std::string_view text, const std::string& source_name) {
  Config c;
  try {
    c.impl_->root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    throw UsageError(fmt::format("{}:{}:{}: {}", source_name, e.source().begin.line, e.source().begin.column,
                                 e.description()));
  }
  return c;
}

Config Config::load(const std::filesystem::path& file) {
  std::error_code ec;
  FACETEX_CHECK_USAGE(std::filesystem::exists(file, ec), "config file {} does not exist", file.string());
  FACETEX_CHECK_USAGE(std::filesystem::is_regular_file(file, ec), "config file {} is not a file (a folder or a device)",
                      file.string());
  Config c;
  try {
    c.impl_->root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw UsageError(fmt::format("{}:{}:{}: {}", file.string(), e.source().begin.line, e.source().begin.column,
                                 e.description()));
  }
  return c;
}

void Config::set(const std::string& assignment) {
  auto eq = assignment.find('=');
  FACETEX_CHECK_USAGE(eq != std::string::npos && eq > 0, "--set expects key=value, got '{}'", assignment);
  set_value(assignment.substr(0, eq), assignment.substr(eq + 1));
}

void Config::set_value(const std::string& key, const std::string& value_text) {
  toml::table value_holder;
  try {
    value_holder = toml::parse("v = " + value_text);
  } catch (const toml::parse_error&) {
    value_holder = toml::table{};
  }
  const toml::node* parsed = value_holder.get("v");
  impl_->typed_text.erase(key);
  if (parsed == nullptr || !(parsed->is_string() || parsed->is_integer() || parsed->is_floating_point() ||
                             parsed->is_boolean())) {
    // Not TOML, or a TOML kind no setting has (a date, a time, an array, a table): the text itself, e.g. a path
    // `2024-01-05` or a JSON `{}`.
    assign(impl_->root, key, toml::value<std::string>(value_text));
    return;
  }
  if (!parsed->is_string()) impl_->typed_text[key] = value_text;
  assign(impl_->root, key, *parsed);
}

void Config::merge(const Config& other) {
  merge_into(impl_->root, other.impl_->root);
  for (const std::string& k : other.keys()) impl_->typed_text.erase(k);  // other's value wins, with its own text
  for (const auto& [k, text] : other.impl_->typed_text) impl_->typed_text[k] = text;
}

bool Config::has(const std::string& key) const {
  impl_->asked->insert(key);
  return find(impl_->root, key) != nullptr;
}

std::optional<int64_t> Config::get_int(const std::string& key) const {
  impl_->asked->insert(key);
  const toml::node* n = find(impl_->root, key);
  if (n == nullptr) return std::nullopt;
  auto v = n->value_exact<int64_t>();
  FACETEX_CHECK_USAGE(v.has_value(), "config key '{}': expected an integer, got {}", key, type_name(*n));
  return v;
}

uint64_t Config::get_uint(const std::string& key, uint64_t fallback) const {
  const std::optional<int64_t> v = get_int(key);
  if (!v) return fallback;
  FACETEX_CHECK_USAGE(*v >= 0, "config key '{}': expected an integer >= 0, got {}", key, *v);
  return static_cast<uint64_t>(*v);
}

std::optional<double> Config::get_double(const std::string& key) const {
  impl_->asked->insert(key);
  const toml::node* n = find(impl_->root, key);
  if (n == nullptr) return std::nullopt;
  if (auto i = n->value_exact<int64_t>()) return static_cast<double>(*i);
  auto v = n->value_exact<double>();
  FACETEX_CHECK_USAGE(v.has_value(), "config key '{}': expected a number, got {}", key, type_name(*n));
  return v;
}

std::optional<bool> Config::get_bool(const std::string& key) const {
  impl_->asked->insert(key);
  const toml::node* n = find(impl_->root, key);
  if (n == nullptr) return std::nullopt;
  auto v = n->value_exact<bool>();
  FACETEX_CHECK_USAGE(v.has_value(), "config key '{}': expected true or false, got {}", key, type_name(*n));
  return v;
}

std::optional<std::string> Config::get_string(const std::string& key) const {
  impl_->asked->insert(key);
  const toml::node* n = find(impl_->root, key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_string()) {
    if (const auto text = impl_->typed_text.find(key); text != impl_->typed_text.end()) {
      // Read as a string: it is one from now on (config.toml records "123", not 123).
      const std::string value = text->second;
      impl_->typed_text.erase(text);
      assign(impl_->root, key, toml::value<std::string>(value));
      return value;
    }
  }
  auto v = n->value_exact<std::string>();
  FACETEX_CHECK_USAGE(v.has_value(), "config key '{}': expected a string, got {}", key, type_name(*n));
  return v;
}

int64_t Config::require_int(const std::string& key) const {
  auto v = get_int(key);
  FACETEX_CHECK_USAGE(v.has_value(), "config key '{}' is required", key);
  return *v;
}

std::string Config::require_string(const std::string& key) const {
  auto v = get_string(key);
  FACETEX_CHECK_USAGE(v.has_value(), "config key '{}' is required", key);
  return *v;
}

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  collect_keys(impl_->root, "", out);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Config::unread_keys() const {
  std::vector<std::string> out;
  for (const std::string& k : keys())
    if (!impl_->asked->count(k)) out.push_back(k);
  return out;
}

std::vector<std::string> Config::asked_keys() const { return {impl_->asked->begin(), impl_->asked->end()}; }

std::optional<std::string> Config::value_text(const std::string& key) const {
  const toml::node* n = find(impl_->root, key);
  if (n == nullptr || n->is_table()) return std::nullopt;
  if (auto d = n->value_exact<double>()) return fmt::format("{}", *d);  // shortest round trip: 0.032, not 0.03200…01
  std::ostringstream ss;
  n->visit([&ss](const auto& v) { ss << v; });
  return ss.str();
}

std::string Config::to_toml() const {
  std::ostringstream ss;
  ss << impl_->root << "\n";
  return ss.str();
}

std::string nearest_key(const std::string& key, const std::vector<std::string>& known) {
  const auto lower = [](std::string t) {
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return t;
  };
  // Levenshtein distance of the lower-cased keys (short strings: the O(n·m) table is nothing).
  const auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_distance = 3;  // farther than two edits is another word, not a typo
  for (const std::string& k : known) {
    const size_t d = distance(lower(key), lower(k));
    if (d < best_distance) {
      best = k;
      best_distance = d;
    }
  }
  return best;
}

std::string unknown_keys_message(const std::vector<std::string>& unknown, const std::vector<std::string>& known,
                                 const std::string& who) {
  std::string list;
  for (const std::string& k : unknown) {
    const std::string near = nearest_key(k, known);
    list += fmt::format("{}{}{}", list.empty() ? "" : ", ", k, near.empty() ? "" : " (did you mean " + near + "?)");
  }
  return fmt::format("unknown config key{} {}: {} does not read {}",
                     unknown.size() == 1 ? "" : "s", list, who, unknown.size() == 1 ? "it" : "them");
}

}  // namespace facetex
