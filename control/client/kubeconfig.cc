#include "control/client/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include <boost/beast/core/detail/base64.hpp>

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

Result<std::string> base64Decode(const std::string& in) {
  namespace b64 = boost::beast::detail::base64;
  std::string clean;
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ') clean.push_back(c);
  }
  std::string out(b64::decoded_size(clean.size()), '\0');
  auto [written, read] = b64::decode(out.data(), clean.data(), clean.size());
  size_t padding = 0;
  while (padding < clean.size() && clean[clean.size() - 1 - padding] == '=') ++padding;
  if (read + padding < clean.size()) return Error{ErrorCode::kInvalidArgument, "invalid base64"};
  out.resize(written);
  return out;
}

// The named entry of a kubeconfig list (clusters, users, contexts).
YAML::Node findNamed(const YAML::Node& list, const std::string& name) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const auto& item : list) {
    if (item["name"] && item["name"].as<std::string>() == name) return item;
  }
  return YAML::Node();
}

// Inline "*-data" (base64) or a file path relative to the kubeconfig.
Result<std::string> material(const YAML::Node& node, const std::string& field, const std::string& dir) {
  if (node[field + "-data"]) return base64Decode(node[field + "-data"].as<std::string>());
  if (node[field]) {
    std::string p = node[field].as<std::string>();
    if (!p.empty() && p[0] != '/') p = dir + "/" + p;
    return readFile(p);
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
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  try {
    YAML::Node root = YAML::Load(*text);
    if (!root["current-context"]) return bad(path, "no current-context");
    std::string ctxName = root["current-context"].as<std::string>();
    YAML::Node ctx = findNamed(root["contexts"], ctxName);
    if (!ctx || !ctx["context"]) return bad(path, "contexts: no context named " + ctxName);
    std::string clusterName = ctx["context"]["cluster"].as<std::string>("");
    std::string userName = ctx["context"]["user"].as<std::string>("");
    YAML::Node cluster = findNamed(root["clusters"], clusterName);
    if (!cluster || !cluster["cluster"]) return bad(path, "clusters: no cluster named " + clusterName);
    YAML::Node c = cluster["cluster"];
    Kubeconfig kc;
    std::string server = c["server"].as<std::string>("");
    if (server.rfind("https://", 0) != 0) return bad(path, "clusters[" + clusterName + "].server: expected https://HOST[:PORT], got \"" + server + "\"");
    std::string hostport = server.substr(8);
    if (size_t slash = hostport.find('/'); slash != std::string::npos) hostport.resize(slash);
    if (!hostport.empty() && hostport[0] == '[') {
      size_t close = hostport.find(']');
      if (close == std::string::npos) return bad(path, "clusters[" + clusterName + "].server: unterminated [");
      kc.host = hostport.substr(1, close - 1);
      if (close + 1 < hostport.size() && hostport[close + 1] == ':') kc.port = static_cast<uint16_t>(std::stoi(hostport.substr(close + 2)));
    } else if (size_t colon = hostport.rfind(':'); colon != std::string::npos) {
      kc.host = hostport.substr(0, colon);
      kc.port = static_cast<uint16_t>(std::stoi(hostport.substr(colon + 1)));
    } else {
      kc.host = hostport;
    }
    auto ca = material(c, "certificate-authority", dir);
    if (!ca) return bad(path, "clusters[" + clusterName + "].certificate-authority: " + ca.error().message);
    kc.caPem = *ca;
    kc.insecureSkipVerify = c["insecure-skip-tls-verify"].as<bool>(false);
    YAML::Node user = findNamed(root["users"], userName);
    if (user && user["user"]) {
      YAML::Node u = user["user"];
      kc.token = u["token"].as<std::string>("");
      if (kc.token.empty() && u["tokenFile"]) {
        auto t = readFile(u["tokenFile"].as<std::string>());
        if (!t) return bad(path, "users[" + userName + "].tokenFile: " + t.error().message);
        kc.token = *t;
        while (!kc.token.empty() && (kc.token.back() == '\n' || kc.token.back() == '\r')) kc.token.pop_back();
      }
      auto cert = material(u, "client-certificate", dir);
      if (!cert) return bad(path, "users[" + userName + "].client-certificate: " + cert.error().message);
      auto key = material(u, "client-key", dir);
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
