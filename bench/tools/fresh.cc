// sluice_bench_fresh: the two ends of a freshness measurement, independent of the engine under
// test (sluice or Spark).
//
//   sluice_bench_fresh produce --brokers HOST:PORT --topic T --input FILE --rate N --duration S
//                              --times OUT [--partition P] [--linger-ms MS]
//     Sends the lines of FILE (one payload each) to partition P of T at N records/s for at most
//     S seconds (or until FILE ends). OUT receives the wall-clock time (int64 microseconds since
//     the epoch, little-endian) at which each record was handed to the Kafka client, in order.
//     Prints one JSON line: produced, seconds, max_behind_ms (how far pacing fell behind).
//
//   sluice_bench_fresh poll --mysql HOST:PORT --user U --database D --sql "SELECT ..."
//                           --target N --out OUT [--interval-ms MS] [--timeout S]
//     Runs the query (its first column of the first row is read as an integer; NULL, no row or
//     an error such as a missing table count as 0) every MS milliseconds until it returns at
//     least N or S seconds pass. OUT receives "WALL_MICROS VALUE" each time the value changes,
//     timed when the result has arrived. Password: $SLUICE_MYSQL_PASSWORD. Exit 0 when the
//     target was reached, 3 on timeout.
#include <librdkafka/rdkafkacpp.h>
#include <mysql.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::map<std::string, std::string> ParseArgs(int argc, char** argv, int first) {
  std::map<std::string, std::string> out;
  for (int i = first; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) {
      std::cerr << "sluice_bench_fresh: unexpected argument " << k << "\n";
      std::exit(2);
    }
    out[k.substr(2)] = argv[i + 1];
  }
  if ((argc - first) % 2 != 0) {
    std::cerr << "sluice_bench_fresh: option " << argv[argc - 1] << " needs a value\n";
    std::exit(2);
  }
  return out;
}

std::string Need(const std::map<std::string, std::string>& a, const std::string& k) {
  auto it = a.find(k);
  if (it == a.end()) {
    std::cerr << "sluice_bench_fresh: --" << k << " is required\n";
    std::exit(2);
  }
  return it->second;
}

std::string Opt(const std::map<std::string, std::string>& a, const std::string& k,
                const std::string& fallback) {
  auto it = a.find(k);
  return it == a.end() ? fallback : it->second;
}

class DeliveryErrors : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() != RdKafka::ERR_NO_ERROR) {
      if (first_.empty()) first_ = message.errstr();
      ++failed_;
    }
  }
  int64_t failed_ = 0;
  std::string first_;
};

int Produce(const std::map<std::string, std::string>& a) {
  const std::string topic = Need(a, "topic");
  const double rate = std::stod(Need(a, "rate"));
  const double duration = std::stod(Need(a, "duration"));
  const int32_t partition = std::stoi(Opt(a, "partition", "0"));
  if (rate <= 0 || duration <= 0) {
    std::cerr << "sluice_bench_fresh: --rate and --duration must be positive\n";
    return 2;
  }
  std::ifstream in(Need(a, "input"), std::ios::binary);
  if (!in) {
    std::cerr << "sluice_bench_fresh: cannot read " << Need(a, "input") << "\n";
    return 2;
  }
  const int64_t limit = static_cast<int64_t>(rate * duration);
  std::FILE* times = std::fopen(Need(a, "times").c_str(), "wb");
  if (!times) {
    std::cerr << "sluice_bench_fresh: cannot write " << Need(a, "times") << "\n";
    return 2;
  }

  DeliveryErrors errors;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (auto [k, v] : {std::pair<std::string, std::string>{"bootstrap.servers", Need(a, "brokers")},
                      {"linger.ms", Opt(a, "linger-ms", "5")},
                      {"enable.idempotence", "true"},
                      {"batch.num.messages", "10000"},
                      {"queue.buffering.max.kbytes", "1048576"}}) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      std::cerr << "sluice_bench_fresh: " << err << "\n";
      return 2;
    }
  }
  conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&errors), err);
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  if (!producer) {
    std::cerr << "sluice_bench_fresh: kafka producer: " << err << "\n";
    return 1;
  }

  std::vector<int64_t> stamps;
  stamps.reserve(static_cast<size_t>(limit));
  std::string p;
  bool input_left = true;
  const auto start = std::chrono::steady_clock::now();
  int64_t max_behind_us = 0;
  int64_t n = 0;
  while (n < limit && input_left) {
    const auto due = start + std::chrono::microseconds(static_cast<int64_t>(n * 1e6 / rate));
    auto now = std::chrono::steady_clock::now();
    if (due > now) {
      std::this_thread::sleep_until(due);
      now = std::chrono::steady_clock::now();
    } else {
      max_behind_us = std::max<int64_t>(
          max_behind_us, std::chrono::duration_cast<std::chrono::microseconds>(now - due).count());
    }
    // Everything due by now goes out in this round, each record stamped as it is handed over.
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const int64_t due_count = std::min(limit, static_cast<int64_t>(elapsed * rate) + 1);
    while (n < due_count) {
      if (!std::getline(in, p)) {
        input_left = false;
        break;
      }
      if (p.empty()) continue;
      while (true) {
        RdKafka::ErrorCode rc =
            producer->produce(topic, partition, RdKafka::Producer::RK_MSG_COPY, p.data(), p.size(),
                              nullptr, 0, 0, nullptr);
        if (rc == RdKafka::ERR_NO_ERROR) break;
        if (rc != RdKafka::ERR__QUEUE_FULL) {
          std::cerr << "sluice_bench_fresh: produce: " << RdKafka::err2str(rc) << "\n";
          return 1;
        }
        producer->poll(5);
      }
      stamps.push_back(WallMicros());
      ++n;
    }
    producer->poll(0);
    if (errors.failed_ > 0) break;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RdKafka::ErrorCode rc = producer->flush(60000);
  std::fwrite(stamps.data(), sizeof(int64_t), stamps.size(), times);
  std::fclose(times);
  if (rc != RdKafka::ERR_NO_ERROR || errors.failed_ > 0) {
    std::cerr << "sluice_bench_fresh: delivery failed: "
              << (errors.first_.empty() ? RdKafka::err2str(rc) : errors.first_) << "\n";
    return 1;
  }
  std::printf("{\"produced\": %zu, \"seconds\": %.3f, \"max_behind_ms\": %.3f}\n", stamps.size(),
              seconds, max_behind_us / 1000.0);
  return 0;
}

