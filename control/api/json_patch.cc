// RFC 6902 JSON patch (application/json-patch+json) with RFC 6901 pointers.
//
// Our own applier rather than nlohmann's json::patch(): that one asserts
// (aborting the process, or undefined behaviour under NDEBUG) when an
// operation's parent is a string or number (`add /kind/x`), and reports
// everything else by exception. Here every parent's type is checked and
// every failure is a value naming the operation: its index, op and path.
#include <algorithm>

#include "control/api/patch.h"

namespace sluice::api {
namespace {

// kube-apiserver refuses longer patches (maxJSONPatchOperations).
constexpr size_t kMaxOperations = 10'000;

struct Pointer {
  std::vector<std::string> tokens;  // unescaped reference tokens
};

// RFC 6901: "" is the whole document, else "/"-separated tokens with "~1"
// for '/' and "~0" for '~'.
Result<Pointer> parsePointer(const std::string& text) {
  Pointer p;
  if (text.empty()) return p;
  if (text[0] != '/')
    return Error::invalid("JSON pointer \"" + text + "\" must be empty or start with '/'");
  std::string token;
  for (size_t i = 1; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '/') {
      p.tokens.push_back(std::move(token));
      token.clear();
      continue;
    }
    if (text[i] != '~') {
      token += text[i];
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '0') {
      token += '~';
    } else if (i + 1 < text.size() && text[i + 1] == '1') {
      token += '/';
    } else {
      return Error::invalid("JSON pointer \"" + text + "\": '~' must be followed by '0' or '1'");
    }
    ++i;
  }
  return p;
}

std::string typeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::null:
      return "null";
    default:
      return "a number";
  }
}

// An array index token: "0" or digits without a leading zero, below `limit`.
std::optional<size_t> arrayIndex(const std::string& token, size_t limit) {
  if (token.empty() || token.size() > 19) return std::nullopt;
  if (token.size() > 1 && token[0] == '0') return std::nullopt;
  size_t v = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  if (v >= limit) return std::nullopt;
  return v;
}

// Failures of one operation, prefixed with where it is in the patch.
class Op {
 public:
  Op(size_t index, std::string op, std::string path)
      : index_(index), op_(std::move(op)), path_(std::move(path)) {}

  Error malformed(const std::string& why) const { return Error::invalid(prefix() + why); }
  Error doesNotApply(const std::string& why) const {
    return Error{ErrorCode::kFailedPrecondition, prefix() + why};
  }

 private:
  std::string prefix() const {
    std::string s = "json patch operation " + std::to_string(index_);
    if (!op_.empty()) s += " (" + op_ + (path_.empty() ? "" : " " + path_) + ")";
    return s + ": ";
  }
  size_t index_;
  std::string op_;
  std::string path_;
};

// The container holding the last token of `p` (the document itself for a
// one-token pointer); an error if any step is missing or not a container.
Result<Json*> parentOf(Json& doc, const Pointer& p, const std::string& text, const Op& op) {
  Json* cur = &doc;
  std::string walked;
  for (size_t i = 0; i + 1 < p.tokens.size(); ++i) {
    const std::string& t = p.tokens[i];
    if (cur->is_object()) {
      auto it = cur->find(t);
      if (it == cur->end())
        return op.doesNotApply("path " + text + ": " + walked + "/" + t + " does not exist");
      cur = &*it;
    } else if (cur->is_array()) {
      auto idx = arrayIndex(t, cur->size());
      if (!idx) {
        return op.doesNotApply("path " + text + ": \"" + t + "\" is not an index of the array at " +
                               (walked.empty() ? "/" : walked));
      }
      cur = &(*cur)[*idx];
    } else {
      return op.doesNotApply("path " + text + ": " + (walked.empty() ? "the document" : walked) +
                             " is " + typeName(*cur) + ", not an object or array");
    }
    walked += "/" + t;
  }
  if (!cur->is_object() && !cur->is_array()) {
    return op.doesNotApply("path " + text + ": " + (walked.empty() ? "the document" : walked) +
                           " is " + typeName(*cur) + ", not an object or array");
  }
  return cur;
}

// The value `p` names, or an error if it does not exist.
Result<Json*> find(Json& doc, const Pointer& p, const std::string& text, const Op& op) {
  if (p.tokens.empty()) return &doc;
  auto parent = parentOf(doc, p, text, op);
  if (!parent) return parent.error();
  Json& c = **parent;
  const std::string& last = p.tokens.back();
  if (c.is_object()) {
    auto it = c.find(last);
    if (it == c.end()) return op.doesNotApply("path " + text + " does not exist");
    return &*it;
  }
  auto idx = arrayIndex(last, c.size());
  if (!idx)
    return op.doesNotApply("path " + text + ": \"" + last + "\" is not an index of an array of " +
                           std::to_string(c.size()));
  return &c[*idx];
}

