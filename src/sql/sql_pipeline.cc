#include "sql/sql_pipeline.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "config/variables.h"
#include "core/time.h"
#include "sql/expr_text.h"
#include "sql/pg_node.h"
#include "sql/pg_parse.h"
#include "sql/source_map.h"

namespace sluice::sql {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string Hint(const std::string& name, const std::vector<std::string>& candidates) {
  std::string h = ClosestName(name, candidates);
  return h.empty() || h == name ? "" : " (did you mean " + h + "?)";
}

/// The offset of the first character at or after `offset` that is not blank or in a comment
/// (where a statement starts).
int64_t SkipSpace(std::string_view text, int64_t offset) {
  size_t i = static_cast<size_t>(std::max<int64_t>(offset, 0));
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
    } else if (text.compare(i, 2, "--") == 0) {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (text.compare(i, 2, "/*") == 0) {
      size_t end = text.find("*/", i + 2);
      i = end == std::string_view::npos ? text.size() : end + 2;
    } else {
      break;
    }
  }
  return static_cast<int64_t>(i);
}

/// The offset of `word` (a keyword, any case) at or after `offset`, or `offset`.
int64_t KeywordAfter(std::string_view text, int64_t offset, std::string_view word) {
  size_t from = static_cast<size_t>(std::max<int64_t>(offset, 0));
  for (size_t i = from; i + word.size() <= text.size(); ++i) {
    bool match = true;
    for (size_t k = 0; k < word.size() && match; ++k) {
      match = std::tolower(static_cast<unsigned char>(text[i + k])) ==
              std::tolower(static_cast<unsigned char>(word[k]));
    }
    const bool starts = i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_');
    if (match && starts) return static_cast<int64_t>(i);
  }
  return offset;
}

const char* const kSystemColumns[] = {"_source", "_partition", "_offset"};

struct CheckDecl {
  std::string name;  ///< the constraint's name; empty when unnamed
  PgNode expr;
  int64_t location = -1;
  std::string not_null;  ///< NOT NULL of this column (then `expr` is not set)
  int order = 0;         ///< its place among the table's columns and constraints, as written
};

struct ColumnDecl {
  std::string name;
  int64_t location = -1;
  Type type = Type::kString;
  std::string path;   ///< OPTIONS (path 'a.b')
  PgNode generated;   ///< GENERATED ALWAYS AS (e) STORED
  PgNode default_expr;
  bool not_null = false;
  int order = 0;  ///< its place among the table's columns and constraints, as written
};

struct TableDecl {
  std::string name;
  int64_t location = -1;
  std::vector<ColumnDecl> columns;
  std::vector<CheckDecl> checks;
  std::vector<std::string> primary_key;
  int64_t primary_key_location = -1;
  std::vector<PgNode> options;  ///< DefElem nodes of WITH (...)
  bool used = false;
  int next_order = 0;

  /// The first CHECK (NOT NULL aside), for "takes no CHECK" errors; null when none.
  const CheckDecl* FirstCheck() const {
    for (const auto& c : checks) {
      if (c.not_null.empty()) return &c;
    }
    return nullptr;
  }

  const ColumnDecl* Column(const std::string& n) const {
    for (const auto& c : columns) {
      if (c.name == n) return &c;
    }
    return nullptr;
  }
  std::vector<std::string> ColumnNames() const {
    std::vector<std::string> out;
    for (const auto& c : columns) out.push_back(c.name);
    return out;
  }
};

/// Maps a PostgreSQL type name to a sluice type.
bool SqlType(const PgNode& type_name, Type* out) {
  auto names = PgNode::Strings(type_name.List("names"));
  if (names.empty() || type_name.Has("arrayBounds")) return false;
  const std::string t = Lower(names.back());
  if (t == "int8" || t == "int4" || t == "int2") *out = Type::kInt64;
  else if (t == "float8" || t == "float4" || t == "numeric") *out = Type::kDouble;
  else if (t == "text" || t == "varchar" || t == "bpchar") *out = Type::kString;
  else if (t == "bool") *out = Type::kBool;
  else if (t == "timestamp" || t == "timestamptz") *out = Type::kTimestamp;
  else return false;
  return true;
}

/// One joined dimension of the query.
struct Join {
  TableDecl* table = nullptr;
  std::string alias;
  bool left = false;
  std::string key_text;  ///< the source-side expression of ON, sluice text
  ExprText key;          ///< the same, with where it is written
  int64_t location = -1;
  std::vector<std::string> used;  ///< dimension columns the query reads, in first-use order
};

/// Resolves names in the query: the source (by alias or name), the joined dimensions, and the
/// window columns where they are visible.
class QueryScope : public Scope {
 public:
  QueryScope(const Context& ctx, std::string source_alias, std::vector<std::string> source_fields)
      : ctx_(ctx), source_alias_(std::move(source_alias)),
        source_fields_(std::move(source_fields)) {}

  void AddJoin(Join* j) { joins_.push_back(j); }
  void set_window_visible(bool v) { window_visible_ = v; }
  void set_only_constants(bool v) { only_constants_ = v; }
  /// Set while translating one WHERE term: whether it read a dimension column.
  bool touched_dimension = false;
  /// When set, receives every resolved name (the row field text).
  std::vector<std::string>* refs = nullptr;

  const std::vector<std::string>& source_fields() const { return source_fields_; }

  Result<std::string> Resolve(const std::vector<std::string>& names, int64_t location) override {
    if (only_constants_) return ctx_.Error(location, "a DEFAULT must be a constant");
    ASSIGN_OR_RETURN(std::string text, ResolveName(names, location));
    if (refs) refs->push_back(text);
    return text;
  }

 private:
  bool SourceHas(const std::string& n) const {
    return std::find(source_fields_.begin(), source_fields_.end(), n) != source_fields_.end();
  }

  Result<std::string> Dimension(Join* j, const std::string& column, int64_t location) {
    if (!j->table->Column(column)) {
      return ctx_.Error(location, "column " + j->alias + "." + column + " does not exist" +
                                      Hint(column, j->table->ColumnNames()));
    }
    touched_dimension = true;
    const bool is_key = !j->table->primary_key.empty() && j->table->primary_key[0] == column;
    if (is_key && !j->left) return "(" + j->key_text + ")";  // equal to the key under JOIN
    if (SourceHas(column)) {
      return ctx_.Error(location, "column " + j->alias + "." + column + " has the name of a column of " +
                                      source_alias_ + "; reading both is not supported yet");
    }
    for (Join* other : joins_) {
      if (other != j && std::find(other->used.begin(), other->used.end(), column) != other->used.end()) {
        return ctx_.Error(location, "column " + j->alias + "." + column + " has the name of a column of " +
                                        other->alias + "; reading both is not supported yet");
      }
    }
    if (std::find(j->used.begin(), j->used.end(), column) == j->used.end()) j->used.push_back(column);
    return FieldName(column);
  }

  Result<std::string> ResolveName(const std::vector<std::string>& names, int64_t location) {
    if (names.size() == 2) {
      const std::string& table = names[0];
      const std::string& column = names[1];
      if (table == source_alias_) {
        if (!SourceHas(column)) {
          return ctx_.Error(location, "column " + table + "." + column + " does not exist" +
                                          Hint(column, source_fields_));
        }
        return FieldName(column);
      }
      for (Join* j : joins_) {
        if (j->alias == table) return Dimension(j, column, location);
      }
      std::vector<std::string> aliases = {source_alias_};
      for (Join* j : joins_) aliases.push_back(j->alias);
      return ctx_.Error(location, "missing FROM-clause entry for table \"" + table + "\"" +
                                      Hint(table, aliases));
    }
    const std::string& column = names[0];
    std::vector<std::string> owners;
    if (SourceHas(column)) owners.push_back(source_alias_ + "." + column);
    Join* owner = nullptr;
    for (Join* j : joins_) {
      if (j->table->Column(column)) {
        owners.push_back(j->alias + "." + column);
        owner = j;
      }
    }
    if (owners.size() > 1) {
      std::string list;
      for (size_t i = 0; i < owners.size(); ++i) list += (i ? " or " : "") + owners[i];
      return ctx_.Error(location, "column reference \"" + column + "\" is ambiguous (" + list + ")");
    }
    if (owners.size() == 1) {
      if (owner) return Dimension(owner, column, location);
      return FieldName(column);
    }
    if (column == "window_start" || column == "window_end") {
      if (window_visible_) return column;
      return ctx_.Error(location, column + " is only available in the SELECT list and GROUP BY "
                                           "of a query over tumble() or hop()");
    }
    std::vector<std::string> all = source_fields_;
    for (Join* j : joins_) {
      for (const auto& c : j->table->columns) all.push_back(c.name);
    }
    return ctx_.Error(location, "column \"" + column + "\" does not exist" + Hint(column, all));
  }

  const Context& ctx_;
  std::string source_alias_;
  std::vector<std::string> source_fields_;
  std::vector<Join*> joins_;
  bool window_visible_ = false;
  bool only_constants_ = false;
};

/// A scope without columns (DEFAULT values, literals).
class NoColumns : public Scope {
 public:
  explicit NoColumns(const Context& ctx) : ctx_(ctx) {}
  Result<std::string> Resolve(const std::vector<std::string>&, int64_t location) override {
    return ctx_.Error(location, "a DEFAULT must be a constant");
  }

