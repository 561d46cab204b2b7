#include "connectors/http/fake_api.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <optional>
#include <charconv>
#include <cstdio>

#include "core/json_writer.h"
#include "core/time.h"

namespace sluice {
namespace {

/// Draws the values of one user; seeded per (seed, page, index).
class Draw {
 public:
  explicit Draw(uint64_t state) : state_(state) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int64_t Between(int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  template <typename T, size_t N>
  const T& Pick(const std::array<T, N>& a) {
    return a[Next() % N];
  }
  std::string Hex(int n) {
    static const char* kHex = "0123456789abcdef";
    std::string out;
    while (static_cast<int>(out.size()) < n) out.push_back(kHex[Next() & 15]);
    return out;
  }
  std::string Digits(int n) {
    std::string out;
    while (static_cast<int>(out.size()) < n) out.push_back(static_cast<char>('0' + Next() % 10));
    return out;
  }
  std::string Letters(int n, const char* alphabet, size_t size) {
    std::string out;
    while (static_cast<int>(out.size()) < n) out.push_back(alphabet[Next() % size]);
    return out;
  }

 private:
  uint64_t state_;
};

struct Nation {
  const char* nat;
  const char* country;
  int postcode_kind;  ///< 0: 5-digit number, 1: 4-digit number, 2: "A9 9AA", 3: "A9A 9A9", 4: "9999 AA"
  const char* id_name;
};

constexpr std::array<Nation, 10> kNations = {{
    {"US", "United States", 0, "SSN"},
    {"GB", "United Kingdom", 2, "NINO"},
    {"FR", "France", 0, "INSEE"},
    {"DE", "Germany", 0, ""},
    {"CA", "Canada", 3, "SIN"},
    {"AU", "Australia", 1, "TFN"},
    {"NL", "Netherlands", 4, "BSN"},
    {"ES", "Spain", 0, "DNI"},
    {"NO", "Norway", 1, "FN"},
    {"BR", "Brazil", 0, ""},
}};

constexpr std::array<const char*, 16> kMaleFirst = {
    "James", "Noah", "Lucas", "Jürgen", "Søren", "José", "Liam", "Mathis",
    "Oliver", "Hugo", "Daan", "Emil", "Jack", "Mateo", "Léo", "Aiden"};
constexpr std::array<const char*, 16> kFemaleFirst = {
    "Emma", "Olivia", "Élodie", "Zoë", "Åsa", "Renée", "Mia", "Sofia",
    "Chloé", "Freya", "Lotte", "Ingrid", "Isabella", "Amelia", "Inès", "Charlotte"};
constexpr std::array<const char*, 20> kLast = {
    "Smith", "O'Connor", "Müller", "García", "Øvrebø", "Dubois", "Johnson", "van Dijk",
    "Martin", "Brown", "Wilson", "Fernández", "Schmidt", "Lefebvre", "Hansen", "Taylor",
    "Roy", "Tremblay", "Silva", "Nieminen"};
constexpr std::array<const char*, 12> kStreets = {
    "Main Street", "Park Lane", "Rue de la Paix", "Hauptstraße", "Church Road", "Calle Mayor",
    "Kirkegata", "Oak Avenue", "Station Road", "Rua Sete", "Dorpsstraat", "King Street"};
constexpr std::array<const char*, 12> kCities = {
    "Springfield", "Bristol", "Lyon", "Köln", "Montréal", "Perth",
    "Utrecht", "Sevilla", "Bergen", "Curitiba", "Dunedin", "Tampere"};
constexpr std::array<const char*, 10> kStates = {
    "Ohio", "Devon", "Rhône", "Nordrhein-Westfalen", "Québec", "Western Australia",
    "Utrecht", "Andalucía", "Vestland", "Paraná"};
constexpr std::array<const char*, 8> kTimezones = {
    "-5:00|Eastern Time (US & Canada), Bogota, Lima", "0:00|Western Europe Time, London, Lisbon",
    "+1:00|Brussels, Copenhagen, Madrid, Paris", "+5:30|Bombay, Calcutta, Madras, New Delhi",
    "-3:00|Brazil, Buenos Aires, Georgetown", "+10:00|Eastern Australia, Guam, Vladivostok",
    "+9:00|Tokyo, Seoul, Osaka, Sapporo, Yakutsk", "-8:00|Pacific Time (US & Canada)"};
constexpr std::array<const char*, 10> kWords = {
    "yellow", "brown", "silver", "tiny", "heavy", "crazy", "lazy", "orange", "blue", "happy"};
constexpr std::array<const char*, 10> kAnimals = {
    "peacock", "koala", "rabbit", "tiger", "swan", "leopard", "goose", "fish", "bear", "wolf"};
constexpr std::array<const char*, 8> kPasswords = {
    "sunshine", "dragon", "qwerty", "monkey", "letmein", "shadow", "master", "password1"};

constexpr const char* kUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

std::string LowerAscii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == ' ' || c == '\'') c = '-';
  }
  return s;
}

