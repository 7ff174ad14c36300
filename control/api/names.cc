#include "control/api/names.h"

#include <arpa/inet.h>

#include <cctype>
#include <random>

namespace sluice::api {
namespace {

constexpr std::string_view kDns1123LabelMsg =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
constexpr std::string_view kDns1123SubdomainMsg =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
constexpr std::string_view kDns1035LabelMsg =
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
constexpr std::string_view kQualifiedNameMsg =
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
constexpr std::string_view kQualifiedNameFullMsg =
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
    "subdomain prefix and '/' (e.g. 'example.com/MyName')";
constexpr std::string_view kLabelValueMsg =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',"
    "  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

bool lowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool isDns1123Label(std::string_view s) {
  if (s.empty() || !lowerAlnum(s.front()) || !lowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!lowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool isQualifiedPart(std::string_view s) {
  if (s.empty() || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

std::string maxLenMsg(size_t n) { return "must be no more than " + std::to_string(n) + " characters"; }

}  // namespace

Problems checkDns1123Label(std::string_view s) {
  Problems p;
  if (s.size() > 63) p.push_back(maxLenMsg(63));
  if (!isDns1123Label(s)) p.emplace_back(kDns1123LabelMsg);
  return p;
}

Problems checkDns1123Subdomain(std::string_view s) {
  Problems p;
  if (s.size() > 253) p.push_back(maxLenMsg(253));
  bool ok = !s.empty();
  size_t start = 0;
  while (ok && start <= s.size()) {
    size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (!isDns1123Label(part)) ok = false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (!ok) p.emplace_back(kDns1123SubdomainMsg);
  return p;
}

Problems checkDns1035Label(std::string_view s) {
  Problems p;
  if (s.size() > 63) p.push_back(maxLenMsg(63));
  if (!isDns1123Label(s) || !(s.front() >= 'a' && s.front() <= 'z')) p.emplace_back(kDns1035LabelMsg);
  return p;
}

Problems checkQualifiedName(std::string_view s) {
  Problems p;
  std::string_view name = s;
  size_t slash = s.find('/');
  if (slash != std::string_view::npos) {
    if (s.find('/', slash + 1) != std::string_view::npos) {
      p.emplace_back(kQualifiedNameFullMsg);
      return p;
    }
    std::string_view prefix = s.substr(0, slash);
    name = s.substr(slash + 1);
    if (prefix.empty()) {
      p.emplace_back("prefix part must be non-empty");
    } else {
      for (const auto& m : checkDns1123Subdomain(prefix)) p.push_back("prefix part " + m);
    }
  }
  if (name.empty()) {
    p.emplace_back("name part must be non-empty");
  } else if (name.size() > 63) {
    p.emplace_back("name part " + maxLenMsg(63));
  }
  if (!name.empty() && !isQualifiedPart(name)) p.emplace_back(kQualifiedNameMsg);
  return p;
}

Problems checkLabelValue(std::string_view s) {
  Problems p;
  if (s.size() > 63) p.push_back(maxLenMsg(63));
  if (!s.empty() && !isQualifiedPart(s)) p.emplace_back(kLabelValueMsg);
  return p;
}

Problems checkPortName(std::string_view s) {
  Problems p;
  if (s.size() > 15) p.emplace_back("must be no more than 15 characters");
  bool letter = false;
  bool chars = true;
  for (char c : s) {
    if (c >= 'a' && c <= 'z') letter = true;
    if (!lowerAlnum(c) && c != '-') chars = false;
  }
  if (!chars) p.emplace_back("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  if (s.find("--") != std::string_view::npos) p.emplace_back("must not contain consecutive hyphens");
  if (!letter) p.emplace_back("must contain at least one letter (a-z)");
  if (!s.empty() && (s.front() == '-' || s.back() == '-')) {
    p.emplace_back("must not begin or end with a hyphen");
  }
  return p;
}

Problems checkPortNumber(int64_t port) {
  if (port < 1 || port > 65535) return {"must be between 1 and 65535, inclusive"};
  return {};
}

bool isIpv4(std::string_view s) {
  in_addr a{};
  return inet_pton(AF_INET, std::string(s).c_str(), &a) == 1;
}

bool isIpv6(std::string_view s) {
  in6_addr a{};
  return inet_pton(AF_INET6, std::string(s).c_str(), &a) == 1;
}

bool isValidIp(std::string_view s) { return isIpv4(s) || isIpv6(s); }

bool isValidCidr(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view ip = s.substr(0, slash);
  std::string_view bits = s.substr(slash + 1);
  if (bits.empty() || bits.size() > 3) return false;
  int n = 0;
  for (char c : bits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    n = n * 10 + (c - '0');
  }
  if (isIpv4(ip)) return n <= 32;
  if (isIpv6(ip)) return n <= 128;
  return false;
}

std::string generateName(std::string_view prefix) {
  static constexpr std::string_view kAlphabet = "bcdfghjklmnpqrstvwxz2456789";
  constexpr size_t kSuffix = 5;
  constexpr size_t kMaxPrefix = 63 - kSuffix;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string name(prefix.substr(0, std::min(prefix.size(), kMaxPrefix)));
  std::uniform_int_distribution<size_t> pick(0, kAlphabet.size() - 1);
  for (size_t i = 0; i < kSuffix; ++i) name += kAlphabet[pick(rng)];
  return name;
}

}  // namespace sluice::api
