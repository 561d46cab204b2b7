#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <filesystem>

#include "commands.h"
#include "demo_files.h"
#include "runtime/dead_letter_file.h"
#include "connectors/generator/generator_source.h"
#include "connectors/kafka/avro_encoder.h"
#include "connectors/kafka/kafka_uri.h"
#include "operators/decoder.h"
#include "core/time.h"
#include "core/uri.h"

namespace sluice::cli {
namespace {

/// Writes events somewhere: a Kafka topic or an NDJSON file.
class EventWriter {
 public:
  virtual ~EventWriter() = default;
  virtual Status Write(std::string_view key, std::string_view payload) = 0;
  virtual Status Finish() = 0;
};

class FileWriter : public EventWriter {
 public:
  explicit FileWriter(std::ofstream out) : out_(std::move(out)) {}
  Status Write(std::string_view, std::string_view payload) override {
    out_.write(payload.data(), static_cast<std::streamsize>(payload.size()));
    out_.put('\n');
    return out_ ? Status::OK() : Status::IOError("write failed");
  }
  Status Finish() override {
    out_.flush();
    return out_ ? Status::OK() : Status::IOError("write failed");
  }

 private:
  std::ofstream out_;
};

class KafkaWriter : public EventWriter, public RdKafka::DeliveryReportCb {
 public:
  static Result<std::unique_ptr<KafkaWriter>> Make(const KafkaUri& uri) {
    std::unique_ptr<KafkaWriter> w(new KafkaWriter());
    w->topic_ = uri.topic;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::string err;
    for (auto [k, v] : {std::pair<std::string, std::string>{"bootstrap.servers", uri.brokers},
                        {"enable.idempotence", "true"}, {"linger.ms", "20"},
                        {"batch.num.messages", "10000"}, {"queue.buffering.max.kbytes", "262144"}}) {
      if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) return Status::InvalidArgument(err);
    }
    conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(w.get()), err);
    w->producer_.reset(RdKafka::Producer::create(conf.get(), err));
    if (!w->producer_) return Status::InvalidArgument("kafka producer: " + err);
    return w;
  }

  Status Write(std::string_view key, std::string_view payload) override {
    while (true) {
      RdKafka::ErrorCode rc = producer_->produce(
          topic_, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
          const_cast<char*>(payload.data()), payload.size(), key.empty() ? nullptr : key.data(),
          key.size(), 0, nullptr);
      if (rc == RdKafka::ERR_NO_ERROR) break;
      if (rc != RdKafka::ERR__QUEUE_FULL) return Status::Unavailable("kafka produce: " + RdKafka::err2str(rc));
      producer_->poll(50);
    }
    producer_->poll(0);
    if (!error_.empty()) return Status::Unavailable("kafka delivery failed: " + error_);
    return Status::OK();
  }

  Status Finish() override {
    RdKafka::ErrorCode rc = producer_->flush(60000);
    if (rc != RdKafka::ERR_NO_ERROR) return Status::Unavailable("kafka flush: " + RdKafka::err2str(rc));
    if (!error_.empty()) return Status::Unavailable("kafka delivery failed: " + error_);
    return Status::OK();
  }

  void dr_cb(RdKafka::Message& message) override {
    if (message.err() != RdKafka::ERR_NO_ERROR && error_.empty()) error_ = message.errstr();
  }

 private:
  KafkaWriter() = default;
  std::string topic_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::string error_;
};

/// The typed fields of a profile's events for --format avro: the recruitment event's fields with
/// the types examples/recruitment.toml reads them as (ids and bid int64; the others, which it
/// does not read, as they are in the JSON).
Result<Schema> AvroEventFields(const std::string& profile) {
  if (profile != "recruitment") {
    return Status::InvalidArgument("--format avro: only the recruitment profile has an Avro schema so far");
  }
  Schema s;
  for (const auto& [name, type] :
       std::initializer_list<std::pair<const char*, Type>>{
           {"create_time", Type::kString}, {"bid", Type::kInt64}, {"bn", Type::kString},
           {"campaign_id", Type::kInt64}, {"custom_track", Type::kString}, {"group_id", Type::kInt64},
           {"job_id", Type::kInt64}, {"publisher_id", Type::kInt64}, {"ts", Type::kString},
           {"ua", Type::kString}, {"dl", Type::kString}, {"tz", Type::kInt64}}) {
    s.Add(Field{name, type, ""});
  }
  return s;
}

