#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"
#include "core/status.h"

namespace sluice {

/// How a connector option's text is read.
enum class OptionType {
  kString,
  kInt,       ///< a whole number
  kNumber,    ///< a decimal number
  kBool,      ///< true or false
  kDuration,  ///< "250ms", "10s", "1h"
  kPath,      ///< a file; relative paths resolve against the pipeline file's directory
  kList,      ///< names, written as a list or as "a, b"
};

/// Returns the word the reference uses for `type` ("string", "duration", ...).
std::string_view OptionTypeName(OptionType type);

/// One option of a connector: what `sluice connectors` and docs/connectors.md show, and what
/// OptionReader reads. Tables use designated initializers and name only the fields they set
/// (the `{}` initializers keep -Wmissing-field-initializers quiet about the others).
struct OptionSpec {
  /// The key; a name ending in ".*" declares every key with that prefix (kafka.*).
  std::string name{};
  OptionType type = OptionType::kString;
  /// The value an unset (or empty) option takes, written as in a pipeline file; "" when it has
  /// none. Getters without an explicit fallback parse it.
  std::string default_value{};
  /// Replaces `default_value` in the reference when the default is computed ("order_by").
  std::string default_note{};
  /// The values the option accepts (empty: any value of its type).
  std::vector<std::string> allowed{};
  std::string help{};
};

/// The options of one connector kind (a source, sink or dimension scheme), declared once: its
/// factory reads its settings through it, unknown keys are reported against it, and the
/// reference is generated from it.
struct OptionTable {
  /// How the URI is written ("kafka://HOST:PORT/TOPIC").
  std::string uri{};
  /// One sentence on what the connector does.
  std::string summary{};
  std::vector<OptionSpec> options{};

  /// Returns the spec of `key` (a prefix spec matches every key it covers), or null.
  const OptionSpec* Find(std::string_view key) const;
  /// Returns the declared names (prefix specs left out), for did-you-mean hints.
  std::vector<std::string> Names() const;
};

/// Reads a connector's Options through its OptionTable: typed getters whose defaults come from
/// the table, allowed-value checks, and unknown-key errors with a did-you-mean hint. Errors
/// name the option's file:line:column. Reading an option marks it used, as Options does.
///
/// Every key read must be declared in the table (a debug assertion): the table is the one
/// list of what the connector accepts.
class OptionReader {
 public:
  /// `section` names the table in errors ("source", "sink", "dimension.jobs").
  OptionReader(const Options& options, const OptionTable& table, std::string section)
      : options_(options), table_(table), section_(std::move(section)) {}

  bool Has(const std::string& key) const;
  /// The text of `key`, or the declared default.
  std::string String(const std::string& key) const;
  /// The text of `key`, or `fallback` (a default computed by the connector).
  std::string String(const std::string& key, const std::string& fallback) const;
  /// The text of `key` or its default, which must be one of the declared allowed values.
  Result<std::string> Choice(const std::string& key) const;
  Result<int64_t> Int(const std::string& key) const;
  Result<int64_t> Int(const std::string& key, int64_t fallback) const;
  Result<double> Number(const std::string& key) const;
  Result<double> Number(const std::string& key, double fallback) const;
  Result<bool> Bool(const std::string& key) const;
  /// A duration in microseconds.
  Result<int64_t> Duration(const std::string& key) const;
  Result<int64_t> Duration(const std::string& key, int64_t fallback) const;
  /// Returns the keys that start with `prefix` (declared as "prefix*"), marking none used.
  std::vector<std::string> KeysWithPrefix(const std::string& prefix) const;
  /// Returns "file:line:col" of `key`, or of the section when unset.
  std::string Where(const std::string& key) const { return options_.Where(key); }

  /// Fails with "file:line:col: unknown key 'x' in [section] (did you mean y?)" for the first
  /// option nothing read.
  Status Finish() const;

  const Options& options() const { return options_; }

 private:
  const OptionSpec& Spec(const std::string& key) const;
  /// The spec's default parsed as its type: an error means the table is wrong.
  Status BadDefault(const OptionSpec& spec) const;

  const Options& options_;
  const OptionTable& table_;
  std::string section_;
};

/// Renders the reference of `tables` (one heading per scheme) as Markdown: the text of
/// docs/connectors.md and of `sluice connectors`.
struct ConnectorDoc {
  std::string kind;    ///< "source", "sink" or "dimension"
  std::string scheme;  ///< "kafka"
  const OptionTable* table = nullptr;
};
std::string RenderConnectorReference(const std::vector<ConnectorDoc>& connectors);

}  // namespace sluice