 private:
  const Context& ctx_;
};

bool ContainsAggregate(const PgNode& node);

bool ContainsAggregateIn(simdjson::dom::element e) {
  simdjson::dom::object obj;
  simdjson::dom::array arr;
  if (e.get(obj) == simdjson::SUCCESS) {
    for (auto field : obj) {
      if (field.key == "FuncCall") {
        PgNode f = PgNode::Fields(field.value, "FuncCall");
        if (IsAggregateName(FunctionName(f)) && !f.Has("over")) return true;
      }
      if (ContainsAggregateIn(field.value)) return true;
    }
  } else if (e.get(arr) == simdjson::SUCCESS) {
    for (auto item : arr) {
      if (ContainsAggregateIn(item)) return true;
    }
  }
  return false;
}

bool ContainsAggregate(const PgNode& node) {
  if (!node.valid()) return false;
  if (node.Is("FuncCall") && IsAggregateName(FunctionName(node)) && !node.Has("over")) return true;
  for (auto field : node.object()) {
    if (ContainsAggregateIn(field.value)) return true;
  }
  return false;
}

/// One item of a GROUP BY query's SELECT list.
struct SelectItem {
  std::string name;
  std::string text;  ///< the key's expression, or the metric's text
  ExprText expr;     ///< `text` with where it is written (not for window columns)
  bool metric = false;
  bool window = false;  ///< window_start or window_end
  bool grouped = false;
  std::vector<std::string> refs;  ///< keys: the names the expression reads
  int64_t location = -1;
};

/// The window of `FROM tumble(...)` / `hop(...)`.
struct Window {
  bool present = false;
  bool hop = false;
  PgNode time;
  int64_t size_micros = 0;
  int64_t slide_micros = 0;
  int64_t location = -1;
};

class Translator {
 public:
  Translator(const SourceMap& map, const Variables& vars)
      : map_(map), vars_(vars), base_dir_(std::filesystem::path(map.file()).parent_path()) {
    ctx_.map = &map_;
    ctx_.vars = &vars_;
    ctx_.uses = &uses_;
  }

  Result<PipelineConfig> Run(const ParsedSql& parsed);

 private:
  Status Statement(const PgNode& stmt, int64_t stmt_location);
  Status Set(const PgNode& node, int64_t at);
  Status DeclareTable(const PgNode& node);
  Status DeclareColumn(const PgNode& def, TableDecl* table);
  Status DeclareConstraint(const PgNode& c, TableDecl* table, ColumnDecl* column);
  Result<TableDecl*> Table(const PgNode& range_var);
  Result<std::string> OptionValue(const PgNode& def, PathKind kind = PathKind::kNone);
  Status Query(const PgNode& select);
  Status CheckClauses(const PgNode& select);
  Status Joins(const std::vector<std::pair<PgNode, int64_t>>& join_nodes, QueryScope* scope);
  Status WhereSteps(const PgNode& select, QueryScope* scope, std::vector<StepConfig>* after_lookups);
  Status From(const PgNode& item, std::vector<std::pair<PgNode, int64_t>>* joins);
  Status SourceSteps(QueryScope* scope);
  Status SourceOptions();
  Status DimensionConfigs();
  Status SinkOptions(bool grouped);
  Status SelectRows(const std::vector<PgNode>& targets, QueryScope* scope);
  Status SelectGroups(const PgNode& select, const std::vector<PgNode>& targets, QueryScope* scope);
  Status GroupBy(const std::vector<PgNode>& group, QueryScope* scope, std::vector<SelectItem>* items,
                 std::set<std::string>* window_grouped, std::set<std::string>* grouped_texts);
  /// The metric text of a SELECT item that holds an aggregate.
  Result<ExprText> MetricText(const PgNode& val, QueryScope* scope);

  SourceMap const& map_;
  const Variables& vars_;
  std::filesystem::path base_dir_;
  Context ctx_;
  std::vector<VariableUse> uses_;
  PipelineConfig cfg_;
  std::map<std::string, TableDecl> tables_;
  std::vector<std::string> table_order_;

  // The query and its sink.
  PgNode query_;
  int64_t query_location_ = -1;
  TableDecl* sink_table_ = nullptr;  ///< INSERT INTO target
  std::string view_name_;            ///< CREATE MATERIALIZED VIEW name
  std::vector<PgNode> view_options_;
  std::vector<std::string> insert_columns_;  ///< output names by position
  TableDecl* source_ = nullptr;
  std::string source_alias_;
  Window window_;
  std::vector<std::unique_ptr<Join>> joins_;
  std::string mode_;
  int64_t mode_location_ = -1;
};

Result<std::string> Translator::OptionValue(const PgNode& def, PathKind kind) {
  const int64_t at = def.Location();
  const std::string key(def.String("defname"));
  PgNode arg = def.Child("arg");
  if (!arg.valid()) return ctx_.Error(at, "option " + key + " needs a value: " + key + " = '...'");
  if (arg.Is("String")) {
    auto s = SubstituteTracked(std::string(arg.String("sval")), vars_, &uses_, map_.Location(at));
    if (!s.ok()) return ctx_.Error(at, s.status().message());
    return ResolvePath(*s, kind, base_dir_);
  }
  if (arg.Is("Integer")) return std::to_string(arg.Int("ival"));
  if (arg.Is("Float")) return std::string(arg.String("fval"));
  if (arg.Is("Boolean")) return std::string(arg.Bool("boolval") ? "true" : "false");
  if (arg.Is("TypeCast")) {
    ASSIGN_OR_RETURN(int64_t micros, IntervalMicros(ctx_, arg));
    return std::to_string(micros) + "us";
  }
  return ctx_.Error(at, "option " + key + " must be a string or a number");
}

Status Translator::Set(const PgNode& node, int64_t at) {
  if (node.String("kind") != "VAR_SET_VALUE" || node.Bool("is_local")) {
    return ctx_.Error(at, "only SET pipeline.<setting> = value is supported");
  }
  const std::string name(node.String("name"));
  static const std::vector<std::string> kKeys = {"name", "checkpoint_interval", "workers",
                                                 "max_pending", "catch_up_timeout",
                                                 "shutdown_timeout"};
  if (name.rfind("pipeline.", 0) != 0) {
    return ctx_.Error(at, "SET " + name + " is not supported; a pipeline sets pipeline.<setting> (" +
                              JoinNames(kKeys) + ")");
  }
  const std::string key = name.substr(9);
  if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
    return ctx_.Error(at, "unknown setting pipeline." + key + Hint(key, kKeys) + "; known: " +
                              JoinNames(kKeys));
  }
  auto args = node.List("args");
  if (args.size() != 1 || !args[0].Is("A_Const")) {
    return ctx_.Error(at, "SET pipeline." + key + " takes one constant");
  }
  const PgNode& v = args[0];
  const int64_t vat = v.Location();
  std::string text;
  if (v.Has("sval")) {
    ASSIGN_OR_RETURN(text, ctx_.Substitute(v.Object("sval").String("sval"), vat));
  } else if (v.Has("ival")) {
    ASSIGN_OR_RETURN(int64_t i, IntConstant(ctx_, v));
    text = std::to_string(i);
  } else if (v.Has("fval")) {
    text = std::string(v.Object("fval").String("fval"));
  } else {
    return ctx_.Error(vat, "SET pipeline." + key + " takes a string or a number");
  }
  if (key == "name") {
    if (text.empty()) return ctx_.Error(vat, "pipeline.name must not be empty");
    cfg_.name = text;
  } else if (key == "workers") {
    char* end = nullptr;
    long n = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || n < 0 || n > 256) return ctx_.Error(vat, "workers must be 0..256");
    cfg_.workers = static_cast<int>(n);
  } else if (key == "max_pending") {
    char* end = nullptr;
    long long n = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || n < 1) return ctx_.Error(vat, "max_pending must be a positive integer");
    cfg_.max_pending = n;
  } else {
    auto d = ParseDurationMicros(text);
    if (!d || *d <= 0) return ctx_.Error(vat, key + " must be a duration like '1s'");
    if (key == "checkpoint_interval") cfg_.checkpoint_interval_micros = *d;
    if (key == "catch_up_timeout") cfg_.catch_up_timeout_micros = *d;
    if (key == "shutdown_timeout") cfg_.shutdown_timeout_micros = *d;
  }
  return Status::OK();
}

