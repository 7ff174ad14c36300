#include "control/server/credentials.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "control/api/names.h"

namespace sluice::server {
namespace {

// Certificates outlive any realistic test or lab run; rotation is a later issue.
constexpr long kCaValiditySeconds = 10L * 365 * 24 * 3600;
constexpr long kServingValiditySeconds = 2L * 365 * 24 * 3600;
// Allow for clocks slightly behind the server's.
constexpr long kBackdateSeconds = 3600;
constexpr int kTokenBytes = 32;

struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Bio = std::unique_ptr<BIO, BioFree>;

Error sslError(std::string_view what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "unknown";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  return Error::internal(std::string(what) + ": " + buf);
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::notFound(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes through a temporary file created with `mode` already (never
// readable by others, even for a moment) and renamed into place.
Result<void> writeFile(const std::string& path, const std::string& data, mode_t mode) {
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());  // a leftover could have a wider mode
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Error::internal(tmp + ": cannot create: " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Error e = Error::internal(tmp + ": write failed: " + std::strerror(errno));
      ::close(fd);
      return e;
    }
    done += static_cast<size_t>(n);
  }
  // The umask may have narrowed `mode`; it never widens it.
  bool ok = ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) return Error::internal(path + ": cannot install");
  return okResult();
}

Result<Pkey> newKey() {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  if (k == nullptr) return sslError("generating EC key");
  return Pkey(k);
}

std::string keyPem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string certPem(X509* c) {
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), c);
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<Pkey> parseKey(const std::string& pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr);
  if (k == nullptr) return sslError("parsing key");
  return Pkey(k);
}

Result<Cert> parseCert(const std::string& pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509* c = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr);
  if (c == nullptr) return sslError("parsing certificate");
  return Cert(c);
}

bool addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// Signs a certificate for `key` with `signer` (itself when issuer is null).
Result<Cert> issue(EVP_PKEY* key, const std::string& commonName, X509* issuer, EVP_PKEY* signer,
                   bool isCa, long validity, const std::vector<std::string>& sans) {
  Cert c(X509_new());
  X509_set_version(c.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -kBackdateSeconds);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), validity);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("sluice"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(commonName.c_str()), -1, -1, 0);
  X509* iss = issuer != nullptr ? issuer : c.get();
  X509_set_issuer_name(c.get(), X509_get_subject_name(iss));
  bool ok = true;
  if (isCa) {
    ok = addExtension(c.get(), iss, NID_basic_constraints, "critical,CA:TRUE") &&
         addExtension(c.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") &&
         addExtension(c.get(), iss, NID_subject_key_identifier, "hash");
  } else {
    std::string san;
    for (const auto& s : sans) {
      if (!san.empty()) san += ",";
      san += (api::isValidIp(s) ? "IP:" : "DNS:") + s;
    }
    ok = addExtension(c.get(), iss, NID_basic_constraints, "critical,CA:FALSE") &&
         addExtension(c.get(), iss, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
         addExtension(c.get(), iss, NID_ext_key_usage, "serverAuth") &&
         addExtension(c.get(), iss, NID_authority_key_identifier, "keyid:always") &&
         (san.empty() || addExtension(c.get(), iss, NID_subject_alt_name, san));
  }
  if (!ok) return sslError("adding certificate extension");
  if (X509_sign(c.get(), signer, EVP_sha256()) == 0) return sslError("signing certificate");
  return c;
}

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}

}  // namespace

