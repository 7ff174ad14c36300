#include "ipvs/nft_table.h"

#include <nftables/libnftables.h>

#include <algorithm>
#include <cstdio>

namespace sluice::ipvs {

namespace {

std::string protoName(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kUdp:
      return "udp";
    case Protocol::kSctp:
      return "sctp";
    default:
      return std::to_string(static_cast<int>(p));
  }
}

const char* fam(const IpAddress& a) { return a.isV4() ? "4" : "6"; }

// Sets, their types, then chains, in declaration order. Sets are "add"ed
// (kept with their elements when they exist); chains are flushed and their
// rules written again, all in one transaction.
std::string schema(const std::string& t) {
  std::string s = "add table inet " + t + "\n";
  for (const char* f : {"4", "6"}) {
    const std::string addr = f[0] == '4' ? "ipv4_addr" : "ipv6_addr";
    const std::string key = addr + " . inet_proto . inet_service";
    s += "add set inet " + t + " masq" + f + " { type " + key + "; }\n";
    s += "add set inet " + t + " refuse" + f + " { type " + key + "; }\n";
    s += "add set inet " + t + " lbrestrict" + f + " { type " + key + "; }\n";
    // No protocol in the interval set: 6.12 refuses a 1-byte field (meta
    // l4proto) in an interval concatenation (EOPNOTSUPP); source ranges are
    // per Service anyway, so address and port identify it.
    s += "add set inet " + t + " lbsrc" + f + " { type " + addr + " . inet_service . " + addr +
         "; flags interval; }\n";
    s += "add set inet " + t + " hairpin" + f + " { type " + addr + " . " + addr + "; }\n";
  }
  s += "add chain inet " + t + " guard { type filter hook input priority -10; policy accept; }\n";
  s += "add chain inet " + t +
       " guard_out { type filter hook output priority -150; policy accept; }\n";
  s += "add chain inet " + t +
       " post { type nat hook postrouting priority srcnat; policy accept; }\n";
  for (const char* c : {"guard", "guard_out", "post"})
    s += "flush chain inet " + t + " " + c + "\n";
  char mark[16];
  std::snprintf(mark, sizeof(mark), "0x%08x", kMasqueradeMark);
  s += "add rule inet " + t + " post meta mark & " + mark + " == " + mark + " masquerade\n";
  for (const char* f : {"4", "6"}) {
    const std::string ip = f[0] == '4' ? "ip" : "ip6";
    const std::string key = ip + " daddr . meta l4proto . th dport";
    const std::string T = "inet " + t;
    s += "add rule " + T + " guard " + key + " @lbrestrict" + f + " " + ip +
         " daddr . th dport . " + ip + " saddr != @lbsrc" + f + " drop\n";
    for (const char* chain : {"guard", "guard_out"}) {
      s += "add rule " + T + " " + chain + " ct state new " + key + " @refuse" + f +
           " meta l4proto tcp reject with tcp reset\n";
    }
    // UDP/SCTP only on input: the node's own datagrams loop back through it
    // and their socket gets ECONNREFUSED (rejecting them on output fails
    // the send with EPERM instead).
    s += "add rule " + T + " guard ct state new " + key + " @refuse" + f +
         " reject with icmpx type port-unreachable\n";
    // Marked before IPVS rewrites the destination (nft 1.0.6 cannot match
    // `ct original proto-dst` in a concatenation); the mark stays on the
    // skb through IPVS's transmit to postrouting.
    s += "add rule " + T + " guard " + key + " @masq" + f + " meta mark set meta mark | " + mark +
         "\n";
    // Not on lo: a backend that is a node address (the API server's) talks
    // to itself over loopback all the time, and masquerading that breaks
    // it. A pod's hairpin leaves through its veth.
    s += "add rule " + T + " post oifname != \"lo\" " + ip + " saddr . " + ip + " daddr @hairpin" +
         f + " masquerade\n";
  }
  return s;
}

}  // namespace