Status Translator::DeclareConstraint(const PgNode& c, TableDecl* table, ColumnDecl* column) {
  const std::string_view type = c.String("contype");
  const int64_t at = c.Location();
  if (type == "CONSTR_GENERATED") {
    if (!column) return ctx_.Error(at, "GENERATED belongs to a column");
    column->generated = c.Child("raw_expr");
    return Status::OK();
  }
  if (type == "CONSTR_DEFAULT") {
    if (!column) return ctx_.Error(at, "DEFAULT belongs to a column");
    column->default_expr = c.Child("raw_expr");
    return Status::OK();
  }
  if (type == "CONSTR_NOTNULL") {
    if (!column) return ctx_.Error(at, "NOT NULL belongs to a column");
    column->not_null = true;
    CheckDecl check;
    check.not_null = column->name;
    check.location = column->location;
    check.order = table->next_order++;
    table->checks.push_back(std::move(check));
    return Status::OK();
  }
  if (type == "CONSTR_NULL") return Status::OK();
  if (type == "CONSTR_PRIMARY") {
    if (!table->primary_key.empty()) return ctx_.Error(at, "a table has one PRIMARY KEY");
    if (column) {
      table->primary_key = {column->name};
    } else {
      table->primary_key = PgNode::Strings(c.List("keys"));
      if (table->primary_key.size() != 1) {
        return ctx_.Error(at, "a PRIMARY KEY of more than one column is not supported");
      }
      if (!table->Column(table->primary_key[0])) {
        return ctx_.Error(at, "PRIMARY KEY names column " + table->primary_key[0] +
                                  ", which " + table->name + " does not declare");
      }
    }
    table->primary_key_location = at;
    return Status::OK();
  }
  if (type == "CONSTR_CHECK") {
    CheckDecl check;
    check.name = std::string(c.String("conname"));
    check.expr = c.Child("raw_expr");
    check.location = at;
    check.order = table->next_order++;
    table->checks.push_back(std::move(check));
    return Status::OK();
  }
  std::string what(type.substr(type.rfind('_') + 1));
  return ctx_.Error(at, "constraint " + what + " is not supported (sluice reads PRIMARY KEY, "
                                              "NOT NULL, CHECK, DEFAULT and GENERATED)");
}

Status Translator::DeclareColumn(const PgNode& def, TableDecl* table) {
  ColumnDecl col;
  col.name = std::string(def.String("colname"));
  col.location = def.Location();
  if (table->Column(col.name)) {
    return ctx_.Error(col.location, "column " + col.name + " specified more than once");
  }
  PgNode type = def.Object("typeName");
  if (type.Has("arrayBounds")) {
    return ctx_.Error(type.Location() >= 0 ? type.Location() : col.location,
                      "array types are not supported (use text, bigint, double precision, "
                      "boolean or timestamp)");
  }
  if (std::string why = TypeModifierError(type); !why.empty()) {
    return ctx_.Error(type.Location() >= 0 ? type.Location() : col.location, why);
  }
  if (!SqlType(type, &col.type)) {
    auto names = PgNode::Strings(type.List("names"));
    return ctx_.Error(type.Location() >= 0 ? type.Location() : col.location,
                      "type " + (names.empty() ? std::string("?") : names.back()) +
                          " is not supported (use text, bigint, double precision, boolean or "
                          "timestamp)");
  }
  for (const PgNode& o : def.List("fdwoptions")) {
    if (o.String("defname") != "path") {
      return ctx_.Error(o.Location(), "column option " + std::string(o.String("defname")) +
                                          " is not supported (OPTIONS (path 'a.b'))");
    }
    ASSIGN_OR_RETURN(col.path, OptionValue(o));
  }
  col.order = table->next_order++;
  table->columns.push_back(col);
  for (const PgNode& c : def.List("constraints")) {
    RETURN_IF_ERROR(DeclareConstraint(c, table, &table->columns.back()));
  }
  if (def.Has("collClause")) return ctx_.Error(col.location, "COLLATE is not supported");
  return Status::OK();
}

Status Translator::DeclareTable(const PgNode& node) {
  PgNode rel = node.Object("relation");
  TableDecl t;
  t.name = std::string(rel.String("relname"));
  t.location = rel.Location();
  if (tables_.count(t.name)) return ctx_.Error(t.location, "table " + t.name + " is declared twice");
  if (node.Has("inhRelations") || node.Has("partspec") || node.Has("ofTypename")) {
    return ctx_.Error(t.location, "INHERITS, PARTITION BY and OF are not supported");
  }
  for (const PgNode& e : node.List("tableElts")) {
    if (e.Is("ColumnDef")) {
      RETURN_IF_ERROR(DeclareColumn(e, &t));
    } else if (e.Is("Constraint")) {
      RETURN_IF_ERROR(DeclareConstraint(e, &t, nullptr));
    } else {
      return ctx_.Error(e.FirstLocation(), "LIKE in CREATE TABLE is not supported");
    }
  }
  t.options = node.List("options");
  table_order_.push_back(t.name);
  tables_[t.name] = std::move(t);
  return Status::OK();
}

Result<TableDecl*> Translator::Table(const PgNode& range_var) {
  const std::string name(range_var.String("relname"));
  auto it = tables_.find(name);
  if (it == tables_.end()) {
    return ctx_.Error(range_var.Location(), "table " + name + " is not declared (CREATE TABLE " +
                                                name + " ... WITH (uri = '...'))" +
                                                Hint(name, table_order_));
  }
  it->second.used = true;
  return &it->second;
}

Status Translator::Statement(const PgNode& stmt, int64_t stmt_location) {
  const std::string_view kind = stmt.kind();
  const int64_t at = SkipSpace(map_.text(), stmt_location);
  if (kind == "VariableSetStmt") return Set(stmt, at);
  if (kind == "CreateStmt") return DeclareTable(stmt);
  if (kind == "CreateTableAsStmt" || kind == "InsertStmt") {
    if (query_.valid()) {
      return ctx_.Error(at, "a pipeline has one query and one sink; this is a second one");
    }
    if (kind == "CreateTableAsStmt") {
      if (stmt.String("objtype") != "OBJECT_MATVIEW") {
        return ctx_.Error(at, "CREATE TABLE ... AS is not supported; write CREATE MATERIALIZED VIEW name WITH (uri = '...') AS SELECT ...");
      }
      PgNode into = stmt.Object("into");
      PgNode rel = into.Object("rel");
      view_name_ = std::string(rel.String("relname"));
      view_options_ = into.List("options");
      if (into.Has("colNames")) {
        insert_columns_ = PgNode::Strings(into.List("colNames"));
      }
      query_ = stmt.Child("query");
      query_location_ = rel.Location();
    } else {
      if (stmt.Has("onConflictClause") || stmt.Has("returningList") || stmt.Has("withClause")) {
        return ctx_.Error(at, "ON CONFLICT, RETURNING and WITH are not supported in INSERT");
      }
      PgNode rel = stmt.Object("relation");
      ASSIGN_OR_RETURN(sink_table_, Table(rel));
      if (const CheckDecl* check = sink_table_->FirstCheck()) {
        return ctx_.Error(check->location, "a sink table takes no CHECK");
      }
      for (const PgNode& c : stmt.List("cols")) {
        const std::string n(c.String("name"));
        if (!sink_table_->Column(n)) {
          return ctx_.Error(c.Location(), "column " + n + " of " + sink_table_->name +
                                              " does not exist" + Hint(n, sink_table_->ColumnNames()));
        }
        insert_columns_.push_back(n);
      }
      if (insert_columns_.empty()) insert_columns_ = sink_table_->ColumnNames();
      query_ = stmt.Child("selectStmt");
      query_location_ = rel.Location();
    }
    if (!query_.Is("SelectStmt")) return ctx_.Error(at, "expected AS SELECT ...");
    return Status::OK();
  }
  std::string what(kind);
  if (what.size() > 4 && what.compare(what.size() - 4, 4, "Stmt") == 0) what.resize(what.size() - 4);
  if (kind == "SelectStmt") {
    return ctx_.Error(at, "a SELECT needs a sink: write CREATE MATERIALIZED VIEW name WITH (uri = '...') AS SELECT ..., or INSERT INTO table SELECT ...");
  }
  return ctx_.Error(at, what + " is not supported; a pipeline is SET, CREATE TABLE, CREATE "
                               "MATERIALIZED VIEW and INSERT INTO ... SELECT");
}