/// Writes each event as Avro in the Confluent wire format through another writer: the JSON event
/// is read with the NDJSON decoder into the typed fields (as a pipeline declaring those types
/// reads it), then written by the Kafka sink's Avro encoder, whose Open() registers the schema.
/// An event the typed fields cannot hold is written as its JSON text: a dead letter for an Avro
/// reader, as it is for a JSON reader with those types.
class AvroWriter : public EventWriter {
 public:
  static Result<std::unique_ptr<AvroWriter>> Make(std::unique_ptr<EventWriter> inner,
                                                  const SchemaRegistrySettings& registry, const Schema& fields) {
    std::unique_ptr<AvroWriter> w(new AvroWriter());
    w->inner_ = std::move(inner);
    DecoderOptions json;
    json.format = DecoderOptions::Format::kNdjson;
    ASSIGN_OR_RETURN(w->decoder_, MakeDecoder(json, fields));
    RETURN_IF_ERROR(w->encoder_.Open(registry, fields, "sluice.RecruitmentEvent"));
    w->values_.resize(fields.size());
    return w;
  }
  Status Write(std::string_view key, std::string_view payload) override {
    for (Value& v : values_) v = Value();
    if (!decoder_->Decode(payload, values_).ok()) return inner_->Write(key, payload);
    RETURN_IF_ERROR(encoder_.Encode(values_, &buffer_));
    return inner_->Write(key, buffer_);
  }
  Status Finish() override { return inner_->Finish(); }
  int32_t schema_id() const { return encoder_.schema_id(); }

 private:
  AvroWriter() = default;
  std::unique_ptr<EventWriter> inner_;
  std::unique_ptr<Decoder> decoder_;
  AvroRowEncoder encoder_;
  std::vector<Value> values_;
  std::string buffer_;
};

void Progress(int64_t done, int64_t total, double seconds, bool final) {
  char line[160];
  const double rate = done / std::max(seconds, 1e-9);
  if (total > 0) {
    const int width = 30;
    int filled = static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total));
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::snprintf(line, sizeof line, "\r[%s] %lld/%lld events  %.0f/s  %.1fs", bar.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total), rate, seconds);
  } else {
    std::snprintf(line, sizeof line, "\r%lld events  %.0f/s  %.1fs", static_cast<long long>(done),
                  rate, seconds);
  }
  std::fputs(line, stderr);
  if (final) std::fputc('\n', stderr);
  std::fflush(stderr);
}

/// Drops the empty "file:0:0" location that options given on the command line carry.
std::string WithoutLocation(std::string m) {
  for (size_t at; (at = m.find(":0:0: ")) != std::string::npos;) m.replace(at, 6, ": ");
  if (m.rfind(": ", 0) == 0) m.erase(0, 2);
  return m;
}

}  // namespace

/// Writes the built-in copy of examples/`name` to a temporary file for a profile to read, so
/// `sluice generate` needs no source tree. Returns its path, or "" when it cannot.
std::string WriteBuiltInFile(const std::string& name) {
  const DemoFile* f = FindDemoFile(name);
  if (!f) return "";
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("sluice-generate-" + std::to_string(::getpid()) + "-" + std::filesystem::path(name).filename().string());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(f->body.data(), static_cast<std::streamsize>(f->body.size()));
  out.close();
  return out ? path.string() : "";
}

