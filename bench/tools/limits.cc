// sluice_bench_limits: how far an end-to-end run is from what this machine can do at all, on the
// same input file. Three levels, each a process measured from outside like `sluice run`
// (bench/run.py: wall, user + sys CPU, peak RSS):
//
//   sluice_bench_limits simdjson PIPELINE FILE
//     The reference: a bare simdjson On-Demand loop that reads FILE's lines and, in each
//     object, the fields PIPELINE declares in [source.fields] (by their JSON path, read as their
//     declared type: get_string / get_int64 / get_double / get_bool), nothing else. No sluice
//     code on the path: what parsing alone costs on this machine.
//   sluice_bench_limits parse PIPELINE FILE
//     The parse limit of sluice: the pipeline's own decoder (MakeDecoder with the source's
//     format and the plan's input schema, as a worker makes it) over every line of FILE into a
//     row of Values. No steps, no aggregate.
//   sluice_bench_limits columnar PIPELINE FILE
//     The same as parse with the columnar decoder (ColumnarJsonDecoder, NDJSON with flat fields
//     only) over batches of 4096 lines into typed columns, as a worker on the columnar path
//     decodes (runtime/columnar.h). No steps, no aggregate.
//   sluice_bench_limits engine PIPELINE FILE
//     The engine limit: the whole pipeline as `sluice run` runs it (the Runner: file source,
//     workers, decoder, steps, dimension lookups, aggregate, checkpoint handoff, merge and sort
//     of the deltas) with every commit handed to a sink that discards it (RunOptions::
//     sink_override). What is left to the end-to-end run is the sink. SLUICE_COLUMNAR=0 or 1
//     picks the worker's path as for `sluice run`.
//
// The two first modes read FILE the way the file source does (read() into a 4 MiB buffer, one
// record per line) inside the measured process. Each prints one JSON line on stdout:
//   {"mode": M, "records": N, "failed": F, "aggregated": A, "bytes": B, "loop_cpu_s": C}
// records: lines read (parse modes) or records in (engine); failed: lines the decoder refused;
// aggregated: records that reached the aggregate (engine only, else -1); loop_cpu_s: CPU time
// of the process's own measured part (without loading the pipeline).
// Exit: 0 done, 1 runtime failure, 2 bad arguments or pipeline.
#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"
#include "operators/batch.h"
#include "operators/columnar_json_decoder.h"
#include "operators/decoder.h"
#include "runtime/registry.h"
#include "runtime/runner.h"
#include "runtime/sink.h"