/// Reads one FROM item: the source (a table, tumble() or hop()), or a JOIN of a dimension.
Status Translator::From(const PgNode& item, std::vector<std::pair<PgNode, int64_t>>* joins) {
  const int64_t at = item.FirstLocation();
  if (item.Is("RangeVar")) {
    ASSIGN_OR_RETURN(source_, Table(item));
    PgNode alias = item.Object("alias");
    source_alias_ = alias.valid() ? std::string(alias.String("aliasname")) : source_->name;
    return Status::OK();
  }
  if (item.Is("RangeFunction")) {
    if (item.Bool("lateral") || item.Bool("ordinality") || item.Has("coldeflist")) {
      return ctx_.Error(at, "LATERAL, WITH ORDINALITY and column lists are not supported in FROM");
    }
    auto functions = item.List("functions");
    std::vector<PgNode> parts = functions.empty() ? std::vector<PgNode>{} : functions[0].List("items");
    PgNode call = parts.empty() ? PgNode() : parts[0];
    const std::string name = call.Is("FuncCall") ? FunctionName(call) : "";
    if (functions.size() != 1 || (name != "tumble" && name != "hop")) {
      return ctx_.Error(at, "FROM reads a table, tumble(table, time, INTERVAL '...') or "
                            "hop(table, time, INTERVAL slide, INTERVAL size)");
    }
    auto args = call.List("args");
    const size_t want = name == "tumble" ? 3 : 4;
    if (args.size() != want) {
      return ctx_.Error(call.Location(), name == "tumble"
                                             ? "tumble() takes (table, time column, INTERVAL size)"
                                             : "hop() takes (table, time column, INTERVAL slide, INTERVAL size)");
    }
    for (const PgNode& a : args) {
      if (a.Is("NamedArgExpr")) return ctx_.Error(a.FirstLocation(), "named arguments are not supported");
    }
    auto table_names = PgNode::Strings(args[0].List("fields"));
    if (!args[0].Is("ColumnRef") || table_names.size() != 1) {
      return ctx_.Error(args[0].FirstLocation(), "the first argument of " + name + "() is a table name");
    }
    auto it = tables_.find(table_names[0]);
    if (it == tables_.end()) {
      return ctx_.Error(args[0].Location(), "table " + table_names[0] + " is not declared" +
                                                Hint(table_names[0], table_order_));
    }
    it->second.used = true;
    source_ = &it->second;
    PgNode alias = item.Object("alias");
    source_alias_ = alias.valid() ? std::string(alias.String("aliasname")) : source_->name;
    window_.present = true;
    window_.hop = name == "hop";
    window_.time = args[1];
    window_.location = call.Location();
    if (window_.hop) {
      ASSIGN_OR_RETURN(window_.slide_micros, IntervalMicros(ctx_, args[2]));
      ASSIGN_OR_RETURN(window_.size_micros, IntervalMicros(ctx_, args[3]));
      if (window_.size_micros % window_.slide_micros != 0) {
        return ctx_.Error(args[3].FirstLocation(), "a hop window's size must be a multiple of its slide");
      }
      if (window_.size_micros / window_.slide_micros > 1000) {
        return ctx_.Error(args[3].FirstLocation(), "a hop window may span at most 1000 slides");
      }
    } else {
      ASSIGN_OR_RETURN(window_.size_micros, IntervalMicros(ctx_, args[2]));
    }
    return Status::OK();
  }
  if (item.Is("JoinExpr")) {
    const std::string_view type = item.String("jointype");
    if (item.Bool("isNatural") || item.Has("usingClause")) {
      return ctx_.Error(at, "NATURAL and USING joins are not supported; write JOIN d ON d.key = expression");
    }
    if (type != "JOIN_INNER" && type != "JOIN_LEFT") {
      std::string what = type == "JOIN_RIGHT" ? "RIGHT JOIN" : type == "JOIN_FULL" ? "FULL JOIN" : std::string(type);
      return ctx_.Error(at, what + " is not supported; a dimension is joined with JOIN or LEFT JOIN");
    }
    if (!item.Has("quals")) return ctx_.Error(at, "CROSS JOIN is not supported; join a dimension ON its key");
    RETURN_IF_ERROR(From(item.Child("larg"), joins));
    PgNode right = item.Child("rarg");
    if (!right.Is("RangeVar")) {
      return ctx_.Error(right.FirstLocation(), "the right side of a JOIN is a dimension table");
    }
    joins->emplace_back(item, at);
    return Status::OK();
  }
  if (item.Is("RangeSubselect")) return ctx_.Error(at, "a subquery in FROM is not supported");
  return ctx_.Error(at, "this FROM item is not supported");
}

Status Translator::SourceSteps(QueryScope* scope) {
  NoColumns constants(ctx_);
  // (1) DEFAULTs: a missing or null field reads as its default.
  for (const ColumnDecl& c : source_->columns) {
    if (!c.default_expr.valid() || c.generated.valid()) continue;
    ExprEmitter e(ctx_, &constants);
    ASSIGN_OR_RETURN(ExprText lit, e.Emit(c.default_expr));
    const int64_t at = c.default_expr.FirstLocation();
    ExprText text = Piece("coalesce(" + FieldName(c.name) + ", ", at).Add(lit).Add(")");
    StepConfig s;
    s.kind = StepConfig::Kind::kLet;
    s.target = c.name;
    s.expr = text.text;
    s.where = ctx_.Where(text, at);
    cfg_.steps.push_back(std::move(s));
  }
  // (2) generated columns and the NOT NULL / CHECK constraints, in the order written: a
  // constraint written above a generated column dead-letters before that column is computed.
  // A constraint that reads a generated column written below it waits for that column, and the
  // constraints written after it wait for it (the first failing constraint, in written order,
  // gives the reason).
  struct Pending {
    StepConfig step;
    std::set<std::string> needs;  ///< generated columns (as field text) it reads
  };
  std::set<std::string> generated;  // field text of every generated column
  for (const ColumnDecl& c : source_->columns) {
    if (c.generated.valid()) generated.insert(FieldName(c.name));
  }
  std::set<std::string> computed;
  std::vector<Pending> pending;
  auto flush = [&] {
    size_t n = 0;
    while (n < pending.size() &&
           std::includes(computed.begin(), computed.end(), pending[n].needs.begin(),
                         pending[n].needs.end())) {
      cfg_.steps.push_back(std::move(pending[n].step));
      ++n;
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
  };
  struct Element {
    int order;
    const ColumnDecl* column;  ///< a generated column, or
    const CheckDecl* check;    ///< a constraint
  };
  std::vector<Element> written;
  for (const ColumnDecl& c : source_->columns) {
    if (c.generated.valid()) written.push_back({c.order, &c, nullptr});
  }
  for (const CheckDecl& c : source_->checks) written.push_back({c.order, nullptr, &c});
  std::sort(written.begin(), written.end(),
            [](const Element& a, const Element& b) { return a.order < b.order; });
  for (const Element& element : written) {
    if (element.column) {
      const ColumnDecl& c = *element.column;
      ExprEmitter e(ctx_, scope);
      ASSIGN_OR_RETURN(ExprText text, e.Emit(c.generated));
      StepConfig s;
      s.kind = StepConfig::Kind::kLet;
      s.target = c.name;
      s.expr = text.text;
      s.where = ctx_.Where(text, c.generated.FirstLocation());
      cfg_.steps.push_back(std::move(s));
      computed.insert(FieldName(c.name));
      flush();
      continue;
    }
    const CheckDecl& check = *element.check;
    Pending p;
    StepConfig& s = p.step;
    s.kind = StepConfig::Kind::kDeadLetterIf;
    std::vector<std::string> refs;
    if (!check.not_null.empty()) {
      s.expr = "(" + FieldName(check.not_null) + " is null)";
      s.reason = check.not_null + " is null";
      s.where = map_.Location(static_cast<size_t>(std::max<int64_t>(check.location, 0)));
      refs.push_back(FieldName(check.not_null));
    } else {
      ExprEmitter e(ctx_, scope);
      scope->refs = &refs;
      auto cond = e.Emit(check.expr);
      scope->refs = nullptr;
      if (!cond.ok()) return cond.status();
      // A CHECK fails only when its condition is false (NULL passes, as in PostgreSQL).
      ExprText text = ExprText().Add("coalesce((not ").Add(*cond).Add("), false)");
      s.expr = text.text;
      s.reason = check.name.empty() ? "check failed: " + cond->text : check.name;
      s.where = ctx_.Where(text, check.expr.FirstLocation());
    }
    for (const std::string& r : refs) {
      if (generated.count(r) && !computed.count(r)) p.needs.insert(r);
    }
    pending.push_back(std::move(p));
    flush();
  }
  for (Pending& p : pending) cfg_.steps.push_back(std::move(p.step));
  return Status::OK();
}

Status Translator::SourceOptions() {
  SourceConfig& src = cfg_.source;
  src.name = source_->name;
  src.options.section_location = map_.Location(static_cast<size_t>(std::max<int64_t>(source_->location, 0)));
  if (!source_->primary_key.empty()) {
    return ctx_.Error(source_->primary_key_location,
                      "the source " + source_->name + " has a PRIMARY KEY; a PRIMARY KEY makes "
                      "a table a dimension, joined on that key");
  }
  for (const ColumnDecl& c : source_->columns) {
    if (c.generated.valid()) continue;
    src.fields.push_back(Field{c.name, c.type, c.path});
  }
  bool has_uri = false;
  for (const PgNode& o : source_->options) {
    const std::string key(o.String("defname"));
    const expr::SourceLocation where = map_.Location(static_cast<size_t>(std::max<int64_t>(o.Location(), 0)));
    if (key == "uri") {
      ASSIGN_OR_RETURN(src.uri, OptionValue(o, PathKind::kUri));
      has_uri = true;
      continue;
    }
    if (key == "event_time" || key == "watermark_delay" || key == "allowed_lateness" ||
        key == "idle_timeout") {
      if (!window_.present) {
        return ctx_.Error(o.Location(), key + " applies to a query over tumble() or hop()");
      }
      ASSIGN_OR_RETURN(std::string v, OptionValue(o));
      if (key == "event_time") {
        if (cfg_.aggregate->time_expr != FieldName(v)) {
          return ctx_.Error(o.Location(), "event_time = '" + v + "' but the query's window is on " +
                                              cfg_.aggregate->time_expr);
        }
        continue;
      }
      std::optional<int64_t> d = ParseDurationMicros(v);  // '0s' is a duration too
      if (!d) {
        auto interval = IntervalTextMicros(ctx_, v, o.Location());
        if (!interval.ok()) return ctx_.Error(o.Location(), key + " must be a duration like '10s' or '1 minute'");
        d = *interval;
      }
      if (key == "watermark_delay") cfg_.aggregate->watermark_delay_micros = *d;
      if (key == "allowed_lateness") cfg_.aggregate->allowed_lateness_micros = *d;
      if (key == "idle_timeout") cfg_.aggregate->idle_timeout_micros = *d;
      continue;
    }
    if (key == "keyed_by") {
      // keyed_by = 'a, b': the group keys the input is partitioned by (checked by the planner).
      ASSIGN_OR_RETURN(std::string v, OptionValue(o));
      src.keyed_by.clear();
      src.keyed_by_where.clear();
      src.keyed_by_list_where = where;
      size_t from = 0;
      while (from <= v.size()) {
        size_t comma = v.find(',', from);
        if (comma == std::string::npos) comma = v.size();
        std::string name = v.substr(from, comma - from);
        name.erase(0, name.find_first_not_of(' '));
        name.erase(name.find_last_not_of(' ') + 1);
        if (name.empty()) return ctx_.Error(o.Location(), "keyed_by names the group-key columns, like 'a, b'");
        if (std::find(src.keyed_by.begin(), src.keyed_by.end(), name) != src.keyed_by.end()) {
          return ctx_.Error(o.Location(), "keyed_by names '" + name + "' twice");
        }
        src.keyed_by.push_back(std::move(name));
        src.keyed_by_where.push_back(where);
        from = comma + 1;
      }
      continue;
    }
    if (key == "repartition_partitions") {
      // The partitions of the internal topic <pipeline>-repartition (checked by the planner).
      ASSIGN_OR_RETURN(std::string v, OptionValue(o));
      char* end = nullptr;
      errno = 0;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || errno != 0 || n < 1 || n > 100000) {
        return ctx_.Error(o.Location(), "repartition_partitions must be a positive integer (the partitions of the "
                                        "internal topic <pipeline>-repartition, at most 100000), not '" + v + "'");
      }
      src.repartition_partitions = static_cast<int32_t>(n);
      src.repartition_partitions_where = where;
      continue;
    }
    if (key == "repartition") {
      // false: one stage even where the pipeline would repartition (checked by the planner).
      ASSIGN_OR_RETURN(std::string v, OptionValue(o));
      if (v != "true" && v != "false") {
        return ctx_.Error(o.Location(), "repartition must be 'true' or 'false' (false: run in one stage, whose "
                                        "windows are exact over one process only), not '" + v + "'");
      }
      src.repartition = v == "true";
      src.repartition_set = true;
      src.repartition_where = where;
      continue;
    }
    ASSIGN_OR_RETURN(std::string v, OptionValue(o, IsPathOption(key) ? PathKind::kPath : PathKind::kNone));
    src.options.Set(key, Option{std::move(v), where});
  }
  if (!has_uri) {
    return ctx_.Error(source_->location, "the source " + source_->name + " needs WITH (uri = '...')");
  }
  return Status::OK();
}

