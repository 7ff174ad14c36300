#include "ipvs/conntrack_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <sys/socket.h>

#include <cstring>

namespace sluice::ipvs {
namespace {

// CTA_FILTER flag bits: the kernel keeps them in net/netfilter/nf_internals.h, not in uapi, but
// they are ABI since 5.8 (libnetfilter_conntrack carries the same values).
constexpr uint32_t kFilterIpSrc = 1u << 0;
constexpr uint32_t kFilterIpDst = 1u << 1;
constexpr uint32_t kFilterProtoNum = 1u << 3;
constexpr uint32_t kFilterProtoSrcPort = 1u << 4;
constexpr uint32_t kFilterProtoDstPort = 1u << 5;

constexpr uint16_t kMsgGet = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
constexpr uint16_t kMsgDelete = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;

Result<void> putNfHeader(nl_msg* msg, IpFamily family) {
  nfgenmsg hdr{};
  hdr.nfgen_family = family == IpFamily::kV4 ? AF_INET : AF_INET6;
  hdr.version = NFNETLINK_V0;
  hdr.res_id = 0;
  if (nlmsg_append(msg, &hdr, sizeof(hdr), NLMSG_ALIGNTO) < 0) {
    return Error::internal("netlink: no room for the nfnetlink header");
  }
  return okResult();
}

// Writes a CTA_TUPLE_* nest with the fields that are set.
bool putTuple(nl_msg* msg, int type, Protocol protocol, const IpAddress* src, const IpAddress* dst,
              const uint16_t* sport, const uint16_t* dport) {
  nlattr* tuple = nla_nest_start(msg, type);
  if (tuple == nullptr) return false;
  if (src != nullptr || dst != nullptr) {
    nlattr* ip = nla_nest_start(msg, CTA_TUPLE_IP);
    if (ip == nullptr) return false;
    const IpAddress* a = src != nullptr ? src : dst;
    const bool v4 = a->isV4();
    const auto len = static_cast<int>(a->bytes().size());
    if (src != nullptr &&
        nla_put(msg, v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, len, src->bytes().data()) < 0) {
      return false;
    }
    if (dst != nullptr &&
        nla_put(msg, v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, len, dst->bytes().data()) < 0) {
      return false;
    }
    nla_nest_end(msg, ip);
  }
  nlattr* proto = nla_nest_start(msg, CTA_TUPLE_PROTO);
  if (proto == nullptr || nla_put_u8(msg, CTA_PROTO_NUM, static_cast<uint8_t>(protocol)) < 0) {
    return false;
  }
  if (sport != nullptr && nla_put_u16(msg, CTA_PROTO_SRC_PORT, htons(*sport)) < 0) return false;
  if (dport != nullptr && nla_put_u16(msg, CTA_PROTO_DST_PORT, htons(*dport)) < 0) return false;
  nla_nest_end(msg, proto);
  nla_nest_end(msg, tuple);
  return true;
}

Result<void> encodeDump(nl_msg* msg, const ConntrackFilter& f) {
  if (auto r = putNfHeader(msg, f.family); !r) return r;
  uint32_t orig = kFilterProtoNum;
  uint32_t reply = kFilterProtoNum;
  if (f.originalDestination) orig |= kFilterIpDst;
  if (f.originalDestinationPort) orig |= kFilterProtoDstPort;
  if (f.replySource) reply |= kFilterIpSrc;
  if (f.replySourcePort) reply |= kFilterProtoSrcPort;
  const IpAddress* odst = f.originalDestination ? &*f.originalDestination : nullptr;
  const uint16_t* odport = f.originalDestinationPort ? &*f.originalDestinationPort : nullptr;
  const IpAddress* rsrc = f.replySource ? &*f.replySource : nullptr;
  const uint16_t* rsport = f.replySourcePort ? &*f.replySourcePort : nullptr;
  bool ok = putTuple(msg, CTA_TUPLE_ORIG, f.protocol, nullptr, odst, nullptr, odport) &&
            putTuple(msg, CTA_TUPLE_REPLY, f.protocol, rsrc, nullptr, rsport, nullptr);
  nlattr* filter = ok ? nla_nest_start(msg, CTA_FILTER) : nullptr;
  ok = filter != nullptr && nla_put_u32(msg, CTA_FILTER_ORIG_FLAGS, orig) == 0 &&
       nla_put_u32(msg, CTA_FILTER_REPLY_FLAGS, reply) == 0;
  if (!ok) return Error::internal("netlink: conntrack filter does not fit");
  nla_nest_end(msg, filter);
  return okResult();
}

Result<void> encodeDelete(nl_msg* msg, IpFamily family, const ConntrackEntry& e) {
  if (auto r = putNfHeader(msg, family); !r) return r;
  const ConntrackTuple& t = e.original;
  if (!putTuple(msg, CTA_TUPLE_ORIG, e.protocol, &t.source, &t.destination, &t.sourcePort,
                &t.destinationPort) ||
      nla_put_u32(msg, CTA_ID, htonl(e.id)) < 0) {
    return Error::internal("netlink: conntrack tuple does not fit");
  }
  return okResult();
}

std::optional<IpAddress> addressAttr(const nlattr* a) {
  if (a == nullptr) return std::nullopt;
  if (nla_len(a) == 4) {
    std::array<uint8_t, 4> b;
    std::memcpy(b.data(), nla_data(a), 4);
    return IpAddress::v4(b);
  }
  if (nla_len(a) == 16) {
    std::array<uint8_t, 16> b;
    std::memcpy(b.data(), nla_data(a), 16);
    return IpAddress::v6(b);
  }
  return std::nullopt;
}

uint16_t portAttr(const nlattr* a) {
  if (a == nullptr || nla_len(a) < 2) return 0;
  uint16_t v;
  std::memcpy(&v, nla_data(a), 2);
  return ntohs(v);
}

bool parseTuple(nlattr* nest, ConntrackTuple& t, uint8_t& protocol) {
  nlattr* tb[CTA_TUPLE_MAX + 1] = {};
  if (nest == nullptr || nla_parse_nested(tb, CTA_TUPLE_MAX, nest, nullptr) != 0) return false;
  nlattr* ip[CTA_IP_MAX + 1] = {};
  if (tb[CTA_TUPLE_IP] == nullptr ||
      nla_parse_nested(ip, CTA_IP_MAX, tb[CTA_TUPLE_IP], nullptr) != 0) {
    return false;
  }
  auto src = addressAttr(ip[CTA_IP_V4_SRC] ? ip[CTA_IP_V4_SRC] : ip[CTA_IP_V6_SRC]);
  auto dst = addressAttr(ip[CTA_IP_V4_DST] ? ip[CTA_IP_V4_DST] : ip[CTA_IP_V6_DST]);
  if (!src || !dst) return false;
  t.source = *src;
  t.destination = *dst;
  nlattr* pr[CTA_PROTO_MAX + 1] = {};
  if (tb[CTA_TUPLE_PROTO] == nullptr ||
      nla_parse_nested(pr, CTA_PROTO_MAX, tb[CTA_TUPLE_PROTO], nullptr) != 0 ||
      pr[CTA_PROTO_NUM] == nullptr) {
    return false;
  }
  protocol = nla_get_u8(pr[CTA_PROTO_NUM]);
  t.sourcePort = portAttr(pr[CTA_PROTO_SRC_PORT]);
  t.destinationPort = portAttr(pr[CTA_PROTO_DST_PORT]);
  return true;
}

std::optional<ConntrackEntry> parseEntry(const nlmsghdr* h) {
  if (NFNL_MSG_TYPE(h->nlmsg_type) != IPCTNL_MSG_CT_NEW) return std::nullopt;
  nlattr* tb[CTA_MAX + 1] = {};
  if (nlmsg_parse(const_cast<nlmsghdr*>(h), sizeof(nfgenmsg), tb, CTA_MAX, nullptr) != 0) {
    return std::nullopt;
  }
  ConntrackEntry e;
  uint8_t proto = 0;
  uint8_t replyProto = 0;
  if (!parseTuple(tb[CTA_TUPLE_ORIG], e.original, proto) ||
      !parseTuple(tb[CTA_TUPLE_REPLY], e.reply, replyProto)) {
    return std::nullopt;
  }
  e.protocol = static_cast<Protocol>(proto);
  if (tb[CTA_ID] != nullptr) e.id = ntohl(nla_get_u32(tb[CTA_ID]));
  return e;
}

}  // namespace

bool ConntrackFilter::matches(const ConntrackEntry& e) const {
  return e.protocol == protocol && e.original.destination.family() == family &&
         (!originalDestination || e.original.destination == *originalDestination) &&
         (!originalDestinationPort || e.original.destinationPort == *originalDestinationPort) &&
         (!replySource || e.reply.source == *replySource) &&
         (!replySourcePort || e.reply.sourcePort == *replySourcePort);
}

std::string ConntrackFilter::toString() const {
  std::string s(sluice::toString(protocol));
  s += " to ";
  s += originalDestination ? originalDestination->toString() : "*";
  if (originalDestinationPort) s += ":" + std::to_string(*originalDestinationPort);
  s += " via ";
  s += replySource ? replySource->toString() : "*";
  if (replySourcePort) s += ":" + std::to_string(*replySourcePort);
  return s;
}

Result<std::unique_ptr<ConntrackClient>> ConntrackClient::create(NetlinkChannel::Options options) {
  options.protocol = NETLINK_NETFILTER;
  auto channel = NetlinkChannel::create(options);
  if (!channel) return channel.error();
  return std::unique_ptr<ConntrackClient>(new ConntrackClient(std::move(*channel)));
}

Result<std::vector<ConntrackEntry>> ConntrackClient::list(const ConntrackFilter& filter) {
  const std::string what = "conntrack " + filter.toString();
  if (!filter.originalDestination && !filter.replySource) {
    return Error::invalid(what + ": a filter needs an address");
  }
  for (const auto* a : {filter.originalDestination ? &*filter.originalDestination : nullptr,
                        filter.replySource ? &*filter.replySource : nullptr}) {
    if (a != nullptr && a->family() != filter.family) {
      return Error::invalid(what + ": address " + a->toString() + " is not of the family");
    }
  }
  std::vector<ConntrackEntry> out;
  auto r = channel_->dump(
      kMsgGet, [&](size_t, nl_msg* msg) { return encodeDump(msg, filter); },
      [&](const nlmsghdr* h) -> Result<void> {
        if (auto e = parseEntry(h); e && filter.matches(*e)) out.push_back(*e);
        return okResult();
      });
  if (!r) {
    if (r.error().message.find("EPROTONOSUPPORT") != std::string::npos ||
        r.error().message.find("EOPNOTSUPP") != std::string::npos) {
      return Error{
          ErrorCode::kFailedPrecondition,
          what + ": ctnetlink unavailable (is nf_conntrack_netlink loaded?): " + r.error().message};
    }
    return r.error().wrap(what);
  }
  return out;
}

Result<size_t> ConntrackClient::remove(const ConntrackFilter& filter) {
  auto entries = list(filter);
  if (!entries) return entries.error();
  if (entries->empty()) return size_t{0};
  auto acks = channel_->transact(entries->size(), kMsgDelete, [&](size_t i, nl_msg* msg) {
    return encodeDelete(msg, filter.family, (*entries)[i]);
  });
  if (!acks) return acks.error().wrap("conntrack " + filter.toString() + ": delete");
  size_t deleted = 0;
  for (size_t i = 0; i < acks->size(); ++i) {
    const int err = (*acks)[i].error;
    if (err == 0) {
      ++deleted;
    } else if (err != ENOENT) {  // ENOENT: expired or replaced meanwhile
      return Error::internal("conntrack " + filter.toString() + ": delete entry " +
                             std::to_string((*entries)[i].id) + ": " + errnoText(err));
    }
  }
  return deleted;
}

}  // namespace sluice::ipvs