Result<Credentials> loadOrCreateCredentials(const std::string& dataDir, const std::vector<std::string>& sans) {
  Credentials creds;
  const std::string caCrt = dataDir + "/ca.crt";
  const std::string caKey = dataDir + "/ca.key";
  Pkey ca;
  Cert caCert;
  auto existingKey = readFile(caKey);
  auto existingCrt = readFile(caCrt);
  if (existingKey && existingCrt) {
    auto k = parseKey(*existingKey);
    if (!k) return k.error().wrap(caKey);
    auto c = parseCert(*existingCrt);
    if (!c) return c.error().wrap(caCrt);
    ca = std::move(*k);
    caCert = std::move(*c);
    creds.caCertPem = *existingCrt;
  } else {
    auto k = newKey();
    if (!k) return k.error();
    ca = std::move(*k);
    auto c = issue(ca.get(), "sluice-ca", nullptr, ca.get(), true, kCaValiditySeconds, {});
    if (!c) return c.error();
    caCert = std::move(*c);
    creds.caCertPem = certPem(caCert.get());
    if (auto w = writeFile(caKey, keyPem(ca.get()), 0600); !w) return w.error();
    if (auto w = writeFile(caCrt, creds.caCertPem, 0600); !w) return w.error();
  }

  auto servingKey = newKey();
  if (!servingKey) return servingKey.error();
  std::vector<std::string> names = {"127.0.0.1", "::1", "localhost", "kubernetes", "kubernetes.default",
                                    "kubernetes.default.svc"};
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') names.emplace_back(host);
  for (const auto& s : sans) {
    if (!s.empty() && s != "0.0.0.0" && s != "::" && std::find(names.begin(), names.end(), s) == names.end()) {
      names.push_back(s);
    }
  }
  auto serving = issue(servingKey->get(), "sluice-apiserver", caCert.get(), ca.get(), false,
                       kServingValiditySeconds, names);
  if (!serving) return serving.error();
  creds.certPem = certPem(serving->get());
  creds.keyPem = keyPem(servingKey->get());
  if (auto w = writeFile(dataDir + "/server.crt", creds.certPem, 0600); !w) return w.error();
  if (auto w = writeFile(dataDir + "/server.key", creds.keyPem, 0600); !w) return w.error();

  // Random secrets kept across restarts: the admin token and the key node
  // tokens derive from.
  auto secret = [&](const std::string& name, std::string& out) -> Result<void> {
    const std::string path = dataDir + "/" + name;
    auto existing = readFile(path);
    if (existing && !existing->empty()) {
      out = *existing;
      while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
      return okResult();
    }
    unsigned char raw[kTokenBytes];
    if (RAND_bytes(raw, sizeof raw) != 1) return sslError("generating " + name);
    out = hex(raw, sizeof raw);
    return writeFile(path, out + "\n", 0600);
  };
  if (auto r = secret("token", creds.token); !r) return r.error();
  if (auto r = secret("node-secret", creds.nodeSecret); !r) return r.error();
  return creds;
}

std::string kubeconfigYaml(const std::string& serverUrl, const std::string& caCertPem, const std::string& token,
                           const std::string& user) {
  return "apiVersion: v1\n"
         "kind: Config\n"
         "clusters:\n"
         "- name: sluice\n"
         "  cluster:\n"
         "    server: " + serverUrl + "\n"
         "    certificate-authority-data: " + base64Encode(caCertPem) + "\n"
         "users:\n"
         "- name: " + user + "\n"
         "  user:\n"
         "    token: " + token + "\n"
         "contexts:\n"
         "- name: sluice\n"
         "  context:\n"
         "    cluster: sluice\n"
         "    user: " + user + "\n"
         "    namespace: default\n"
         "current-context: sluice\n";
}

Result<void> writeKubeconfig(const std::string& path, const std::string& serverUrl,
                             const std::string& caCertPem, const std::string& token) {
  return writeFile(path, kubeconfigYaml(serverUrl, caCertPem, token, "sluice-admin"), 0600);
}

std::string base64Encode(std::string_view data) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  while (i + 2 < data.size()) {
    uint32_t v = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
    i += 3;
  }
  if (i + 1 == data.size()) {
    uint32_t v = static_cast<uint8_t>(data[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == data.size()) {
    uint32_t v = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> base64Decode(std::string_view data) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : data) {
    if (c == '=') break;
    int v = value(c);
    if (v < 0) return Error::invalid("invalid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace sluice::server