Status Translator::DimensionConfigs() {
  for (const auto& j : joins_) {
    TableDecl* t = j->table;
    DimensionConfig dim;
    dim.name = t->name;
    dim.key = t->primary_key[0];
    dim.options.section_location = map_.Location(static_cast<size_t>(std::max<int64_t>(t->location, 0)));
    for (const ColumnDecl& c : t->columns) {
      if (c.generated.valid() || c.not_null) {
        return ctx_.Error(c.location, "a dimension column takes no GENERATED or NOT NULL");
      }
      dim.fields.push_back(Field{c.name, c.type, c.path});
    }
    if (const CheckDecl* check = t->FirstCheck()) {
      return ctx_.Error(check->location, "a dimension takes no CHECK");
    }
    StepConfig step;
    step.kind = StepConfig::Kind::kLookup;
    step.target = t->name;
    step.expr = j->key.text;
    step.where = ctx_.Where(j->key, j->location);
    step.on_missing = j->left ? "default" : "drop";
    bool has_uri = false;
    int64_t on_missing_at = -1;
    for (const PgNode& o : t->options) {
      const std::string key(o.String("defname"));
      if (key == "uri") {
        ASSIGN_OR_RETURN(dim.uri, OptionValue(o, PathKind::kUri));
        dim.uri_where = map_.Location(static_cast<size_t>(std::max<int64_t>(o.Location(), 0)));
        has_uri = true;
      } else if (key == "on_missing") {
        ASSIGN_OR_RETURN(step.on_missing, OptionValue(o));
        on_missing_at = o.Location();
        if (step.on_missing != "drop" && step.on_missing != "dead_letter" && step.on_missing != "hold" &&
            step.on_missing != "default") {
          return ctx_.Error(o.Location(), "on_missing must be 'drop', 'dead_letter' or 'hold'");
        }
      } else if (key == "hold_for") {
        ASSIGN_OR_RETURN(std::string v, OptionValue(o));
        auto d = ParseDurationMicros(v);
        if (!d || *d <= 0) return ctx_.Error(o.Location(), "hold_for must be a positive duration like '30s'");
        step.hold_micros = *d;
      } else if (key == "then") {
        ASSIGN_OR_RETURN(step.then, OptionValue(o));
        if (step.then != "default" && step.then != "drop" && step.then != "dead_letter") {
          return ctx_.Error(o.Location(), "then must be 'default', 'drop' or 'dead_letter'");
        }
      } else {
        ASSIGN_OR_RETURN(std::string v, OptionValue(o, IsPathOption(key) ? PathKind::kPath : PathKind::kNone));
        dim.options.Set(key, Option{std::move(v), map_.Location(static_cast<size_t>(std::max<int64_t>(o.Location(), 0)))});
      }
    }
    if (j->left && step.on_missing != "default") {
      return ctx_.Error(on_missing_at, "a LEFT JOIN keeps records without a match; on_missing '" +
                                           step.on_missing + "' applies to JOIN");
    }
    if (!has_uri) return ctx_.Error(t->location, "the dimension " + t->name + " needs WITH (uri = '...')");
    step.fields = j->used;
    NoColumns constants(ctx_);
    for (const std::string& f : step.fields) {
      const ColumnDecl* c = t->Column(f);
      if (c && c->default_expr.valid()) {
        ExprEmitter e(ctx_, &constants);
        ASSIGN_OR_RETURN(ExprText lit, e.Emit(c->default_expr));
        step.defaults[f] = lit.text;
      }
    }
    cfg_.dimensions[dim.name] = std::move(dim);
    cfg_.steps.push_back(std::move(step));
  }
  return Status::OK();
}

Status Translator::SinkOptions(bool grouped) {
  const std::vector<PgNode>& options = sink_table_ ? sink_table_->options : view_options_;
  SinkConfig& sink = cfg_.sink;
  sink.options.section_location = map_.Location(static_cast<size_t>(std::max<int64_t>(query_location_, 0)));
  bool has_uri = false;
  bool has_table = false;
  for (const PgNode& o : options) {
    const std::string key(o.String("defname"));
    const expr::SourceLocation where = map_.Location(static_cast<size_t>(std::max<int64_t>(o.Location(), 0)));
    if (key == "uri") {
      ASSIGN_OR_RETURN(sink.uri, OptionValue(o, PathKind::kUri));
      has_uri = true;
    } else if (key == "table") {
      ASSIGN_OR_RETURN(sink.table, OptionValue(o));
      has_table = true;
    } else if (key == "mode") {
      ASSIGN_OR_RETURN(mode_, OptionValue(o));
      mode_location_ = o.Location();
      if (mode_ != "update" && mode_ != "append") return ctx_.Error(o.Location(), "mode must be 'update' or 'append'");
      if (!grouped) return ctx_.Error(o.Location(), "mode applies to a GROUP BY query");
    } else if (key == "dead_letter") {
      ASSIGN_OR_RETURN(std::string to, OptionValue(o));
      cfg_.dead_letter_where = map_.Locate(static_cast<size_t>(std::max<int64_t>(o.Location(), 0)));
      if (to.empty()) {
        cfg_.dead_letter_store = PipelineConfig::DeadLetterStore::kDefault;
      } else if (to == "sink") {
        cfg_.dead_letter_store = PipelineConfig::DeadLetterStore::kSink;
      } else {
        ASSIGN_OR_RETURN(std::string path, OptionValue(o, PathKind::kUri));
        if (path.rfind("file:", 0) == 0) path = path.substr(5);
        if (path.empty()) return ctx_.Error(o.Location(), "dead_letter 'file:' names no file");
        cfg_.dead_letter_store = PipelineConfig::DeadLetterStore::kFile;
        cfg_.dead_letter_path = path;
      }
    } else {
      if (key == "key" && grouped) {
        return ctx_.Error(o.Location(), "a GROUP BY query's key is its group; leave key out");
      }
      ASSIGN_OR_RETURN(std::string v, OptionValue(o, IsPathOption(key) ? PathKind::kPath : PathKind::kNone));
      sink.options.Set(key, Option{std::move(v), where});
    }
  }
  if (!has_uri) {
    return ctx_.Error(query_location_, "the sink needs WITH (uri = '...')");
  }
  if (!has_table) {
    sink.table = sink_table_ ? sink_table_->name : view_name_;
    sink.table_from_name = true;
  }
  if (sink_table_ && !sink_table_->primary_key.empty()) {
    if (grouped) {
      return ctx_.Error(sink_table_->primary_key_location,
                        "a GROUP BY query's key is its group; the sink table takes no PRIMARY KEY");
    }
    sink.options.Set("key", Option{sink_table_->primary_key[0],
                                   map_.Location(static_cast<size_t>(std::max<int64_t>(sink_table_->primary_key_location, 0)))});
  }
  return Status::OK();
}