int Poll(const std::map<std::string, std::string>& a) {
  const std::string hostport = Need(a, "mysql");
  const size_t colon = hostport.rfind(':');
  const std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  const unsigned port =
      colon == std::string::npos ? 3306u : static_cast<unsigned>(std::stoul(hostport.substr(colon + 1)));
  const std::string sql = Need(a, "sql");
  const int64_t target = std::stoll(Need(a, "target"));
  const int interval_ms = std::stoi(Opt(a, "interval-ms", "10"));
  const double timeout = std::stod(Opt(a, "timeout", "120"));
  const char* password = std::getenv("SLUICE_MYSQL_PASSWORD");
  std::FILE* out = std::fopen(Need(a, "out").c_str(), "w");
  if (!out) {
    std::cerr << "sluice_bench_fresh: cannot write " << Need(a, "out") << "\n";
    return 2;
  }
  MYSQL* m = mysql_init(nullptr);
  unsigned protocol = MYSQL_PROTOCOL_TCP;
  mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &protocol);
  if (!mysql_real_connect(m, host.c_str(), Opt(a, "user", "root").c_str(), password,
                          Need(a, "database").c_str(), port, nullptr, 0)) {
    std::cerr << "sluice_bench_fresh: mysql connect: " << mysql_error(m) << "\n";
    mysql_close(m);
    std::fclose(out);
    return 1;
  }
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(timeout * 1e6));
  int64_t last = -1;
  int rc = 3;
  auto next = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    int64_t value = 0;
    if (mysql_real_query(m, sql.data(), sql.size()) == 0) {
      if (MYSQL_RES* res = mysql_store_result(m)) {
        if (MYSQL_ROW row = mysql_fetch_row(res); row && row[0]) value = std::atoll(row[0]);
        mysql_free_result(res);
      }
    } else if (mysql_errno(m) == 2006 || mysql_errno(m) == 2013) {
      std::cerr << "sluice_bench_fresh: mysql: " << mysql_error(m) << "\n";
      rc = 1;
      break;
    }
    const int64_t at = WallMicros();
    if (value != last) {
      std::fprintf(out, "%lld %lld\n", static_cast<long long>(at), static_cast<long long>(value));
      std::fflush(out);
      last = value;
    }
    if (value >= target) {
      rc = 0;
      break;
    }
    next += std::chrono::milliseconds(interval_ms);
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;
    std::this_thread::sleep_until(next);
  }
  mysql_close(m);
  std::fclose(out);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: sluice_bench_fresh produce|poll --option value ...\n";
    return 2;
  }
  const std::string cmd = argv[1];
  auto args = ParseArgs(argc, argv, 2);
  if (cmd == "produce") return Produce(args);
  if (cmd == "poll") return Poll(args);
  std::cerr << "sluice_bench_fresh: unknown command " << cmd << "\n";
  return 2;
}
