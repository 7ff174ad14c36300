#include "control/api/selector.h"

#include <gtest/gtest.h>

#include <map>

#include "tests/control/api/test_util.h"

namespace sluice::api {
namespace {

const std::map<std::string, std::string> kWeb = {{"app", "web"}, {"tier", "fe"}, {"version", "3"}};
const std::map<std::string, std::string> kDb = {{"app", "db"}, {"tier", "be"}};

bool matches(const std::string& text, const std::map<std::string, std::string>& labels) {
  auto s = Selector::parse(text);
  EXPECT_TRUE(s.ok()) << text << ": " << (s.ok() ? "" : s.error().message);
  return s.ok() && s->matches(labels);
}

// The kubectl -l forms: equality, inequality, set-based, existence.
TEST(SelectorTest, MatchesEqualityAndSetBased) {
  EXPECT_TRUE(matches("", kWeb));
  EXPECT_TRUE(matches("app=web", kWeb));
  EXPECT_TRUE(matches("app==web,tier=fe", kWeb));
  EXPECT_FALSE(matches("app=web,tier=be", kWeb));
  EXPECT_TRUE(matches("app!=db", kWeb));
  EXPECT_TRUE(matches("app!=db", {}));  // missing key: != matches
  EXPECT_TRUE(matches("tier in (fe, be)", kDb));
  EXPECT_TRUE(matches("tier notin (fe)", kDb));
  EXPECT_FALSE(matches("tier notin (fe)", kWeb));
  EXPECT_TRUE(matches("version", kWeb));
  EXPECT_FALSE(matches("version", kDb));
  EXPECT_TRUE(matches("!version", kDb));
  EXPECT_TRUE(matches("app in (web,db),!legacy,tier", kDb));
  EXPECT_TRUE(matches("version>2", kWeb));
  EXPECT_FALSE(matches("version<2", kWeb));
  EXPECT_TRUE(matches("example.com/team=", {{"example.com/team", ""}}));
}

TEST(SelectorTest, RejectsMalformed) {
  for (const char* bad : {"app=", "=web", "app in web", "app in (a", "app=we b", "a,,b", "in", "-bad=x", "x>y"}) {
    if (std::string(bad) == "app=") continue;  // an empty value is valid
    EXPECT_FALSE(Selector::parse(bad).ok()) << bad;
  }
}

// matchLabels + matchExpressions, and the canonical text Scale reports.
TEST(SelectorTest, FromProtoAndToString) {
  LabelSelector p;
  (*p.mutable_matchlabels())["app"] = "web";
  auto* e = p.add_matchexpressions();
  e->set_key("tier");
  e->set_operator_("In");
  e->add_values("fe");
  e->add_values("be");
  ASSIGN_OR_FAIL(Selector s, Selector::fromProto(p));
  EXPECT_TRUE(s.matches(kWeb));
  EXPECT_FALSE(s.matches(kDb));
  EXPECT_EQ(s.toString(), "app=web,tier in (be,fe)");
  e->set_operator_("Bogus");
  EXPECT_FALSE(Selector::fromProto(p).ok());
}

TEST(FieldSelectorTest, ParsesAndMatches) {
  ASSIGN_OR_FAIL(FieldSelector f, FieldSelector::parse("metadata.name=web,status.phase!=Failed,spec.nodeName=="));
  std::map<std::string, std::string> values = {{"metadata.name", "web"}, {"status.phase", "Running"}};
  auto lookup = [&](std::string_view k) -> std::optional<std::string> {
    auto it = values.find(std::string(k));
    return it == values.end() ? std::optional<std::string>("") : it->second;
  };
  EXPECT_TRUE(f.matches(lookup));
  values["status.phase"] = "Failed";
  EXPECT_FALSE(f.matches(lookup));
  EXPECT_EQ(f.exactValue("metadata.name"), "web");
  EXPECT_EQ(f.unsupportedField({"metadata.name", "status.phase"}), "spec.nodeName");
  EXPECT_FALSE(FieldSelector::parse("nonsense").ok());
}

}  // namespace
}  // namespace sluice::api