/// The name a SELECT item gets: its alias, else the column it reads.
Result<std::string> OutputName(const Context& ctx, const PgNode& target, size_t index,
                               const std::vector<std::string>& insert_columns) {
  if (!insert_columns.empty()) {
    if (index >= insert_columns.size()) {
      return ctx.Error(target.Location(), "INSERT has more expressions than target columns");
    }
    return insert_columns[index];
  }
  if (target.Has("name")) return std::string(target.String("name"));
  PgNode val = target.Child("val");
  if (val.Is("ColumnRef")) {
    auto names = PgNode::Strings(val.List("fields"));
    if (!names.empty()) return names.back();
  }
  return ctx.Error(target.Location(), "name this column: write the expression AS name");
}

Status Translator::SelectRows(const std::vector<PgNode>& targets, QueryScope* scope) {
  std::set<std::string> seen;
  size_t index = 0;
  for (const PgNode& rt : targets) {
    PgNode val = rt.Child("val");
    std::vector<std::string> star;
    if (val.Is("ColumnRef")) {
      auto fields = val.List("fields");
      if (!fields.empty() && fields.back().Is("A_Star")) {
        if (fields.size() == 2 && fields[0].String("sval") != source_alias_) {
          return ctx_.Error(val.Location(), std::string(fields[0].String("sval")) +
                                                ".* is not supported; name the dimension's columns");
        }
        if (rt.Has("name")) return ctx_.Error(rt.Location(), "* takes no alias");
        for (const ColumnDecl& c : source_->columns) star.push_back(c.name);
      }
    }
    if (!star.empty()) {
      for (const std::string& n : star) {
        ColumnConfig c;
        if (!insert_columns_.empty()) {
          if (index >= insert_columns_.size()) {
            return ctx_.Error(rt.Location(), "INSERT has more expressions than target columns");
          }
          c.name = insert_columns_[index];
        } else {
          c.name = n;
        }
        ++index;
        c.text = FieldName(n);
        c.where = map_.Location(static_cast<size_t>(std::max<int64_t>(rt.Location(), 0)));
        if (!seen.insert(c.name).second) return ctx_.Error(rt.Location(), "duplicate output column " + c.name);
        cfg_.select.push_back(std::move(c));
      }
      continue;
    }
    ColumnConfig c;
    ASSIGN_OR_RETURN(c.name, OutputName(ctx_, rt, index++, insert_columns_));
    if (ContainsAggregate(val)) {
      return ctx_.Error(val.FirstLocation(), "an aggregate needs GROUP BY over tumble() or hop()");
    }
    ExprEmitter e(ctx_, scope);
    ASSIGN_OR_RETURN(ExprText text, e.Emit(val));
    c.text = text.text;
    c.where = ctx_.Where(text, val.FirstLocation());
    if (!seen.insert(c.name).second) return ctx_.Error(rt.Location(), "duplicate output column " + c.name);
    cfg_.select.push_back(std::move(c));
  }
  if (!insert_columns_.empty() && index != insert_columns_.size()) {
    return ctx_.Error(query_location_, "INSERT names " + std::to_string(insert_columns_.size()) +
                                           " columns but the SELECT gives " + std::to_string(index));
  }
  return Status::OK();
}

Result<ExprText> Translator::MetricText(const PgNode& val, QueryScope* scope) {
  // The shapes the metric grammar has: agg(x) [FILTER (WHERE c)], round(avg(...), n), and
  // coalesce(one of those, constant).
  const std::string around = "only agg(x) [FILTER (WHERE ...)], round(avg(x), n) and "
                             "coalesce(aggregate, constant) are supported";
  PgNode node = val;
  ExprText default_text;
  if (node.Is("CoalesceExpr")) {
    auto args = node.List("args");
    if (args.size() != 2 || !args[1].Is("A_Const")) return ctx_.Error(node.Location(), around);
    NoColumns constants(ctx_);
    ExprEmitter e(ctx_, &constants);
    ASSIGN_OR_RETURN(default_text, e.Emit(args[1]));
    node = args[0];
  }
  std::string digits;
  int64_t round_at = -1;
  if (node.Is("FuncCall") && FunctionName(node) == "round") {
    round_at = node.Location();
    auto args = node.List("args");
    if (args.size() == 1) {
      digits = "0";  // round(avg(x)): to a whole number, as PostgreSQL's round(numeric)
    } else if (args.size() != 2 || !args[1].Is("A_Const") || !args[1].Has("ival")) {
      return ctx_.Error(node.Location(), "round() of an aggregate takes a constant number of digits: round(avg(x), 2)");
    } else {
      ASSIGN_OR_RETURN(int64_t d, IntConstant(ctx_, args[1]));
      digits = std::to_string(d);
    }
    node = args[0];
  }
  if (!node.Is("FuncCall") || !IsAggregateName(FunctionName(node))) {
    return ctx_.Error(node.FirstLocation(), around);
  }
  const std::string fn = FunctionName(node);
  const int64_t at = node.Location();
  if (node.Bool("agg_distinct")) return ctx_.Error(at, fn + "(DISTINCT ...) is not supported");
  if (node.Has("agg_order")) return ctx_.Error(at, "ORDER BY inside an aggregate is not supported");
  if (!digits.empty() && fn != "avg") return ctx_.Error(at, "round() applies to avg() only");
  ExprText arg;
  if (node.Bool("agg_star")) {
    if (fn != "count") return ctx_.Error(at, fn + "(*) is not supported; only count(*)");
  } else {
    auto args = node.List("args");
    if (args.size() != 1) return ctx_.Error(at, fn + "() takes one argument");
    if (ContainsAggregate(args[0])) {
      return ctx_.Error(args[0].FirstLocation(), "aggregate calls cannot be nested");
    }
    ExprEmitter e(ctx_, scope);
    ASSIGN_OR_RETURN(arg, e.Emit(args[0]));
  }
  ExprText text = Piece(fn + "(", at).Add(arg).Add(")");
  if (!digits.empty()) {
    text = Piece("round(", round_at).Add(text).Add(", " + digits + ")");
  }
  if (node.Has("agg_filter")) {
    PgNode filter = node.Child("agg_filter");
    if (ContainsAggregate(filter)) {
      return ctx_.Error(filter.FirstLocation(), "an aggregate in FILTER is not supported");
    }
    ExprEmitter e(ctx_, scope);
    ASSIGN_OR_RETURN(ExprText cond, e.Emit(filter));
    // The metric grammar finds " where " and " default " outside parentheses: a condition that
    // is a bare name (a column called default) goes in parentheses.
    if (cond.text.empty() || cond.text[0] != '(') cond = ExprText().Add("(").Add(cond).Add(")");
    text.Add(" where ", filter.FirstLocation()).Add(cond);
  }
  if (!default_text.text.empty()) {
    if (fn == "avg") {
      text.Add(" default ").Add(default_text);
    } else if (!((fn == "sum" || fn == "count") &&
                 (default_text.text == "0" || default_text.text == "0.0"))) {
      return ctx_.Error(val.Location(), "coalesce(" + fn + "(...), " + default_text.text +
                                            ") is not supported: only avg() takes a default "
                                            "(sum and count of no records are 0)");
    }
  }
  return text;
}

