#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sluice {

/// Classifies an expected failure, so callers can decide between retrying, dead-lettering and
/// stopping.
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  ///< bad configuration or bad input value
  kParseError,       ///< a record or expression that cannot be parsed
  kNotFound,
  kIOError,          ///< file or network I/O failed; usually worth a retry
  kUnavailable,      ///< a server is not reachable right now; retry with backoff
  kAborted,          ///< the operation was cancelled (shutdown)
  kInternal,         ///< a broken invariant
  /// The input or the stored state is not what the operation needs, and retrying cannot help
  /// (a source file that is a directory or shrank under its committed position): stop now.
  kFailedPrecondition,
  /// Another process owns the task now (it claimed it after this one did): what this process
  /// holds of it is stale, and nothing of it may be committed (see runtime/task_state.h).
  kFenced,
};

/// Carries the outcome of an operation that can fail in an expected way.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return {}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status ParseError(std::string m) { return {StatusCode::kParseError, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Fenced(std::string m) { return {StatusCode::kFenced, std::move(m)}; }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// Returns "CodeName: message", for logs.
  std::string ToString() const;

  /// Returns a copy with `context` put in front of the message ("context: message").
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

/// Holds either a value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(data_);
  }
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace sluice

#define SLUICE_CONCAT_IMPL(a, b) a##b
#define SLUICE_CONCAT(a, b) SLUICE_CONCAT_IMPL(a, b)

/// Returns early from the enclosing function when `expr` yields a non-OK Status.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::sluice::Status _sluice_status = (expr);          \
    if (!_sluice_status.ok()) return _sluice_status;   \
  } while (0)

#define SLUICE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                 \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()

/// Evaluates a Result-returning `rexpr`; returns its Status on failure, else assigns to `lhs`.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL(SLUICE_CONCAT(_sluice_result_, __LINE__), lhs, rexpr)