NftElements nftElementsOf(const sluice::Service& s) {
  NftElements out;
  const std::string proto = protoName(s.protocol);
  for (const Frontend& f : s.frontends) {
    const std::string key = f.address.toString() + " . " + proto + " . " + std::to_string(f.port);
    const bool local = s.isLocal(f.scope);
    if (f.scope != FrontendScope::kClusterIp && !local)
      out[std::string("masq") + fam(f.address)].insert(key);
    if (s.backendSet(local, f.address.family()).forNewFlows().empty()) {
      out[std::string("refuse") + fam(f.address)].insert(key);
    }
    if (f.scope == FrontendScope::kLoadBalancer && !s.sourceRanges.empty()) {
      out[std::string("lbrestrict") + fam(f.address)].insert(key);
      for (const IpPrefix& p : s.sourceRanges) {
        if (p.address.family() != f.address.family()) continue;
        out[std::string("lbsrc") + fam(f.address)].insert(
            f.address.toString() + " . " + std::to_string(f.port) + " . " + p.toString());
      }
    }
  }
  for (const Backend& b : s.backends) {
    const std::string a = b.address.toString();
    out[std::string("hairpin") + fam(b.address)].insert(a + " . " + a);
  }
  return out;
}

Result<std::unique_ptr<NftTable>> NftTable::create(const std::string& table) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return Error::internal("nftables: nft_ctx_new failed");
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  std::unique_ptr<NftTable> t(new NftTable(table, ctx));
  if (auto r = t->run(schema(table)); !r) return r.error().wrap("nftables table " + table);
  return t;
}

NftTable::~NftTable() { nft_ctx_free(ctx_); }

Result<void> NftTable::run(const std::string& commands) {
  ++transactions_;
  if (nft_run_cmd_from_buffer(ctx_, commands.c_str()) != 0) {
    std::string err = nft_ctx_get_error_buffer(ctx_);
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return Error::internal("nft: " + err);
  }
  return okResult();
}

Result<void> NftTable::apply(const ServiceDiff& diff, bool full) {
  // Reference-count deltas of the elements the changed services touch: an
  // apply costs O(its services' elements), never a copy of the table.
  std::map<std::string, std::map<std::string, int>> delta;
  for (const ServiceChange& c : diff.changes) {
    if (!full && c.before) {
      for (const auto& [set, elems] : nftElementsOf(*c.before)) {
        for (const std::string& e : elems) --delta[set][e];
      }
    }
    if (c.after) {
      for (const auto& [set, elems] : nftElementsOf(*c.after)) {
        for (const std::string& e : elems) ++delta[set][e];
      }
    }
  }
  std::string cmds;
  const std::string T = "inet " + table_;
  auto element = [&](const char* verb, const std::string& set, const std::string& e) {
    cmds += std::string(verb) + " element " + T + " " + set + " { " + e + " }\n";
    ++elementWrites_;
  };
  decltype(refs_) next;
  if (full) {
    // Elements an earlier agent wrote are unknown here: start the sets over
    // inside the same transaction, so no packet sees them empty.
    for (const char* s : {"masq", "refuse", "lbrestrict", "lbsrc", "hairpin"}) {
      for (const char* f : {"4", "6"}) cmds += "flush set " + T + " " + s + f + "\n";
    }
    for (const auto& [set, elems] : delta) {
      for (const auto& [e, n] : elems) {
        if (n <= 0) continue;
        element("add", set, e);
        next[set][e] = n;
      }
    }
  } else {
    // What each touched element's count becomes; written to refs_ only
    // once the transaction succeeded.
    for (const auto& [set, elems] : delta) {
      auto& current = refs_[set];
      for (const auto& [e, d] : elems) {
        if (d == 0) continue;
        auto it = current.find(e);
        const int was = it == current.end() ? 0 : it->second;
        const int now = std::max(0, was + d);
        if (was == 0 && now > 0) element("add", set, e);
        if (was > 0 && now == 0) element("delete", set, e);
        next[set][e] = now;
      }
    }
  }
  if (!cmds.empty()) {
    if (auto r = run(cmds); !r) return r.error().wrap("nftables table " + table_);
  }
  if (full) {
    refs_ = std::move(next);
  } else {
    for (auto& [set, elems] : next) {
      auto& current = refs_[set];
      for (auto& [e, n] : elems) {
        if (n == 0) {
          current.erase(e);
        } else {
          current[e] = n;
        }
      }
    }
  }
  return okResult();
}

Result<void> NftTable::remove(const std::string& table) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return Error::internal("nftables: nft_ctx_new failed");
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  // "add" first makes the delete succeed when the table is already gone.
  const std::string cmd = "add table inet " + table + "\ndelete table inet " + table + "\n";
  const int rc = nft_run_cmd_from_buffer(ctx, cmd.c_str());
  std::string err = rc != 0 ? nft_ctx_get_error_buffer(ctx) : "";
  nft_ctx_free(ctx);
  if (rc != 0) return Error::internal("nft delete table " + table + ": " + err);
  return okResult();
}

}  // namespace sluice::ipvs