/// Marks the SELECT items that GROUP BY names: window columns, output names, positions, or
/// expressions written as in the SELECT list. A group key that is not selected is an error.
Status Translator::GroupBy(const std::vector<PgNode>& group, QueryScope* scope,
                           std::vector<SelectItem>* items, std::set<std::string>* window_grouped,
                           std::set<std::string>* grouped_texts) {
  // GROUP BY: window columns, output names, ordinals, or expressions of the SELECT list.
  for (const PgNode& g : group) {
    const int64_t at = g.FirstLocation();
    if (ContainsAggregate(g)) return ctx_.Error(at, "an aggregate in GROUP BY is not supported");
    if (g.Is("A_Const") && g.Has("ival")) {
      ASSIGN_OR_RETURN(int64_t n, IntConstant(ctx_, g));
      if (n < 1 || static_cast<size_t>(n) > items->size() || (*items)[n - 1].metric) {
        return ctx_.Error(at, "GROUP BY position " + std::to_string(n) + " is not a non-aggregate item of the SELECT list");
      }
      SelectItem& it = (*items)[n - 1];
      if (it.window) window_grouped->insert(it.text);
      it.grouped = true;
      grouped_texts->insert(it.text);
      continue;
    }
    if (g.Is("ColumnRef") && g.List("fields").size() == 1) {
      const std::string n(g.List("fields")[0].String("sval"));
      if (n == "window_start" || n == "window_end") {
        window_grouped->insert(n);
        for (SelectItem& it : *items) {
          if (it.window && it.text == n) it.grouped = true;
        }
        continue;
      }
      // An output name, unless a column of that name exists (PostgreSQL's rule).
      const bool is_column = std::find(scope->source_fields().begin(), scope->source_fields().end(), n) !=
                             scope->source_fields().end();
      if (!is_column) {
        bool found = false;
        for (SelectItem& it : *items) {
          if (it.name == n && !it.metric) {
            it.grouped = true;
            grouped_texts->insert(it.text);
            found = true;
          }
        }
        if (found) continue;
      }
    }
    if (!g.Is("ColumnRef") && !g.Is("FuncCall") && !g.Is("A_Expr") && !g.Is("CaseExpr") &&
        !g.Is("CoalesceExpr") && !g.Is("TypeCast") && !g.Is("A_Const")) {
      return ctx_.Error(at, "GROUPING SETS, CUBE and ROLLUP are not supported");
    }
    ExprEmitter e(ctx_, scope);
    ASSIGN_OR_RETURN(ExprText emitted, e.Emit(g));
    const std::string& text = emitted.text;
    bool found = false;
    for (SelectItem& it : *items) {
      if (!it.metric && it.text == text) {
        it.grouped = true;
        found = true;
      }
    }
    if (!found) {
      return ctx_.Error(at, "sluice writes every group key; add this GROUP BY expression to the "
                            "SELECT list");
    }
    grouped_texts->insert(text);
  }
  return Status::OK();
}

Status Translator::SelectGroups(const PgNode& select, const std::vector<PgNode>& targets,
                                QueryScope* scope) {
  const auto group = select.List("groupClause");
  const int64_t group_at = group.empty() ? select.FirstLocation() : group[0].FirstLocation();
  if (!window_.present && group.empty()) {
    int64_t at = group_at;
    for (const PgNode& t : targets) {
      if (ContainsAggregate(t.Child("val"))) {
        at = t.Child("val").FirstLocation();
        break;
      }
    }
    return ctx_.Error(at, "an aggregate needs GROUP BY over tumble() or hop()");
  }
  if (!window_.present) {
    return ctx_.Error(group_at, "GROUP BY needs a window: FROM tumble(table, time, INTERVAL '...') "
                                "or hop(table, time, INTERVAL slide, INTERVAL size)");
  }
  AggregateConfig& agg = *cfg_.aggregate;
  agg.window_columns.clear();
  std::vector<SelectItem> items;
  std::set<std::string> seen;
  scope->set_window_visible(true);
  for (size_t i = 0; i < targets.size(); ++i) {
    const PgNode& rt = targets[i];
    PgNode val = rt.Child("val");
    if (val.Is("ColumnRef") && !val.List("fields").empty() && val.List("fields").back().Is("A_Star")) {
      return ctx_.Error(val.Location(), "* is not supported in a GROUP BY query");
    }
    SelectItem item;
    item.location = val.FirstLocation();
    ASSIGN_OR_RETURN(item.name, OutputName(ctx_, rt, i, insert_columns_));
    if (!seen.insert(item.name).second) return ctx_.Error(rt.Location(), "duplicate output column " + item.name);
    if (ContainsAggregate(val)) {
      item.metric = true;
      ASSIGN_OR_RETURN(item.expr, MetricText(val, scope));
      item.text = item.expr.text;
    } else if (val.Is("ColumnRef") && val.List("fields").size() == 1 &&
               (val.List("fields")[0].String("sval") == "window_start" ||
                val.List("fields")[0].String("sval") == "window_end")) {
      item.window = true;
      item.text = std::string(val.List("fields")[0].String("sval"));
      if (item.name != item.text) {
        return ctx_.Error(rt.Location(), item.text + " keeps its name; write " + item.text +
                                             " without AS, and format_time(" + item.text +
                                             ", ...) AS name for another column");
      }
    } else {
      scope->refs = &item.refs;
      ExprEmitter e(ctx_, scope);
      auto text = e.Emit(val);
      scope->refs = nullptr;
      if (!text.ok()) return text.status();
      item.expr = std::move(text).value();
      item.text = item.expr.text;
    }
    items.push_back(std::move(item));
  }
  std::set<std::string> window_grouped;
  std::set<std::string> grouped_texts;
  RETURN_IF_ERROR(GroupBy(group, scope, &items, &window_grouped, &grouped_texts));
  if (window_grouped.empty()) {
    return ctx_.Error(group_at, "GROUP BY must include window_start or window_end (the window)");
  }
  for (SelectItem& it : items) {
    if (it.metric) continue;
    if (it.window) {
      if (!window_grouped.count(it.text) && !window_grouped.empty()) it.grouped = true;
      agg.window_columns.push_back(it.text);
      continue;
    }
    if (!it.grouped) {
      // An expression over grouped columns alone (date(window_start) when grouped by the
      // window) is a key as well.
      bool all_grouped = !it.refs.empty();
      for (const auto& r : it.refs) {
        if (!window_grouped.count(r) && !grouped_texts.count(r)) all_grouped = false;
      }
      if (!all_grouped) {
        return ctx_.Error(it.location, "column " + it.name + " must appear in the GROUP BY "
                                       "clause or be used in an aggregate function");
      }
    }
  }
  for (SelectItem& it : items) {
    if (it.window) continue;
    ColumnConfig c;
    c.name = it.name;
    c.text = it.text;
    c.where = ctx_.Where(it.expr, it.location);
    (it.metric ? agg.metrics : agg.keys).push_back(std::move(c));
  }
  if (!insert_columns_.empty() && items.size() != insert_columns_.size()) {
    return ctx_.Error(query_location_, "INSERT names " + std::to_string(insert_columns_.size()) +
                                           " columns but the SELECT gives " + std::to_string(items.size()));
  }
  return Status::OK();
}

/// Refuses the clauses a streaming pipeline has no meaning for, at their keyword.
Status Translator::CheckClauses(const PgNode& select) {
  // Clauses a streaming pipeline has no meaning for.
  struct Clause {
    const char* field;
    const char* name;
    const char* keyword;  ///< searched in the text when the clause has no location
  };
  const int64_t query_start = SkipSpace(map_.text(), query_location_);
  for (const Clause& c : {Clause{"withClause", "WITH (a common table expression)", "WITH"},
                          Clause{"distinctClause", "DISTINCT", "DISTINCT"},
                          Clause{"intoClause", "SELECT INTO", "INTO"},
                          Clause{"havingClause", "HAVING", "HAVING"},
                          Clause{"sortClause", "ORDER BY", "ORDER"},
                          Clause{"limitCount", "LIMIT", "LIMIT"},
                          Clause{"limitOffset", "OFFSET", "OFFSET"},
                          Clause{"windowClause", "WINDOW", "WINDOW"},
                          Clause{"lockingClause", "FOR UPDATE", "FOR"},
                          Clause{"valuesLists", "VALUES", "VALUES"}}) {
    if (select.Has(c.field)) {
      int64_t from = std::string_view(c.field) == "distinctClause" ? query_start : select.FirstLocation();
      if (std::string_view(c.field) == "withClause") from = select.Object("withClause").Location();
      return ctx_.Error(KeywordAfter(map_.text(), from, c.keyword),
                        std::string(c.name) + " is not supported in a streaming pipeline");
    }
  }
  if (select.Has("op") && select.String("op") != "SETOP_NONE") {
    return ctx_.Error(select.Child("larg").valid() ? select.FirstLocation() : query_location_,
                      "UNION, INTERSECT and EXCEPT are not supported in a streaming pipeline");
  }
  return Status::OK();
}

/// One lookup per JOIN: ON dim.key = <an expression over the tables before it>.
Status Translator::Joins(const std::vector<std::pair<PgNode, int64_t>>& join_nodes,
                         QueryScope* scope) {
  // Joins: ON dim.key = <expression over the tables before it>.
  for (const auto& [jn, at] : join_nodes) {
    auto join = std::make_unique<Join>();
    PgNode right = jn.Child("rarg");
    ASSIGN_OR_RETURN(join->table, Table(right));
    if (join->table == source_) return ctx_.Error(right.Location(), "a table cannot be joined with itself");
    PgNode alias = right.Object("alias");
    join->alias = alias.valid() ? std::string(alias.String("aliasname")) : join->table->name;
    join->left = jn.String("jointype") == "JOIN_LEFT";
    join->location = at;
    if (join->table->primary_key.empty()) {
      return ctx_.Error(right.Location(), "the joined table " + join->table->name +
                                              " needs a PRIMARY KEY: a dimension is joined on its key");
    }
    const std::string& key = join->table->primary_key[0];
    PgNode quals = jn.Child("quals");
    const std::string on_help = "ON must be " + join->alias + "." + key + " = <expression>";
    if (!quals.Is("A_Expr") || quals.String("kind") != "AEXPR_OP" ||
        PgNode::Strings(quals.List("name")) != std::vector<std::string>{"="}) {
      return ctx_.Error(quals.FirstLocation(), on_help);
    }
    auto refers_to_key = [&](const PgNode& side) {
      if (!side.Is("ColumnRef")) return false;
      auto names = PgNode::Strings(side.List("fields"));
      if (names.size() == 2) return names[0] == join->alias && names[1] == key;
      return false;
    };
    PgNode l = quals.Child("lexpr");
    PgNode r = quals.Child("rexpr");
    PgNode other;
    if (refers_to_key(l)) {
      other = r;
    } else if (refers_to_key(r)) {
      other = l;
    } else {
      return ctx_.Error(quals.FirstLocation(), on_help + " (a dimension is joined on its PRIMARY KEY)");
    }
    ExprEmitter e(ctx_, scope);
    ASSIGN_OR_RETURN(join->key, e.Emit(other));
    join->key_text = join->key.text;
    scope->AddJoin(join.get());
    joins_.push_back(std::move(join));
  }

  return Status::OK();
}