int RunGenerate(const GenerateOptions& opts, const std::atomic<bool>& stop) {
  Options o;
  o.Set("profile", {opts.profile, {}});
  o.Set("seed", {std::to_string(opts.seed), {}});
  o.Set("rate", {FormatDouble(opts.rate), {}});
  o.Set("count", {std::to_string(opts.count), {}});
  if (!opts.jobs.empty()) o.Set("jobs", {opts.jobs, {}});
  if (!opts.start.empty()) o.Set("start", {opts.start, {}});
  for (const std::string& item : opts.settings) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "sluice generate: --set expects NAME=VALUE, got '" << item << "'\n";
      return 2;
    }
    expr::SourceLocation where;
    where.file = "--set " + item.substr(0, eq);
    o.Set(item.substr(0, eq), {item.substr(eq + 1), where});
  }
  auto settings = ParseGeneratorSettings(o);
  if (!settings.ok()) {
    std::cerr << "sluice generate: " << WithoutLocation(settings.status().message()) << "\n";
    return 2;
  }
  // Without --jobs (recruitment) or campaigns= (ysb), the profile reads the copy of
  // examples/data/ built into the binary: the same events from any working directory.
  std::string built_in;
  const std::string file_key =
      opts.profile == "recruitment" ? "jobs" : opts.profile == "ysb" ? "campaigns" : "";
  if (!file_key.empty() && !o.Has(file_key)) {
    built_in = WriteBuiltInFile(opts.profile == "recruitment" ? "data/job.csv" : "data/ysb_ads.csv");
    if (!built_in.empty()) o.Set(file_key, {built_in, {}});
  }
  auto profile = MakeGeneratorProfile(opts.profile, o, settings->seed);
  if (!built_in.empty()) {
    std::error_code ec;
    std::filesystem::remove(built_in, ec);
  }
  if (!profile.ok()) {
    std::cerr << "sluice generate: " << WithoutLocation(profile.status().message()) << "\n";
    return 2;
  }
  if (Status unused = o.RejectUnconsumed("generate"); !unused.ok()) {
    // The message names the key as "unknown key 'NAME'"; say which profile ignores it.
    const std::string& m = unused.message();
    const size_t q = m.find("unknown key '");
    std::string key = q == std::string::npos ? m : m.substr(q + 13, m.find('\'', q + 13) - q - 13);
    std::cerr << "sluice generate: the " << opts.profile << " profile has no setting '" << key
              << "'\n";
    return 2;
  }
  if (opts.format != "json" && opts.format != "avro") {
    std::cerr << "sluice generate: --format must be json or avro, got '" << opts.format << "'\n";
    return 2;
  }
  std::unique_ptr<EventWriter> writer;
  auto [scheme, rest] = SplitUri(opts.to);
  if (scheme == "kafka") {
    auto uri = ParseKafkaUri(rest);
    if (!uri.ok()) {
      std::cerr << "sluice generate: " << uri.status().message() << "\n";
      return 2;
    }
    auto kw = KafkaWriter::Make(*uri);
    if (!kw.ok()) {
      std::cerr << "sluice generate: " << kw.status().message() << "\n";
      return 2;
    }
    writer = std::move(kw).value();
    if (opts.format == "avro") {
      auto fields = AvroEventFields(opts.profile);
      if (!fields.ok()) {
        std::cerr << "sluice generate: " << fields.status().message() << "\n";
        return 2;
      }
      if (opts.schema_registry.empty()) {
        std::cerr << "sluice generate: --format avro needs --schema-registry http://HOST:PORT\n";
        return 2;
      }
      Options ro;
      ro.Set("schema_registry", {opts.schema_registry, {}});
      auto registry = ReadSchemaRegistrySettings(ro, uri->topic);
      if (!registry.ok()) {
        std::cerr << "sluice generate: --schema-registry: "
                  << WithoutLocation(registry.status().message()) << "\n";
        return 2;
      }
      auto aw = AvroWriter::Make(std::move(writer), *registry, *fields);
      if (!aw.ok()) {
        std::cerr << "sluice generate: " << aw.status().message() << "\n";
        return aw.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      }
      std::cerr << "sluice generate: Avro, value schema id " << (*aw)->schema_id() << " under "
                << registry->subject << "\n";
      writer = std::move(aw).value();
    }
  } else if (opts.format == "avro") {
    std::cerr << "sluice generate: --format avro writes to Kafka only (--to kafka://HOST:PORT/TOPIC)\n";
    return 2;
  } else if (scheme == "file") {
    if (Status s = EnsureParentDirectory(rest); !s.ok()) {
      std::cerr << "sluice generate: " << s.message() << "\n";
      return 1;
    }
    std::ofstream out(rest, std::ios::binary | std::ios::trunc);
    if (!out) {
      std::cerr << "sluice generate: cannot write " << rest << "\n";
      return 1;
    }
    writer = std::make_unique<FileWriter>(std::move(out));
  } else {
    std::cerr << "sluice generate: --to must be kafka://HOST:PORT/TOPIC or a file path\n";
    return 2;
  }

  const GeneratorSettings& s = *settings;
  const bool tty = isatty(STDERR_FILENO);
  const auto started = std::chrono::steady_clock::now();
  auto last_progress = started;
  std::string payload, key;
  int64_t produced = 0;
  for (uint64_t seq = 0; s.count < 0 || static_cast<int64_t>(seq) < s.count; ++seq) {
    if (stop.load()) break;
    if (s.rate > 0) {
      // Pace to the rate: event seq is due at seq / rate seconds after the start.
      auto due = started + std::chrono::microseconds(static_cast<int64_t>(seq * 1e6 / s.rate));
      if (due > std::chrono::steady_clock::now()) std::this_thread::sleep_until(due);
    }
    Rng rng(s.seed * 0x9e3779b97f4a7c15ULL ^ (seq + 1) * 0xd1b54a32d192ed03ULL);
    payload.clear();
    (*profile)->Make(seq, s.start_micros + static_cast<int64_t>(seq) * s.spacing_micros, rng,
                     &payload, &key);
    if (Status st = writer->Write(key, payload); !st.ok()) {
      std::cerr << "\nsluice generate: " << st.message() << "\n";
      return 1;
    }
    ++produced;
    auto now = std::chrono::steady_clock::now();
    if (now - last_progress > std::chrono::milliseconds(tty ? 200 : 5000)) {
      last_progress = now;
      Progress(produced, s.count, std::chrono::duration<double>(now - started).count(), !tty);
    }
  }
  Status st = writer->Finish();
  Progress(produced, s.count,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), true);
  if (!st.ok()) {
    std::cerr << "sluice generate: " << st.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace sluice::cli
