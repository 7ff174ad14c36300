// Kubernetes' name and value syntax checks (k8s.io/apimachinery/pkg/util/
// validation). Each returns the list of problems in Kubernetes' own words,
// empty when the value is valid, so callers can put them in field errors.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::api {

using Problems = std::vector<std::string>;

Problems checkDns1123Label(std::string_view s);      // namespaces, container names
Problems checkDns1123Subdomain(std::string_view s);  // most object names
Problems checkDns1035Label(std::string_view s);      // Service names
Problems checkQualifiedName(std::string_view s);     // label and annotation keys
Problems checkLabelValue(std::string_view s);
Problems checkPortName(std::string_view s);          // IANA_SVC_NAME
Problems checkPortNumber(int64_t port);
bool isValidIp(std::string_view s);
bool isIpv4(std::string_view s);
bool isIpv6(std::string_view s);
// CIDR "10.0.0.0/8"; fills the family if non-null.
bool isValidCidr(std::string_view s);

// A name for generateName: prefix + 5 random [bcdfghjklmnpqrstvwxz2456789]
// characters (the alphabet Kubernetes uses to avoid words), prefix cut so
// the result stays within 63 characters.
std::string generateName(std::string_view prefix);

}  // namespace sluice::api