/// The WHERE terms: filters (plain terms and keep_if) and dead_letter_if steps; those that read a dimension column go to
/// `after_lookups`.
Status Translator::WhereSteps(const PgNode& select, QueryScope* scope,
                              std::vector<StepConfig>* after_lookups) {
  std::vector<PgNode> terms;
  if (select.Has("whereClause")) {
    PgNode where = select.Child("whereClause");
    if (where.Is("BoolExpr") && where.String("boolop") == "AND_EXPR") {
      terms = where.List("args");
    } else {
      terms.push_back(where);
    }
  }
  for (const PgNode& term : terms) {
    StepConfig s;
    s.where = map_.Location(static_cast<size_t>(std::max<int64_t>(term.FirstLocation(), 0)));
    if (ContainsAggregate(term)) {
      return ctx_.Error(term.FirstLocation(), "an aggregate in WHERE is not supported");
    }
    scope->touched_dimension = false;
    ExprEmitter e(ctx_, scope);
    const std::string fn = term.Is("FuncCall") ? FunctionName(term) : std::string();
    if (fn == "dead_letter_if" || fn == "keep_if") {
      // dead_letter_if(cond, 'reason'): dead-letter where cond is true; keep_if(cond,
      // 'reason'): a filter (keep where cond is true) whose ignored records carry the reason.
      auto args = term.List("args");
      if (args.size() != 2 || !args[1].Is("A_Const") || !args[1].Has("sval")) {
        return ctx_.Error(term.Location(), fn + " takes (condition, 'reason')");
      }
      ASSIGN_OR_RETURN(ExprText cond, e.Emit(args[0]));
      s.expr = cond.text;
      s.where = ctx_.Where(cond, term.FirstLocation());
      ASSIGN_OR_RETURN(s.reason, ctx_.Substitute(args[1].Object("sval").String("sval"), args[1].Location()));
      s.kind = fn == "keep_if" ? StepConfig::Kind::kFilter : StepConfig::Kind::kDeadLetterIf;
    } else {
      ASSIGN_OR_RETURN(ExprText cond, e.Emit(term));
      s.expr = cond.text;
      s.where = ctx_.Where(cond, term.FirstLocation());
      s.kind = StepConfig::Kind::kFilter;
      s.reason = "WHERE " + s.expr;
    }
    if (scope->touched_dimension) {
      after_lookups->push_back(std::move(s));
    } else {
      cfg_.steps.push_back(std::move(s));
    }
  }

  return Status::OK();
}

Status Translator::Query(const PgNode& select) {
  RETURN_IF_ERROR(CheckClauses(select));
  auto from = select.List("fromClause");
  if (from.empty()) return ctx_.Error(query_location_, "the query needs FROM");
  if (from.size() > 1) {
    return ctx_.Error(from[1].FirstLocation(), "a comma join is not supported; join a dimension with JOIN d ON d.key = expression");
  }
  std::vector<std::pair<PgNode, int64_t>> join_nodes;
  RETURN_IF_ERROR(From(from[0], &join_nodes));

  // The source's visible columns: declared, generated and the system columns.
  std::vector<std::string> fields;
  for (const ColumnDecl& c : source_->columns) fields.push_back(c.name);
  for (const char* s : kSystemColumns) fields.emplace_back(s);
  QueryScope scope(ctx_, source_alias_, fields);

  RETURN_IF_ERROR(Joins(join_nodes, &scope));

  const auto targets = select.List("targetList");
  const bool grouped = select.Has("groupClause") ||
                       std::any_of(targets.begin(), targets.end(),
                                   [](const PgNode& t) { return ContainsAggregate(t.Child("val")); });
  if (grouped) {
    cfg_.aggregate.emplace();
    AggregateConfig& agg = *cfg_.aggregate;
    agg.where = map_.Location(static_cast<size_t>(std::max<int64_t>(query_location_, 0)));
    ExprEmitter e(ctx_, &scope);
    if (window_.present) {
      ASSIGN_OR_RETURN(ExprText time, e.Emit(window_.time));
      agg.time_expr = time.text;
      agg.time_where = ctx_.Where(time, window_.time.FirstLocation());
      agg.window_micros = window_.size_micros;
      agg.slide_micros = window_.hop ? window_.slide_micros : 0;
    }
  } else if (window_.present) {
    return ctx_.Error(window_.location, "a query over tumble() or hop() needs GROUP BY window_start (or window_end)");
  }

  // Source steps, then WHERE terms on the source, the lookups, and WHERE terms on dimensions.
  // The table's own expressions (GENERATED, CHECK) see its columns only, by its own name.
  QueryScope table_scope(ctx_, source_->name, fields);
  RETURN_IF_ERROR(SourceSteps(&table_scope));
  std::vector<StepConfig> after_lookups;
  RETURN_IF_ERROR(WhereSteps(select, &scope, &after_lookups));

  // The SELECT list (it decides which dimension columns the lookups copy).
  if (grouped) {
    RETURN_IF_ERROR(SelectGroups(select, targets, &scope));
  } else {
    RETURN_IF_ERROR(SelectRows(targets, &scope));
  }
  RETURN_IF_ERROR(DimensionConfigs());
  for (auto& s : after_lookups) cfg_.steps.push_back(std::move(s));
  RETURN_IF_ERROR(SourceOptions());
  RETURN_IF_ERROR(SinkOptions(grouped));
  if (grouped && !mode_.empty()) cfg_.aggregate->mode = mode_;
  if (grouped && cfg_.aggregate->mode == "append") {
    // As in TOML: append mode closes a window once; late records are counted, not merged.
    bool lateness_set = std::any_of(source_->options.begin(), source_->options.end(),
                                    [](const PgNode& o) { return o.String("defname") == "allowed_lateness"; });
    if (!lateness_set) cfg_.aggregate->allowed_lateness_micros = 0;
  }
  return Status::OK();
}

Result<PipelineConfig> Translator::Run(const ParsedSql& parsed) {
  cfg_.file = map_.file();
  cfg_.language = "sql";
  cfg_.name = std::filesystem::path(map_.file()).stem().string();
  simdjson::dom::array stmts;
  if (parsed.root["stmts"].get(stmts) == simdjson::SUCCESS) {
    for (auto item : stmts) {
      PgNode wrapper = PgNode::Fields(item);
      PgNode stmt = wrapper.Child("stmt");
      RETURN_IF_ERROR(Statement(stmt, wrapper.Int("stmt_location", 0)));
    }
  }
  if (!query_.valid()) {
    return ctx_.Error(static_cast<int64_t>(map_.text().size()),
                      "the pipeline has no query: write CREATE MATERIALIZED VIEW name WITH (uri = "
                      "'...') AS SELECT ..., or INSERT INTO table SELECT ...");
  }
  RETURN_IF_ERROR(Query(query_));
  for (const std::string& name : table_order_) {
    const TableDecl& t = tables_[name];
    if (!t.used) return ctx_.Error(t.location, "table " + name + " is declared but not used");
  }
  cfg_.source.pipeline = cfg_.name;
  cfg_.variables = std::move(uses_);
  return std::move(cfg_);
}

void CollectSvals(simdjson::dom::element e, std::set<std::string>* names) {
  simdjson::dom::object obj;
  simdjson::dom::array arr;
  if (e.get(obj) == simdjson::SUCCESS) {
    for (auto field : obj) {
      std::string_view s;
      if (field.key == "sval" && field.value.get(s) == simdjson::SUCCESS) {
        CollectVariableNames(s, names);
      } else {
        CollectSvals(field.value, names);
      }
    }
  } else if (e.get(arr) == simdjson::SUCCESS) {
    for (auto item : arr) CollectSvals(item, names);
  }
}

}  // namespace

Result<PipelineConfig> ParseSqlPipeline(const std::string& text, const std::string& file,
                                        const Variables& vars) {
  SourceMap map(file, text);
  ASSIGN_OR_RETURN(ParsedSql parsed, ParsePostgres(map));
  if (vars.reject_unused) {
    std::set<std::string> referenced;
    CollectSvals(parsed.root, &referenced);
    RETURN_IF_ERROR(RejectUnusedVariables(referenced, vars, file));
  }
  Translator t(map, vars);
  return t.Run(parsed);
}

Result<PipelineConfig> LoadSqlPipeline(const std::string& path, const Variables& vars) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open pipeline file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseSqlPipeline(ss.str(), path, vars);
}

}  // namespace sluice::sql