namespace sluice {
namespace {

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Calls `fn` for every non-empty line of `path` (without its '\n'), read in 4 MiB blocks as the
/// file source reads. Every line handed over is followed by at least SIMDJSON_PADDING readable
/// bytes of the buffer, so it can be parsed in place.
Status ForEachLine(const std::string& path, const std::function<void(std::string_view)>& fn,
                   int64_t* bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  constexpr size_t kBlock = 4 << 20;
  std::vector<char> buf(kBlock + simdjson::SIMDJSON_PADDING);
  size_t have = 0;  // bytes of an unfinished line at the start of buf
  Status status;
  while (true) {
    if (buf.size() - simdjson::SIMDJSON_PADDING == have) {  // a line longer than the buffer
      buf.resize(buf.size() * 2);
    }
    const size_t room = buf.size() - simdjson::SIMDJSON_PADDING - have;
    const ssize_t n = ::read(fd, buf.data() + have, room);
    if (n < 0) {
      if (errno == EINTR) continue;
      status = Status::IOError("cannot read " + path + ": " + std::strerror(errno));
      break;
    }
    *bytes += n;
    const size_t end = have + static_cast<size_t>(n);
    std::memset(buf.data() + end, 0, simdjson::SIMDJSON_PADDING);
    size_t start = 0;
    while (start < end) {
      const char* nl = static_cast<const char*>(std::memchr(buf.data() + start, '\n', end - start));
      if (nl == nullptr) break;
      const size_t len = static_cast<size_t>(nl - (buf.data() + start));
      if (len > 0) fn(std::string_view(buf.data() + start, len));
      start += len + 1;
    }
    if (n == 0) {  // end of file: the last line may lack its '\n'
      if (start < end) fn(std::string_view(buf.data() + start, end - start));
      break;
    }
    std::memmove(buf.data(), buf.data() + start, end - start);
    have = end - start;
  }
  ::close(fd);
  return status;
}

/// A sink that takes every checkpoint and keeps nothing: the engine without its sink.
class DiscardSink : public Sink {
 public:
  Status Open(const SinkContext&) override { return Status::OK(); }
  Result<std::vector<StoredPosition>> LoadPositions() override { return std::vector<StoredPosition>{}; }
  bool SupportsState() const override { return true; }
  bool StoresDeadLetters() const override { return true; }
  std::string DeadLetterLocation() const override { return "nowhere (sluice_bench_limits)"; }
  Status Commit(const Checkpoint&) override { return Status::OK(); }
};

struct Summary {
  int64_t records = 0;
  int64_t failed = 0;
  int64_t aggregated = -1;
  int64_t bytes = 0;
  double loop_cpu_s = 0;
};

Status RunSimdjson(const Plan& plan, const std::string& file, Summary* out) {
  simdjson::ondemand::parser parser;
  std::vector<std::string> keys;
  std::vector<Type> types;
  for (const Field& f : plan.input.fields()) {
    keys.push_back(f.source_path());
    types.push_back(f.type);
  }
  int64_t sink = 0;  // folds every value read, so none of the reads can be dropped
  const double cpu0 = ProcessCpuSeconds();
  Status s = ForEachLine(file, [&](std::string_view line) {
    ++out->records;
    simdjson::ondemand::document doc;
    if (parser.iterate(line.data(), line.size(), line.size() + simdjson::SIMDJSON_PADDING).get(doc)) {
      ++out->failed;
      return;
    }
    simdjson::ondemand::object obj;
    if (doc.get_object().get(obj)) {
      ++out->failed;
      return;
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      simdjson::ondemand::value v;
      if (obj.find_field_unordered(keys[i]).get(v)) continue;
      switch (types[i]) {
        case Type::kInt64: {
          int64_t x = 0;
          if (!v.get_int64().get(x)) sink += x;
          break;
        }
        case Type::kDouble: {
          double x = 0;
          if (!v.get_double().get(x)) sink += static_cast<int64_t>(x);
          break;
        }
        case Type::kBool: {
          bool x = false;
          if (!v.get_bool().get(x)) sink += x;
          break;
        }
        default: {
          std::string_view x;
          if (!v.get_string().get(x)) sink += static_cast<int64_t>(x.size());
          break;
        }
      }
    }
  }, &out->bytes);
  out->loop_cpu_s = ProcessCpuSeconds() - cpu0;
  if (sink == 42) std::fprintf(stderr, " ");  // keeps `sink` alive
  return s;
}

Status RunParse(const PipelineConfig& config, const Plan& plan, const std::string& file, Summary* out) {
  // The decoder as the file source's instances make it for a worker.
  ASSIGN_OR_RETURN(auto sources, ConnectorRegistry::Instance().MakeSources(config.source, 1));
  if (sources.empty()) return Status::InvalidArgument("the pipeline's source made no instance");
  const DecoderOptions options = sources[0]->decoder_options();
  if (options.format == DecoderOptions::Format::kCsv && options.header) {
    return Status::InvalidArgument("parse: CSV with a header line is not supported by this tool");
  }
  ASSIGN_OR_RETURN(auto decoder, MakeDecoder(options, plan.input));
  std::vector<Value> row(plan.schema.size());
  const std::span<Value> input = std::span<Value>(row).first(plan.input.size());
  const double cpu0 = ProcessCpuSeconds();
  Status s = ForEachLine(file, [&](std::string_view line) {
    ++out->records;
    if (!decoder->Decode(line, input).ok()) ++out->failed;
  }, &out->bytes);
  out->loop_cpu_s = ProcessCpuSeconds() - cpu0;
  return s;
}

Status RunColumnar(const Plan& plan, const std::string& file, Summary* out) {
  ASSIGN_OR_RETURN(auto decoder, ColumnarJsonDecoder::Make(plan.input));
  if (decoder == nullptr) {
    return Status::InvalidArgument("columnar: the pipeline's fields are not flat (see runtime/columnar.h)");
  }
  RawBatch raw;
  ColumnBatch batch;
  auto flush = [&] {
    decoder->Decode(raw, &batch);
    for (size_t i = 0; i < batch.size(); ++i) out->failed += batch.failed(i) ? 1 : 0;
    raw.Clear();
  };
  const double cpu0 = ProcessCpuSeconds();
  Status s = ForEachLine(file, [&](std::string_view line) {
    ++out->records;
    raw.Append(line);
    if (raw.size() == 4096) flush();
  }, &out->bytes);
  if (raw.size() > 0) flush();
  out->loop_cpu_s = ProcessCpuSeconds() - cpu0;
  return s;
}

Status RunEngine(PipelineConfig config, Summary* out) {
  RunOptions options;
  options.sink_override = []() -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(std::make_unique<DiscardSink>());
  };
  // Dead letters go with the (discarded) checkpoints, not to a file.
  config.dead_letter_store = PipelineConfig::DeadLetterStore::kDefault;
  const double cpu0 = ProcessCpuSeconds();
  ASSIGN_OR_RETURN(auto runner, Runner::Make(std::move(config), options));
  RETURN_IF_ERROR(runner->Run());
  out->loop_cpu_s = ProcessCpuSeconds() - cpu0;
  const PipelineSnapshot snap = runner->Snapshot();
  out->records = snap.records_in;
  out->failed = snap.decode_errors;
  out->aggregated = snap.aggregated;
  out->bytes = snap.bytes_in;
  return Status::OK();
}

int Main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: sluice_bench_limits simdjson|parse|columnar|engine PIPELINE.toml FILE\n");
    return 2;
  }
  const std::string mode = argv[1], pipeline = argv[2], file = argv[3];
  if (mode != "simdjson" && mode != "parse" && mode != "columnar" && mode != "engine") {
    std::fprintf(stderr, "sluice_bench_limits: unknown mode %s\n", mode.c_str());
    return 2;
  }
  RegisterBuiltins();
  // The example pipelines name their input ${TRACKING}/${VIEWS}/${EVENTS} and their sink ${SINK}:
  // the input is FILE, the sink is never opened (engine: discarded; parse modes: no run).
  Variables vars;
  vars.values["TRACKING"] = file;
  vars.values["VIEWS"] = file;
  vars.values["EVENTS"] = file;
  vars.values["SINK"] = "sqlite::memory:";
  vars.values["OUT"] = "sqlite::memory:";
  vars.reject_unused = false;
  auto config = LoadPipelineConfig(pipeline, vars);
  if (!config.ok()) {
    std::fprintf(stderr, "sluice_bench_limits: %s\n", config.status().ToString().c_str());
    return 2;
  }
  Summary summary;
  Status s;
  if (mode == "engine") {
    s = RunEngine(std::move(config).value(), &summary);
  } else {
    auto plan = BuildPlan(*config);
    if (!plan.ok()) {
      std::fprintf(stderr, "sluice_bench_limits: %s\n", plan.status().ToString().c_str());
      return 2;
    }
    if (mode == "simdjson") {
      s = RunSimdjson(**plan, file, &summary);
    } else if (mode == "columnar") {
      s = RunColumnar(**plan, file, &summary);
    } else {
      s = RunParse(*config, **plan, file, &summary);
    }
  }
  if (!s.ok()) {
    std::fprintf(stderr, "sluice_bench_limits: %s\n", s.ToString().c_str());
    return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::printf("{\"mode\": \"%s\", \"records\": %lld, \"failed\": %lld, \"aggregated\": %lld, "
              "\"bytes\": %lld, \"loop_cpu_s\": %.4f}\n",
              mode.c_str(), static_cast<long long>(summary.records), static_cast<long long>(summary.failed),
              static_cast<long long>(summary.aggregated), static_cast<long long>(summary.bytes),
              summary.loop_cpu_s);
  return 0;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) { return sluice::Main(argc, argv); }
