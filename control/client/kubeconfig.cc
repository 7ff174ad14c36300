#include "control/client/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace sluice::client {

namespace {

Error bad(const std::string& path, const std::string& what) {
  return Error{ErrorCode::kInvalidArgument, "kubeconfig " + path + ": " + what};
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{ErrorCode::kNotFound, "cannot read " + path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// RFC 4648 base64, as Go's encoding/base64 writes *-data fields; unpadded
// input is accepted too (some generators strip the '='), whitespace ignored.
Result<std::string> base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string clean;
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') clean.push_back(c);
  }
  size_t padding = 0;
  while (padding < 2 && padding < clean.size() && clean[clean.size() - 1 - padding] == '=') ++padding;
  if (padding > 0 && clean.size() % 4 != 0) return Error{ErrorCode::kInvalidArgument, "invalid base64: bad padding"};
  clean.resize(clean.size() - padding);
  // One leftover character carries 6 bits: less than a byte.
  if (clean.size() % 4 == 1) return Error{ErrorCode::kInvalidArgument, "invalid base64: truncated"};
  std::string out;
  out.reserve(clean.size() / 4 * 3 + 2);
  uint32_t bits = 0;
  int count = 0;
  for (char c : clean) {
    const int v = value(c);
    if (v < 0) return Error{ErrorCode::kInvalidArgument, "invalid base64"};
    bits = bits << 6 | static_cast<uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<char>(bits >> 16));
      out.push_back(static_cast<char>(bits >> 8));
      out.push_back(static_cast<char>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) out.push_back(static_cast<char>(bits >> 4));
  if (count == 3) {
    out.push_back(static_cast<char>(bits >> 10));
    out.push_back(static_cast<char>(bits >> 2));
  }
  return out;
}

// A server URL's port: decimal 1-65535, nothing else.
std::optional<uint16_t> parsePort(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

// A string field: absent is "". A map or a list where a string belongs is
// an error: yaml-cpp's as<T>(fallback) would quietly return the fallback
// (a token written as a map would become no token). Thrown inside parse(),
// whose one catch turns it into the Error, like yaml-cpp's own exceptions.
std::string scalar(const YAML::Node& node, const std::string& key) {
  const YAML::Node v = node[key];
  if (!v || v.IsNull()) return "";
  if (!v.IsScalar()) throw std::invalid_argument(key + ": must be a string");
  return v.Scalar();
}

// The named entry of a kubeconfig list (clusters, users, contexts).
YAML::Node findNamed(const YAML::Node& list, const std::string& name) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const auto& item : list) {
    if (item.IsMap() && scalar(item, "name") == name) return item;
  }
  return YAML::Node();
}

// Inline "*-data" (base64) or a file path relative to the kubeconfig.
Result<std::string> material(const YAML::Node& node, const std::string& field, const std::string& dir,
                             const Kubeconfig::FileReader& read) {
  if (node[field + "-data"]) return base64Decode(scalar(node, field + "-data"));
  if (node[field]) {
    std::string p = scalar(node, field);
    if (!p.empty() && p[0] != '/') p = dir + "/" + p;
    return read(p);
  }
  return std::string();
}

}  // namespace

std::string Kubeconfig::url() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "https://" + h + ":" + std::to_string(port);
}

Result<Kubeconfig> Kubeconfig::load(const std::string& path) {
  auto text = readFile(path);
  if (!text) return text.error();
  return parse(*text, path, readFile);
}

Result<Kubeconfig> Kubeconfig::parse(std::string_view text, const std::string& path,
                                     const FileReader& read) {
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  // yaml-cpp reports syntax and type errors (a map where a string belongs)
  // by exception; they stop here.
  try {
    YAML::Node root = YAML::Load(std::string(text));
    if (!root["current-context"]) return bad(path, "no current-context");
    std::string ctxName = scalar(root, "current-context");
    YAML::Node ctx = findNamed(root["contexts"], ctxName);
    if (!ctx || !ctx["context"]) return bad(path, "contexts: no context named " + ctxName);
    std::string clusterName = scalar(ctx["context"], "cluster");
    std::string userName = scalar(ctx["context"], "user");
    YAML::Node cluster = findNamed(root["clusters"], clusterName);
    if (!cluster || !cluster["cluster"]) return bad(path, "clusters: no cluster named " + clusterName);
    YAML::Node c = cluster["cluster"];
    Kubeconfig kc;
    std::string server = scalar(c, "server");
    if (server.rfind("https://", 0) != 0) return bad(path, "clusters[" + clusterName + "].server: expected https://HOST[:PORT], got \"" + server + "\"");
    const std::string serverField = "clusters[" + clusterName + "].server: ";
    std::string hostport = server.substr(8);
    if (size_t slash = hostport.find('/'); slash != std::string::npos) hostport.resize(slash);
    std::string portText;
    bool hasPort = false;
    if (!hostport.empty() && hostport[0] == '[') {
      size_t close = hostport.find(']');
      if (close == std::string::npos) return bad(path, serverField + "unterminated [");
      kc.host = hostport.substr(1, close - 1);
      const std::string rest = hostport.substr(close + 1);
      if (!rest.empty() && rest[0] != ':') return bad(path, serverField + "unexpected \"" + rest + "\" after ]");
      hasPort = !rest.empty();
      if (hasPort) portText = rest.substr(1);
    } else if (size_t colon = hostport.rfind(':'); colon != std::string::npos) {
      kc.host = hostport.substr(0, colon);
      portText = hostport.substr(colon + 1);
      hasPort = true;
    } else {
      kc.host = hostport;
    }
    if (kc.host.empty()) return bad(path, serverField + "no host in \"" + server + "\"");
    if (hasPort) {
      auto port = parsePort(portText);
      if (!port) return bad(path, serverField + "port \"" + portText + "\" is not 1-65535");
      kc.port = *port;
    }
    auto ca = material(c, "certificate-authority", dir, read);
    if (!ca) return bad(path, "clusters[" + clusterName + "].certificate-authority: " + ca.error().message);
    kc.caPem = *ca;
    kc.insecureSkipVerify = c["insecure-skip-tls-verify"].as<bool>(false);
    YAML::Node user = findNamed(root["users"], userName);
    if (user && user["user"]) {
      YAML::Node u = user["user"];
      kc.token = scalar(u, "token");
      if (kc.token.empty() && u["tokenFile"]) {
        auto t = read(scalar(u, "tokenFile"));
        if (!t) return bad(path, "users[" + userName + "].tokenFile: " + t.error().message);
        kc.token = *t;
        while (!kc.token.empty() && (kc.token.back() == '\n' || kc.token.back() == '\r')) kc.token.pop_back();
      }
      auto cert = material(u, "client-certificate", dir, read);
      if (!cert) return bad(path, "users[" + userName + "].client-certificate: " + cert.error().message);
      auto key = material(u, "client-key", dir, read);
      if (!key) return bad(path, "users[" + userName + "].client-key: " + key.error().message);
      kc.clientCertPem = *cert;
      kc.clientKeyPem = *key;
    }
    return kc;
  } catch (const std::exception& e) {
    return bad(path, e.what());
  }
}

}  // namespace sluice::client