Result<void> add(Json& doc, const Pointer& p, const std::string& text, Json value, const Op& op) {
  if (p.tokens.empty()) {
    doc = std::move(value);
    return okResult();
  }
  auto parent = parentOf(doc, p, text, op);
  if (!parent) return parent.error();
  Json& c = **parent;
  const std::string& last = p.tokens.back();
  if (c.is_object()) {
    c[last] = std::move(value);
    return okResult();
  }
  if (last == "-") {
    c.push_back(std::move(value));
    return okResult();
  }
  auto idx = arrayIndex(last, c.size() + 1);
  if (!idx)
    return op.doesNotApply("path " + text + ": \"" + last +
                           "\" is not an insert position in an array of " +
                           std::to_string(c.size()));
  c.insert(c.begin() + static_cast<std::ptrdiff_t>(*idx), std::move(value));
  return okResult();
}

Result<Json> remove(Json& doc, const Pointer& p, const std::string& text, const Op& op) {
  if (p.tokens.empty()) return op.doesNotApply("the whole document cannot be removed");
  auto parent = parentOf(doc, p, text, op);
  if (!parent) return parent.error();
  Json& c = **parent;
  const std::string& last = p.tokens.back();
  if (c.is_object()) {
    auto it = c.find(last);
    if (it == c.end()) return op.doesNotApply("path " + text + " does not exist");
    Json removed = std::move(*it);
    c.erase(it);
    return removed;
  }
  auto idx = arrayIndex(last, c.size());
  if (!idx)
    return op.doesNotApply("path " + text + ": \"" + last + "\" is not an index of an array of " +
                           std::to_string(c.size()));
  Json removed = std::move(c[*idx]);
  c.erase(c.begin() + static_cast<std::ptrdiff_t>(*idx));
  return removed;
}

// A string member of an operation, or the error for its absence.
Result<std::string> stringMember(const Json& operation, const char* name, const Op& op) {
  auto it = operation.find(name);
  if (it == operation.end()) return op.malformed(std::string("missing \"") + name + "\"");
  if (!it->is_string()) return op.malformed(std::string("\"") + name + "\" must be a string");
  return it->get<std::string>();
}

}  // namespace

Result<Json> applyJsonPatch(const Json& target, const Json& patch) {
  if (!patch.is_array()) return Error::invalid("json patch must be a JSON array of operations");
  if (patch.size() > kMaxOperations) {
    return Error{ErrorCode::kResourceExhausted,
                 "The allowed maximum operations in a JSON patch is " +
                     std::to_string(kMaxOperations) + ", got " + std::to_string(patch.size())};
  }
  Json doc = target;
  for (size_t i = 0; i < patch.size(); ++i) {
    const Json& operation = patch[i];
    if (!operation.is_object())
      return Error::invalid("json patch operation " + std::to_string(i) + " is not an object");
    Op named(i, "", "");
    auto opName = stringMember(operation, "op", named);
    if (!opName) return opName.error();
    auto pathText = stringMember(operation, "path", Op(i, *opName, ""));
    if (!pathText) return pathText.error();
    Op op(i, *opName, *pathText);
    auto path = parsePointer(*pathText);
    if (!path) return op.malformed(path.error().message);
    auto value = [&]() -> Result<Json> {
      auto it = operation.find("value");
      if (it == operation.end()) return op.malformed("missing \"value\"");
      return *it;
    };
    auto from = [&]() -> Result<std::pair<Pointer, std::string>> {
      auto text = stringMember(operation, "from", op);
      if (!text) return text.error();
      auto p = parsePointer(*text);
      if (!p) return op.malformed(p.error().message);
      return std::make_pair(std::move(*p), *text);
    };

    Result<void> done = okResult();
    if (*opName == "add") {
      auto v = value();
      if (!v) return v.error();
      done = add(doc, *path, *pathText, std::move(*v), op);
    } else if (*opName == "remove") {
      auto r = remove(doc, *path, *pathText, op);
      if (!r) done = r.error();
    } else if (*opName == "replace") {
      auto v = value();
      if (!v) return v.error();
      auto at = find(doc, *path, *pathText, op);
      if (!at) return at.error();
      **at = std::move(*v);
    } else if (*opName == "test") {
      auto v = value();
      if (!v) return v.error();
      auto at = find(doc, *path, *pathText, op);
      if (!at) return at.error();
      if (**at != *v) return op.doesNotApply("test failed: the value differs");
    } else if (*opName == "move" || *opName == "copy") {
      auto f = from();
      if (!f) return f.error();
      const auto& [fromPtr, fromText] = *f;
      if (*opName == "move") {
        // A value cannot move into itself (RFC 6902 4.4).
        bool intoSelf =
            fromPtr.tokens.size() < path->tokens.size() &&
            std::equal(fromPtr.tokens.begin(), fromPtr.tokens.end(), path->tokens.begin());
        if (intoSelf)
          return op.doesNotApply("cannot move " + fromText + " into its own child " + *pathText);
        if (fromText == *pathText) continue;
        auto moved = remove(doc, fromPtr, fromText, op);
        if (!moved) return moved.error();
        done = add(doc, *path, *pathText, std::move(*moved), op);
      } else {
        auto at = find(doc, fromPtr, fromText, op);
        if (!at) return at.error();
        Json copy = **at;
        done = add(doc, *path, *pathText, std::move(copy), op);
      }
    } else {
      return op.malformed("unknown op \"" + *opName +
                          "\" (add, remove, replace, move, copy, test)");
    }
    if (!done) return done.error();
  }
  return doc;
}

}  // namespace sluice::api
