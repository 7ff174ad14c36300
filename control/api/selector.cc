#include "control/api/selector.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "control/api/names.h"

namespace sluice::api {
namespace {

// Tokens of the label selector grammar (labels/selector.go's lexer).
enum class Tok : uint8_t { kEnd, kIdent, kNot, kNotEquals, kEquals, kDoubleEquals, kIn, kNotIn, kGt, kLt, kOpen, kClose, kComma };

struct Token {
  Tok type = Tok::kEnd;
  std::string text;
};

bool special(char c) { return c == '!' || c == '=' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<'; }

std::vector<Token> lex(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (special(c)) {
      if (c == '!' && i + 1 < s.size() && s[i + 1] == '=') {
        out.push_back({Tok::kNotEquals, "!="});
        i += 2;
      } else if (c == '=' && i + 1 < s.size() && s[i + 1] == '=') {
        out.push_back({Tok::kDoubleEquals, "=="});
        i += 2;
      } else {
        Tok t = c == '!' ? Tok::kNot : c == '=' ? Tok::kEquals : c == '(' ? Tok::kOpen
              : c == ')' ? Tok::kClose : c == ',' ? Tok::kComma : c == '>' ? Tok::kGt : Tok::kLt;
        out.push_back({t, std::string(1, c)});
        ++i;
      }
      continue;
    }
    size_t j = i;
    while (j < s.size() && !special(s[j]) && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    std::string word(s.substr(i, j - i));
    if (word == "in") out.push_back({Tok::kIn, word});
    else if (word == "notin") out.push_back({Tok::kNotIn, word});
    else out.push_back({Tok::kIdent, word});
    i = j;
  }
  out.push_back({Tok::kEnd, ""});
  return out;
}

Error parseError(std::string_view what) {
  return Error::invalid("unable to parse requirement: " + std::string(what));
}

Result<void> checkKey(const std::string& key) {
  auto p = checkQualifiedName(key);
  if (!p.empty()) return parseError("<nil>: Invalid value: \"" + key + "\": " + p[0]);
  return okResult();
}

Result<void> checkValue(const std::string& key, const std::string& value) {
  auto p = checkLabelValue(value);
  if (!p.empty()) {
    return parseError("values[0][" + key + "]: Invalid value: \"" + value + "\": " + p[0]);
  }
  return okResult();
}

void normalize(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

Result<Selector> Selector::parse(std::string_view text) {
  Selector sel;
  auto toks = lex(text);
  size_t i = 0;
  if (toks[0].type == Tok::kEnd) return sel;
  while (true) {
    Requirement req;
    bool negated = false;
    if (toks[i].type == Tok::kNot) {
      negated = true;
      ++i;
    }
    if (toks[i].type != Tok::kIdent) {
      return parseError("found '" + toks[i].text + "', expected: identifier");
    }
    req.key = toks[i++].text;
    if (auto ok = checkKey(req.key); !ok) return ok.error();
    if (negated) {
      req.op = Op::kDoesNotExist;
    } else {
      switch (toks[i].type) {
        case Tok::kEnd:
        case Tok::kComma: req.op = Op::kExists; break;
        case Tok::kEquals:
        case Tok::kDoubleEquals:
        case Tok::kNotEquals:
        case Tok::kGt:
        case Tok::kLt: {
          Tok op = toks[i++].type;
          req.op = op == Tok::kNotEquals ? Op::kNotEquals : op == Tok::kGt ? Op::kGt
                 : op == Tok::kLt ? Op::kLt : Op::kEquals;
          std::string value;
          if (toks[i].type == Tok::kIdent) value = toks[i++].text;
          else if (toks[i].type != Tok::kEnd && toks[i].type != Tok::kComma) {
            return parseError("found '" + toks[i].text + "', expected: identifier");
          }
          if (req.op == Op::kGt || req.op == Op::kLt) {
            char* end = nullptr;
            std::strtoll(value.c_str(), &end, 10);
            if (value.empty() || *end != '\0') {
              return parseError("for 'Gt', 'Lt' operators, the value must be an integer");
            }
          } else if (auto ok = checkValue(req.key, value); !ok) {
            return ok.error();
          }
          req.values.push_back(value);
          break;
        }
        case Tok::kIn:
        case Tok::kNotIn: {
          req.op = toks[i++].type == Tok::kIn ? Op::kIn : Op::kNotIn;
          if (toks[i].type != Tok::kOpen) return parseError("found '" + toks[i].text + "', expected: '('");
          ++i;
          while (true) {
            std::string value;
            if (toks[i].type == Tok::kIdent) value = toks[i++].text;
            if (auto ok = checkValue(req.key, value); !ok) return ok.error();
            req.values.push_back(value);
            if (toks[i].type == Tok::kComma) {
              ++i;
              continue;
            }
            if (toks[i].type == Tok::kClose) {
              ++i;
              break;
            }
            return parseError("found '" + toks[i].text + "', expected: ',' or ')'");
          }
          break;
        }
        default:
          return parseError("found '" + toks[i].text +
                            "', expected: in, notin, =, ==, !=, gt, lt");
      }
    }
    normalize(req.values);
    sel.requirements_.push_back(std::move(req));
    if (toks[i].type == Tok::kEnd) break;
    if (toks[i].type != Tok::kComma) return parseError("found '" + toks[i].text + "', expected: ','");
    ++i;
  }
  std::stable_sort(sel.requirements_.begin(), sel.requirements_.end(),
                   [](const Requirement& a, const Requirement& b) { return a.key < b.key; });
  return sel;
}

Result<Selector> Selector::fromProto(const LabelSelector& proto) {
  Selector sel;
  for (const auto& [k, v] : proto.matchlabels()) {
    if (auto ok = checkKey(k); !ok) return ok.error();
    if (auto ok = checkValue(k, v); !ok) return ok.error();
    sel.requirements_.push_back({k, Op::kEquals, {v}});
  }
  for (const auto& e : proto.matchexpressions()) {
    Requirement r;
    r.key = e.key();
    if (auto ok = checkKey(r.key); !ok) return ok.error();
    r.values.assign(e.values().begin(), e.values().end());
    const std::string& op = e.operator_();
    if (op == "In") r.op = Op::kIn;
    else if (op == "NotIn") r.op = Op::kNotIn;
    else if (op == "Exists") r.op = Op::kExists;
    else if (op == "DoesNotExist") r.op = Op::kDoesNotExist;
    else return Error::invalid("\"" + op + "\" is not a valid label selector operator");
    if ((r.op == Op::kIn || r.op == Op::kNotIn) && r.values.empty()) {
      return Error::invalid("for 'in', 'notin' operators, values set can't be empty");
    }
    if ((r.op == Op::kExists || r.op == Op::kDoesNotExist) && !r.values.empty()) {
      return Error::invalid("values set must be empty for exists and does not exist");
    }
    normalize(r.values);
    sel.requirements_.push_back(std::move(r));
  }
  std::stable_sort(sel.requirements_.begin(), sel.requirements_.end(),
                   [](const Requirement& a, const Requirement& b) { return a.key < b.key; });
  return sel;
}

bool Selector::matchesLookup(
    const std::function<const std::string*(const std::string&)>& lookup) const {
  for (const auto& r : requirements_) {
    const std::string* v = lookup(r.key);
    auto in = [&] { return v != nullptr && std::binary_search(r.values.begin(), r.values.end(), *v); };
    switch (r.op) {
      case Op::kEquals:
      case Op::kIn:
        if (!in()) return false;
        break;
      case Op::kNotEquals:
      case Op::kNotIn:
        if (in()) return false;
        break;
      case Op::kExists:
        if (v == nullptr) return false;
        break;
      case Op::kDoesNotExist:
        if (v != nullptr) return false;
        break;
      case Op::kGt:
      case Op::kLt: {
        if (v == nullptr) return false;
        char* end = nullptr;
        long long have = std::strtoll(v->c_str(), &end, 10);
        if (v->empty() || *end != '\0') return false;
        long long want = std::strtoll(r.values[0].c_str(), nullptr, 10);
        if (r.op == Op::kGt ? !(have > want) : !(have < want)) return false;
        break;
      }
    }
  }
  return true;
}

std::string Selector::toString() const {
  std::string out;
  for (const auto& r : requirements_) {
    if (!out.empty()) out += ',';
    auto joined = [&] {
      std::string s;
      for (size_t i = 0; i < r.values.size(); ++i) s += (i ? "," : "") + r.values[i];
      return s;
    };
    switch (r.op) {
      case Op::kEquals: out += r.key + "=" + r.values[0]; break;
      case Op::kNotEquals: out += r.key + "!=" + r.values[0]; break;
      case Op::kIn: out += r.key + " in (" + joined() + ")"; break;
      case Op::kNotIn: out += r.key + " notin (" + joined() + ")"; break;
      case Op::kExists: out += r.key; break;
      case Op::kDoesNotExist: out += "!" + r.key; break;
      case Op::kGt: out += r.key + ">" + r.values[0]; break;
      case Op::kLt: out += r.key + "<" + r.values[0]; break;
    }
  }
  return out;
}

Result<FieldSelector> FieldSelector::parse(std::string_view text) {
  FieldSelector sel;
  // Split on unescaped commas; values may escape '\', ',', '=' and '!'.
  std::vector<std::string> terms;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      cur += c;
      cur += text[++i];
    } else if (c == ',') {
      terms.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty() || !terms.empty()) terms.push_back(cur);
  for (const auto& t : terms) {
    if (t.empty()) continue;
    Requirement r;
    size_t pos = t.find("!=");
    size_t opLen = 2;
    if (pos == std::string::npos) {
      pos = t.find("==");
      if (pos == std::string::npos) {
        pos = t.find('=');
        opLen = 1;
      }
    } else {
      r.equals = false;
    }
    if (pos == std::string::npos) {
      return Error::invalid("invalid selector: '" + std::string(text) + "'; can't understand '" + t + "'");
    }
    r.field = t.substr(0, pos);
    std::string raw = t.substr(pos + opLen);
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
      r.value += raw[i];
    }
    // Trim spaces around the field name, as the fields parser tolerates.
    while (!r.field.empty() && std::isspace(static_cast<unsigned char>(r.field.back()))) r.field.pop_back();
    while (!r.field.empty() && std::isspace(static_cast<unsigned char>(r.field.front()))) r.field.erase(0, 1);
    sel.requirements_.push_back(std::move(r));
  }
  return sel;
}

bool FieldSelector::matches(
    const std::function<std::optional<std::string>(std::string_view)>& value) const {
  for (const auto& r : requirements_) {
    auto v = value(r.field);
    std::string have = v.value_or("");
    if ((have == r.value) != r.equals) return false;
  }
  return true;
}

std::optional<std::string> FieldSelector::unsupportedField(
    const std::vector<std::string>& supported) const {
  for (const auto& r : requirements_) {
    if (std::find(supported.begin(), supported.end(), r.field) == supported.end()) return r.field;
  }
  return std::nullopt;
}

std::optional<std::string> FieldSelector::exactValue(std::string_view field) const {
  for (const auto& r : requirements_) {
    if (r.field == field && r.equals) return r.value;
  }
  return std::nullopt;
}

}  // namespace sluice::api
