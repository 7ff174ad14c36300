// Kubeconfig::parse on texts a user or a tool may hand the agent: every
// input is a value or an error naming the field, never an exception or a
// write past a buffer (run under ASan in CI).
#include "control/client/kubeconfig.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace sluice::client {
namespace {

// A kubeconfig with one context whose cluster and user bodies are given.
std::string config(const std::string& cluster, const std::string& user = "token: t") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
         "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
         "clusters: [{name: k, cluster: {" + cluster + "}}]\n"
         "users: [{name: u, user: {" + user + "}}]\n";
}

// Files a kubeconfig may name, by full path; anything else is missing.
Result<Kubeconfig> parse(const std::string& text, std::map<std::string, std::string> files = {}) {
  return Kubeconfig::parse(text, "/etc/sluice/kubeconfig", [files](const std::string& p) -> Result<std::string> {
    auto it = files.find(p);
    if (it == files.end()) return Error{ErrorCode::kNotFound, "cannot read " + p};
    return it->second;
  });
}

// The common case: host, port, inline CA and token.
TEST(KubeconfigTest, ReadsServerCaAndToken) {
  auto kc = parse(config("server: \"https://10.0.0.1:6443\", certificate-authority-data: UEVN"));
  ASSERT_TRUE(kc.ok()) << kc.error().message;
  EXPECT_EQ(kc->host, "10.0.0.1");
  EXPECT_EQ(kc->port, 6443);
  EXPECT_EQ(kc->caPem, "PEM");
  EXPECT_EQ(kc->token, "t");
  EXPECT_EQ(kc->url(), "https://10.0.0.1:6443");
}

// Issue 18 (found by the kubeconfig fuzzer): base64 without its '=' padding
// made Beast's decoder write up to two bytes past the buffer it had sized
// for padded input. Unpadded data now decodes like padded data; a length no
// encoder produces is an error.
TEST(KubeconfigTest, UnpaddedBase64DecodesWithinItsBuffer) {
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  // base64 of pem: 80 characters with one padding "=", tried with and without it.
  const std::string padded =
      "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
  for (const std::string& data : {padded, padded.substr(0, padded.size() - 1)}) {
    auto kc = parse(config("server: \"https://h\", certificate-authority-data: " + data));
    ASSERT_TRUE(kc.ok()) << kc.error().message;
    EXPECT_EQ(kc->caPem, pem);
  }
  auto one = parse(config("server: \"https://h\", certificate-authority-data: QUJDRA"));
  ASSERT_TRUE(one.ok()) << one.error().message;
  EXPECT_EQ(one->caPem, "ABCD");
  auto bad = parse(config("server: \"https://h\", certificate-authority-data: QUJDR"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("certificate-authority"), std::string::npos);
  auto junk = parse(config("server: \"https://h\", certificate-authority-data: \"QU*D\""));
  EXPECT_FALSE(junk.ok());
}

// Ports outside 1-65535 were cast to uint16_t (70000 became 4464, -1 became
// 65535) or threw from std::stoi: all are errors naming the server field.
TEST(KubeconfigTest, PortMustBeOneTo65535) {
  for (const char* server : {"https://h:70000", "https://h:0", "https://h:-1", "https://h:",
                             "https://h:80x", "https://[::1]:99999", "https://[::1]x",
                             "https://:6443"}) {
    SCOPED_TRACE(server);
    auto kc = parse(config(std::string("server: \"") + server + "\""));
    ASSERT_FALSE(kc.ok()) << kc->port;
    EXPECT_NE(kc.error().message.find("clusters[k].server"), std::string::npos)
        << kc.error().message;
  }
  auto v6 = parse(config("server: \"https://[fd00::1]:8443/prefix\""));
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->host, "fd00::1");
  EXPECT_EQ(v6->port, 8443);
  EXPECT_EQ(v6->url(), "https://[fd00::1]:8443");
}

// Relative certificate paths resolve against the kubeconfig's directory;
// tokenFile is read as given.
TEST(KubeconfigTest, NamedFilesAreReadThroughTheReader) {
  auto kc = parse(config("server: \"https://h\", certificate-authority: ca.crt",
                         "tokenFile: /var/run/token, client-certificate: /pki/c.crt, "
                         "client-key: k.key"),
                  {{"/etc/sluice/ca.crt", "CA"},
                   {"/var/run/token", "secret\n"},
                   {"/pki/c.crt", "CERT"},
                   {"/etc/sluice/k.key", "KEY"}});
  ASSERT_TRUE(kc.ok()) << kc.error().message;
  EXPECT_EQ(kc->caPem, "CA");
  EXPECT_EQ(kc->token, "secret");
  EXPECT_EQ(kc->clientCertPem, "CERT");
  EXPECT_EQ(kc->clientKeyPem, "KEY");
  auto missing = parse(config("server: \"https://h\", certificate-authority: nope.crt"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot read /etc/sluice/nope.crt"), std::string::npos);
}

// Wrong shapes are errors, not exceptions: a map where a string belongs, a
// list where a map belongs, YAML that does not parse.
TEST(KubeconfigTest, WrongShapesAreErrors) {
  for (const std::string& text :
       {std::string("current-context: {a: b}\n"), std::string("current-context: c\ncontexts: 3\n"),
        config("server: [1, 2]"), config("server: \"https://h\"", "token: {x: y}"),
        std::string("{{{"), std::string("current-context: c\ncontexts: [{name: c, context: []}]\n"),
        std::string("")}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(parse(text).ok());
  }
}

}  // namespace
}  // namespace sluice::client
