#include "http/assets.h"

namespace sluice::http {
namespace {

std::string_view ContentType(std::string_view name) {
  auto ends_with = [&](std::string_view suffix) { return name.ends_with(suffix); };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace

std::optional<Asset> FindAsset(std::string_view path) {
  if (path == "/") path = "/index.html";
  if (!path.starts_with('/')) return std::nullopt;
  const EmbeddedFile* f = FindEmbeddedFile(EmbeddedWebFiles(), path.substr(1));
  if (f == nullptr) return std::nullopt;
  return Asset{path, ContentType(f->path), f->body};
}

}  // namespace sluice::http