std::string IsoMillis(int64_t micros) {
  return FormatTimestamp(micros - micros % 1000, "%Y-%m-%dT%H:%M:%S.%f").substr(0, 23) + "Z";
}

/// Whole years from `micros` to the fixed reference date 2026-01-01, so ages never depend on
/// when the page is rendered.
int AgeAt(int64_t micros) {
  const CivilTime born = ToCivil(micros);
  const CivilTime ref{2026, 1, 1, 0, 0, 0, 0};
  int age = ref.year - born.year;
  if (ref.month < born.month || (ref.month == born.month && ref.day < born.day)) --age;
  return age;
}

void Str(std::string* out, std::string_view key, std::string_view value) {
  out->push_back('"');
  out->append(key);
  out->append("\":");
  AppendJsonString(value, out);
}

void AppendUser(std::string_view seed, int64_t page, int index, std::string* out) {
  Draw d(FakeMix(FakeSeedHash(seed) ^ FakeMix((static_cast<uint64_t>(page) << 20) ^
                                              static_cast<uint64_t>(index))));
  const bool female = d.Next() % 2 == 0;
  const Nation& nation = d.Pick(kNations);
  const std::string first = female ? d.Pick(kFemaleFirst) : d.Pick(kMaleFirst);
  const std::string last = d.Pick(kLast);
  static constexpr std::array<const char*, 3> kFemaleTitles = {"Ms", "Mrs", "Miss"};
  const std::string title = female ? d.Pick(kFemaleTitles) : "Mr";

  out->append("{");
  Str(out, "gender", female ? "female" : "male");
  out->append(",\"name\":{");
  Str(out, "title", title);
  out->push_back(',');
  Str(out, "first", first);
  out->push_back(',');
  Str(out, "last", last);
  out->append("},\"location\":{\"street\":{\"number\":");
  out->append(std::to_string(d.Between(1, 9999)));
  out->push_back(',');
  Str(out, "name", d.Pick(kStreets));
  out->append("},");
  Str(out, "city", d.Pick(kCities));
  out->push_back(',');
  Str(out, "state", d.Pick(kStates));
  out->push_back(',');
  Str(out, "country", nation.country);
  out->append(",\"postcode\":");
  switch (nation.postcode_kind) {
    case 0:
      out->append(std::to_string(d.Between(10000, 99999)));
      break;
    case 1:
      out->append(std::to_string(d.Between(1000, 9999)));
      break;
    case 2:
      AppendJsonString(d.Letters(1, kUpper, 26) + d.Digits(1) + " " + d.Digits(1) +
                           d.Letters(2, kUpper, 26),
                       out);
      break;
    case 3:
      AppendJsonString(d.Letters(1, kUpper, 26) + d.Digits(1) + d.Letters(1, kUpper, 26) + " " +
                           d.Digits(1) + d.Letters(1, kUpper, 26) + d.Digits(1),
                       out);
      break;
    default:
      AppendJsonString(d.Digits(4) + " " + d.Letters(2, kUpper, 26), out);
      break;
  }
  char coord[64];
  std::snprintf(coord, sizeof(coord), "%.4f", static_cast<double>(d.Between(-900000, 900000)) / 1e4);
  out->append(",\"coordinates\":{");
  Str(out, "latitude", coord);
  std::snprintf(coord, sizeof(coord), "%.4f", static_cast<double>(d.Between(-1800000, 1800000)) / 1e4);
  out->push_back(',');
  Str(out, "longitude", coord);
  const std::string tz = d.Pick(kTimezones);
  const size_t bar = tz.find('|');
  out->append("},\"timezone\":{");
  Str(out, "offset", tz.substr(0, bar));
  out->push_back(',');
  Str(out, "description", tz.substr(bar + 1));
  out->append("}},");
  Str(out, "email", LowerAscii(first) + "." + LowerAscii(last) + "@example.com");

  // login.uuid: a version-4 UUID from 128 drawn bits.
  std::string hex = d.Hex(32);
  hex[12] = '4';
  hex[16] = "89ab"[d.Next() % 4];
  const std::string uuid = hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) +
                           "-" + hex.substr(16, 4) + "-" + hex.substr(20, 12);
  out->append(",\"login\":{");
  Str(out, "uuid", uuid);
  out->push_back(',');
  Str(out, "username", std::string(d.Pick(kWords)) + d.Pick(kAnimals) + d.Digits(3));
  out->push_back(',');
  Str(out, "password", d.Pick(kPasswords));
  out->push_back(',');
  Str(out, "salt", d.Letters(8, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 62));
  out->push_back(',');
  Str(out, "md5", d.Hex(32));
  out->push_back(',');
  Str(out, "sha1", d.Hex(40));
  out->push_back(',');
  Str(out, "sha256", d.Hex(64));
  out->push_back('}');

  const int64_t dob = FromCivil({1945, 1, 1, 0, 0, 0, 0}) +
                      d.Between(0, 58LL * 365 * kMicrosPerDay / 1000) * 1000;
  const int64_t registered = FromCivil({2002, 1, 1, 0, 0, 0, 0}) +
                             d.Between(0, 21LL * 365 * kMicrosPerDay / 1000) * 1000;
  out->append(",\"dob\":{");
  Str(out, "date", IsoMillis(dob));
  out->append(",\"age\":" + std::to_string(AgeAt(dob)) + "},\"registered\":{");
  Str(out, "date", IsoMillis(registered));
  out->append(",\"age\":" + std::to_string(AgeAt(registered)) + "},");
  Str(out, "phone", "(" + d.Digits(3) + ") " + d.Digits(3) + "-" + d.Digits(4));
  out->push_back(',');
  Str(out, "cell", "(" + d.Digits(3) + ") " + d.Digits(3) + "-" + d.Digits(4));
  out->append(",\"id\":{");
  Str(out, "name", nation.id_name);
  out->append(",\"value\":");
  if (nation.id_name[0] == '\0') {
    out->append("null");  // like the real API, some nationalities have no id value
  } else {
    AppendJsonString(d.Digits(3) + "-" + d.Digits(2) + "-" + d.Digits(4), out);
  }
  const std::string who = female ? "women" : "men";
  const std::string picture = std::to_string(d.Between(0, 99)) + ".jpg";
  out->append("},\"picture\":{");
  Str(out, "large", "https://example.com/api/portraits/" + who + "/" + picture);
  out->push_back(',');
  Str(out, "medium", "https://example.com/api/portraits/med/" + who + "/" + picture);
  out->push_back(',');
  Str(out, "thumbnail", "https://example.com/api/portraits/thumb/" + who + "/" + picture);
  out->append("},");
  Str(out, "nat", nation.nat);
  out->push_back('}');
}

