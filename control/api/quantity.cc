#include "control/api/quantity.h"

#include <array>
#include <cctype>

namespace sluice::api {
namespace {

constexpr std::string_view kQuantityError =
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

// Beyond this many significant digits the value cannot be held in nanos.
constexpr int kMaxDigits = 36;

Int128 pow10(int e) {
  Int128 v = 1;
  for (int i = 0; i < e; ++i) v *= 10;
  return v;
}

std::string toDecimal(Int128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  if (neg) v = -v;
  std::string s;
  while (v > 0) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  if (neg) s.push_back('-');
  return {s.rbegin(), s.rend()};
}

struct DecimalSuffix {
  std::string_view suffix;
  int exp10;
};
constexpr std::array<DecimalSuffix, 10> kDecimalSuffixes{{{"n", -9}, {"u", -6}, {"m", -3},
                                                          {"", 0},   {"k", 3},  {"M", 6},
                                                          {"G", 9},  {"T", 12}, {"P", 15},
                                                          {"E", 18}}};
constexpr std::array<std::string_view, 7> kBinarySuffixes{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};

}  // namespace

Result<ParsedQuantity> parseQuantity(std::string_view text) {
  ParsedQuantity q;
  size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    negative = text[i] == '-';
    ++i;
  }
  // Mantissa digits, remembering how many came after the decimal point.
  Int128 mantissa = 0;
  int fractionDigits = 0;
  int digits = 0;
  bool seenDot = false;
  bool seenDigit = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.') {
      if (seenDot) return Error::invalid(std::string(kQuantityError));
      seenDot = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    seenDigit = true;
    if (digits == 0 && c == '0') {
      if (seenDot) ++fractionDigits;
      continue;  // leading zeros carry no precision
    }
    if (digits >= kMaxDigits) {
      // Further digits only matter for rounding up, as Kubernetes does.
      if (seenDot && c != '0') mantissa += 1;
      if (!seenDot) return Error::invalid("quantity too large: " + std::string(text));
      continue;
    }
    mantissa = mantissa * 10 + (c - '0');
    ++digits;
    if (seenDot) ++fractionDigits;
  }
  if (!seenDigit) return Error::invalid(std::string(kQuantityError));

  std::string_view suffix = text.substr(i);
  int exp10 = 0;
  int exp2 = 0;
  bool found = false;
  for (size_t b = 1; b < kBinarySuffixes.size(); ++b) {
    if (suffix == kBinarySuffixes[b]) {
      exp2 = static_cast<int>(b) * 10;
      q.format = ParsedQuantity::Format::kBinarySI;
      found = true;
    }
  }
  if (!found) {
    for (const auto& d : kDecimalSuffixes) {
      if (suffix == d.suffix) {
        exp10 = d.exp10;
        q.format = ParsedQuantity::Format::kDecimalSI;
        found = true;
      }
    }
  }
  if (!found && suffix.size() >= 2 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    size_t j = 1;
    bool expNeg = false;
    if (suffix[j] == '+' || suffix[j] == '-') {
      expNeg = suffix[j] == '-';
      ++j;
    }
    if (j < suffix.size()) {
      int e = 0;
      found = true;
      for (; j < suffix.size(); ++j) {
        if (!std::isdigit(static_cast<unsigned char>(suffix[j])) || e > 1000) {
          found = false;
          break;
        }
        e = e * 10 + (suffix[j] - '0');
      }
      exp10 = expNeg ? -e : e;
      q.format = ParsedQuantity::Format::kDecimalExponent;
    }
  }
  if (!found) return Error::invalid(std::string(kQuantityError));

  // nanos = mantissa * 10^(exp10 - fractionDigits + 9) * 2^exp2, rounded up.
  int scale = exp10 - fractionDigits + 9;
  Int128 nanos = mantissa;
  if (scale >= 0) {
    if (scale > 36 || digits + scale > 37) return Error::invalid("quantity too large: " + std::string(text));
    nanos *= pow10(scale);
  } else {
    Int128 div = -scale > 38 ? 0 : pow10(-scale);
    if (div == 0) {
      nanos = nanos > 0 ? 1 : 0;
    } else {
      Int128 rounded = nanos / div;
      if (nanos % div != 0) rounded += 1;
      nanos = rounded;
    }
  }
  for (int b = 0; b < exp2; ++b) {
    if (nanos > (static_cast<Int128>(1) << 120)) return Error::invalid("quantity too large: " + std::string(text));
    nanos *= 2;
  }
  q.nanos = negative ? -nanos : nanos;
  return q;
}

std::string ParsedQuantity::canonical() const {
  if (nanos == 0) return "0";
  const Int128 kUnit = pow10(9);
  bool neg = nanos < 0;
  Int128 abs = neg ? -nanos : nanos;
  std::string sign = neg ? "-" : "";
  if (format == Format::kBinarySI && abs % kUnit == 0 && abs / kUnit >= 1024) {
    Int128 units = abs / kUnit;
    size_t b = 0;
    while (b + 1 < kBinarySuffixes.size() && units % 1024 == 0) {
      units /= 1024;
      ++b;
    }
    return sign + toDecimal(units) + std::string(kBinarySuffixes[b]);
  }
  // Decimal: the largest multiple-of-three exponent that divides exactly.
  int best = -9;
  for (int e = 18; e >= -9; e -= 3) {
    if (abs % pow10(e + 9) == 0) {
      best = e;
      break;
    }
  }
  Int128 v = abs / pow10(best + 9);
  if (format == Format::kDecimalExponent) {
    return sign + toDecimal(v) + (best == 0 ? "" : "e" + std::to_string(best));
  }
  for (const auto& d : kDecimalSuffixes) {
    if (d.exp10 == best) return sign + toDecimal(v) + std::string(d.suffix);
  }
  return sign + toDecimal(v);
}

int64_t ParsedQuantity::milliValue() const {
  const Int128 kMicro = 1'000'000;
  Int128 m = nanos / kMicro;
  if (nanos % kMicro > 0) m += 1;
  return static_cast<int64_t>(m);
}

}  // namespace sluice::api