std::string ErrorBody(std::string_view message) {
  std::string out = "{\"error\":";
  AppendJsonString(message, &out);
  out += "}";
  return out;
}

std::optional<int64_t> ParseInt(const std::string& text) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

}  // namespace

Result<FakeFault> ParseFakeFault(std::string_view name) {
  if (name == "5xx") return FakeFault::k5xx;
  if (name == "timeout") return FakeFault::kTimeout;
  if (name == "malformed") return FakeFault::kMalformed;
  return Status::InvalidArgument("unknown error kind '" + std::string(name) +
                                 "' (expected 5xx, timeout or malformed)");
}

uint64_t FakeSeedHash(std::string_view seed) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : seed) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t FakeMix(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

FakeFault FakeFaultFor(const FakeApiOptions& options, std::string_view seed, int64_t page) {
  if (options.error_rate <= 0 || options.errors.empty()) return FakeFault::kNone;
  const uint64_t h = FakeMix(FakeSeedHash(seed) ^ FakeMix(static_cast<uint64_t>(page)));
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  if (u >= options.error_rate) return FakeFault::kNone;
  return options.errors[FakeMix(h) % options.errors.size()];
}

std::string RenderFakeUsersPage(std::string_view seed, int64_t page, int results) {
  std::string out;
  out.reserve(static_cast<size_t>(results) * 1400 + 100);
  out.append("{\"results\":[");
  for (int i = 0; i < results; ++i) {
    if (i) out.push_back(',');
    AppendUser(seed, page, i, &out);
  }
  out.append("],\"info\":{\"seed\":");
  AppendJsonString(seed, &out);
  out.append(",\"results\":" + std::to_string(results) + ",\"page\":" + std::to_string(page) +
             ",\"version\":\"1.4\"}}");
  return out;
}

FakeApiResponse HandleFakeApiRequest(
    const FakeApiOptions& options, const std::string& path,
    const std::multimap<std::string, std::string>& params,
    const std::function<int(const std::string& seed, int64_t page)>& attempt) {
  FakeApiResponse r;
  r.hang_ms = options.delay_ms;
  if (path != "/" && path != "/api" && path != "/api/") {
    r.status = 404;
    r.body = ErrorBody("not found: " + path + " (the API is at /api/)");
    return r;
  }
  auto param = [&](const char* name) -> std::optional<std::string> {
    auto it = params.find(name);
    if (it == params.end()) return std::nullopt;
    return it->second;
  };
  int64_t results = 1;
  int64_t page = 1;
  if (auto v = param("results")) {
    auto n = ParseInt(*v);
    if (!n) {
      r.status = 400;
      r.body = ErrorBody("results must be an integer, got '" + *v + "'");
      return r;
    }
    results = std::clamp<int64_t>(*n, 1, std::clamp<int64_t>(options.max_results, 1, kMaxResults));
  }
  if (auto v = param("page")) {
    auto n = ParseInt(*v);
    if (!n || *n < 0) {
      r.status = 400;
      r.body = ErrorBody("page must be a non-negative integer, got '" + *v + "'");
      return r;
    }
    page = *n;
  }
  const std::string seed = param("seed").value_or(options.seed);
  FakeFault fault = FakeFaultFor(options, seed, page);
  if (fault != FakeFault::kNone && options.fail_times > 0 && attempt &&
      attempt(seed, page) >= options.fail_times) {
    fault = FakeFault::kNone;
  }
  switch (fault) {
    case FakeFault::k5xx: {
      static constexpr std::array<int, 3> kCodes = {500, 502, 503};
      r.status = kCodes[FakeMix(FakeSeedHash(seed) + static_cast<uint64_t>(page)) % 3];
      r.body = ErrorBody("Uh oh, something has gone wrong (injected " + std::to_string(r.status) + ")");
      return r;
    }
    case FakeFault::kMalformed: {
      std::string body = RenderFakeUsersPage(seed, page, static_cast<int>(results));
      r.body = body.substr(0, body.size() / 2);
      return r;
    }
    case FakeFault::kTimeout:
      r.hang_ms += options.hang_ms;
      break;
    case FakeFault::kNone:
      break;
  }
  r.body = RenderFakeUsersPage(seed, page, static_cast<int>(results));
  return r;
}

Result<std::unique_ptr<FakeApiServer>> FakeApiServer::Start(FakeApiOptions options) {
  std::unique_ptr<FakeApiServer> s(new FakeApiServer());
  s->options_ = std::move(options);
  s->server_ = std::make_unique<httplib::Server>();
  FakeApiServer* self = s.get();
  self->server_->Get(R"(/.*)", [self](const httplib::Request& req, httplib::Response& res) {
    std::multimap<std::string, std::string> params(req.params.begin(), req.params.end());
    auto attempt = [self](const std::string& seed, int64_t page) {
      std::lock_guard<std::mutex> lock(self->mu_);
      return self->seen_[{seed, page}]++;
    };
    FakeApiResponse r = HandleFakeApiRequest(self->options_, req.path, params, attempt);
    if (r.hang_ms > 0) {
      std::unique_lock<std::mutex> lock(self->mu_);
      self->cv_.wait_for(lock, std::chrono::milliseconds(r.hang_ms), [self] { return self->stopping_; });
    }
    spdlog::debug("fake-api: GET {} -> {} ({} bytes{})", req.target, r.status, r.body.size(),
                  r.hang_ms > 0 ? ", after " + std::to_string(r.hang_ms) + " ms" : "");
    res.status = r.status;
    res.set_content(r.body, "application/json; charset=utf-8");
  });
  const int port = s->options_.port == 0
                       ? s->server_->bind_to_any_port(s->options_.host)
                       : (s->server_->bind_to_port(s->options_.host, s->options_.port)
                              ? s->options_.port
                              : -1);
  if (port < 0) {
    return Status::Unavailable("fake-api: cannot listen on " + s->options_.host + ":" +
                               std::to_string(s->options_.port));
  }
  s->port_ = port;
  s->listener_ = std::thread([self] {
    self->server_->listen_after_bind();
    self->listen_returned_.store(true);
  });
  return s;
}

void FakeApiServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (listener_.joinable()) {
    // stop() only ends a listen loop that has started.
    while (!listen_returned_.load() && !server_->is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    server_->stop();
    listener_.join();
  }
}

FakeApiServer::~FakeApiServer() { Stop(); }

}  // namespace sluice
