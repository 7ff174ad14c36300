#include "ipvs/netlink_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/ip_vs.h>
#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace sluice::ipvs {
namespace {

// IP_VS_SCHEDNAME_MAXLEN and IP_VS_PENAME_MAXLEN count the NUL.
constexpr size_t kMaxNameLength = IP_VS_SCHEDNAME_MAXLEN - 1;

uint16_t toAf(IpFamily family) { return family == IpFamily::kV4 ? AF_INET : AF_INET6; }

// --- encoding ----------------------------------------------------------------------------------

Result<void> putGenlHeader(nl_msg* msg, uint8_t cmd) {
  genlmsghdr hdr{};
  hdr.cmd = cmd;
  hdr.version = IPVS_GENL_VERSION;
  if (nlmsg_append(msg, &hdr, sizeof(hdr), NLMSG_ALIGNTO) < 0) {
    return Error::internal("netlink: no room for the generic netlink header");
  }
  return okResult();
}

// Appends attributes and remembers the first failure (a message out of room), so encoders read
// as a list of fields.
class AttrWriter {
 public:
  explicit AttrWriter(nl_msg* msg) : msg_(msg) {}
  void u8(int attr, uint8_t v) { step(nla_put_u8(msg_, attr, v)); }
  void u16(int attr, uint16_t v) { step(nla_put_u16(msg_, attr, v)); }
  void u32(int attr, uint32_t v) { step(nla_put_u32(msg_, attr, v)); }
  void str(int attr, const std::string& v) { step(nla_put_string(msg_, attr, v.c_str())); }
  void raw(int attr, const void* data, size_t len) {
    step(nla_put(msg_, attr, static_cast<int>(len), data));
  }
  // Ports travel in network order.
  void port(int attr, uint16_t hostOrder) { u16(attr, htons(hostOrder)); }
  // An address attribute is a union nf_inet_addr: 16 bytes, IPv4 in the first 4, rest zero.
  void address(int attr, const IpAddress& a) {
    uint8_t bytes[16] = {};
    std::memcpy(bytes, a.bytes().data(), a.bytes().size());
    raw(attr, bytes, sizeof(bytes));
  }
  nlattr* nest(int attr) {
    nlattr* n = nla_nest_start(msg_, attr);
    if (n == nullptr) step(-1);
    return n;
  }
  void end(nlattr* n) {
    if (n != nullptr && err_ == 0) nla_nest_end(msg_, n);
  }
  Result<void> status(const char* what) const {
    if (err_ == 0) return okResult();
    return Error::internal(std::string("netlink: ") + what + " attributes do not fit");
  }

 private:
  void step(int r) {
    if (err_ == 0) err_ = r;
  }
  nl_msg* msg_;
  int err_ = 0;
};

// The kernel reads the persistence netmask raw: an IPv4 mask in network order, an IPv6 prefix
// length (1..128) as a plain number.
uint32_t encodeNetmask(IpFamily family, std::optional<uint8_t> prefix) {
  if (family == IpFamily::kV6) return prefix.value_or(128);
  const uint8_t p = prefix.value_or(32);
  const uint32_t mask = p == 0 ? 0 : ~uint32_t{0} << (32 - p);
  return htonl(mask);
}

uint8_t decodeNetmask(IpFamily family, uint32_t raw) {
  if (family == IpFamily::kV6) return static_cast<uint8_t>(raw);
  return static_cast<uint8_t>(__builtin_popcount(ntohl(raw)));
}

Result<void> putService(nl_msg* msg, const Service& svc, bool full) {
  AttrWriter w(msg);
  const ServiceKey& k = svc.key;
  nlattr* nest = w.nest(IPVS_CMD_ATTR_SERVICE);
  w.u16(IPVS_SVC_ATTR_AF, toAf(k.family));
  if (k.isFwmark()) {
    w.u32(IPVS_SVC_ATTR_FWMARK, k.fwmark);
  } else {
    w.u16(IPVS_SVC_ATTR_PROTOCOL, static_cast<uint16_t>(k.protocol));
    w.address(IPVS_SVC_ATTR_ADDR, k.address);
    w.port(IPVS_SVC_ATTR_PORT, k.port);
  }
  if (full) {
    // The mask covers every user flag, so an update also clears the ones left out.
    const ip_vs_flags flags{svc.flags & ServiceFlags::kUserMask, ServiceFlags::kUserMask};
    w.str(IPVS_SVC_ATTR_SCHED_NAME, svc.scheduler);
    if (!svc.persistenceEngine.empty()) w.str(IPVS_SVC_ATTR_PE_NAME, svc.persistenceEngine);
    w.raw(IPVS_SVC_ATTR_FLAGS, &flags, sizeof(flags));
    w.u32(IPVS_SVC_ATTR_TIMEOUT, svc.timeoutSeconds);
    w.u32(IPVS_SVC_ATTR_NETMASK, encodeNetmask(k.family, svc.persistencePrefix));
  }
  w.end(nest);
  return w.status("service");
}

Result<void> putDestination(nl_msg* msg, const Destination& d, bool full) {
  AttrWriter w(msg);
  nlattr* nest = w.nest(IPVS_CMD_ATTR_DEST);
  w.address(IPVS_DEST_ATTR_ADDR, d.address);
  w.port(IPVS_DEST_ATTR_PORT, d.port);
  // Since 3.18; lets a destination differ in family from its service (tunnel only).
  w.u16(IPVS_DEST_ATTR_ADDR_FAMILY, toAf(d.address.family()));
  if (full) {
    w.u32(IPVS_DEST_ATTR_FWD_METHOD, static_cast<uint32_t>(d.forward));
    w.u32(IPVS_DEST_ATTR_WEIGHT, d.weight);
    w.u32(IPVS_DEST_ATTR_U_THRESH, d.upperThreshold);
    w.u32(IPVS_DEST_ATTR_L_THRESH, d.lowerThreshold);
    if (d.forward == ForwardMethod::kTunnel) {
      w.u8(IPVS_DEST_ATTR_TUN_TYPE, static_cast<uint8_t>(d.tunnelType));
      w.port(IPVS_DEST_ATTR_TUN_PORT, d.tunnelPort);
      w.u16(IPVS_DEST_ATTR_TUN_FLAGS, d.tunnelFlags);
    }
  }
  w.end(nest);
  return w.status("destination");
}

uint8_t commandOf(Batch::Op op) {
  switch (op) {
    case Batch::Op::kAddService:
      return IPVS_CMD_NEW_SERVICE;
    case Batch::Op::kUpdateService:
      return IPVS_CMD_SET_SERVICE;
    case Batch::Op::kDeleteService:
      return IPVS_CMD_DEL_SERVICE;
    case Batch::Op::kAddDestination:
      return IPVS_CMD_NEW_DEST;
    case Batch::Op::kUpdateDestination:
      return IPVS_CMD_SET_DEST;
    case Batch::Op::kDeleteDestination:
      return IPVS_CMD_DEL_DEST;
  }
  return IPVS_CMD_UNSPEC;
}

bool isServiceOp(Batch::Op op) {
  return op == Batch::Op::kAddService || op == Batch::Op::kUpdateService ||
         op == Batch::Op::kDeleteService;
}

Result<void> encodeChange(const Batch::Change& c, nl_msg* msg) {
  if (auto r = putGenlHeader(msg, commandOf(c.op)); !r) return r;
  const bool fullService = c.op == Batch::Op::kAddService || c.op == Batch::Op::kUpdateService;
  if (auto r = putService(msg, c.service, fullService); !r) return r;
  if (isServiceOp(c.op)) return okResult();
  return putDestination(msg, c.destination, c.op != Batch::Op::kDeleteDestination);
}

// What the kernel would reject with a less helpful errno, or what it cannot express.
Result<void> validate(const Batch::Change& c) {
  const ServiceKey& k = c.service.key;
  if (!k.isFwmark()) {
    if (k.address.family() != k.family) {
      return Error::invalid("address " + k.address.toString() + " is not of the key's family");
    }
    if (k.protocol != Protocol::kTcp && k.protocol != Protocol::kUdp &&
        k.protocol != Protocol::kSctp) {
      return Error::invalid("IPVS balances TCP, UDP and SCTP only");
    }
  }
  if (c.op == Batch::Op::kAddService || c.op == Batch::Op::kUpdateService) {
    const Service& s = c.service;
    if (s.scheduler.empty() || s.scheduler.size() > kMaxNameLength) {
      return Error::invalid("scheduler name '" + s.scheduler + "' must be 1-15 characters");
    }
    if (s.persistenceEngine.size() > kMaxNameLength) {
      return Error::invalid("persistence engine name longer than 15 characters");
    }
    const uint8_t full = k.family == IpFamily::kV4 ? 32 : 128;
    if (s.persistencePrefix &&
        (*s.persistencePrefix > full || (k.family == IpFamily::kV6 && *s.persistencePrefix == 0))) {
      return Error::invalid("persistence prefix /" + std::to_string(*s.persistencePrefix) +
                            " out of range");
    }
  }
  return okResult();
}

Error changeError(const Batch& batch, size_t i, const Ack& ack) {
  const Batch::Change& c = batch.changes()[i];
  ErrorCode code = ErrorCode::kInternal;
  std::string meaning;
  switch (ack.error) {
    case EEXIST:
      code = ErrorCode::kAlreadyExists;
      break;
    case ESRCH:
      code = ErrorCode::kNotFound;
      meaning = "no such service";
      break;
    case ENOENT:
      if (c.op == Batch::Op::kAddService || c.op == Batch::Op::kUpdateService) {
        // ip_vs_add/edit_service return ENOENT only for a scheduler or persistence engine
        // module the kernel cannot find (nor autoload).
        code = ErrorCode::kInvalidArgument;
        meaning = "scheduler '" + c.service.scheduler + "'" +
                  (c.service.persistenceEngine.empty()
                       ? ""
                       : " or persistence engine '" + c.service.persistenceEngine + "'") +
                  " not available in this kernel";
      } else {
        code = ErrorCode::kNotFound;
        meaning = "no such destination";
      }
      break;
    case ERANGE:
      code = ErrorCode::kInvalidArgument;
      meaning = "weight or thresholds out of range (lower above upper?)";
      break;
    case EINVAL:
    case EAFNOSUPPORT:
    case EOPNOTSUPP:
      code = ErrorCode::kInvalidArgument;
      break;
    case ENOMEM:
    case ENOSPC:
      code = ErrorCode::kResourceExhausted;
      break;
    case EPERM:
    case EACCES:
      code = ErrorCode::kFailedPrecondition;
      meaning = "needs CAP_NET_ADMIN";
      break;
    case EBUSY:
    case EAGAIN:
      code = ErrorCode::kUnavailable;
      break;
    default:
      break;
  }
  std::string msg = batch.describe(i) + ": ";
  if (!meaning.empty()) msg += meaning + ": ";
  msg += errnoText(ack.error);
  if (!ack.message.empty()) msg += ": " + ack.message;
  return {code, std::move(msg)};
}

// --- decoding ----------------------------------------------------------------------------------

// Attribute readers that check the length first: a short attribute reads as absent.
template <typename T>
std::optional<T> get(const nlattr* a) {
  if (a == nullptr || nla_len(a) < static_cast<int>(sizeof(T))) return std::nullopt;
  T v;
  std::memcpy(&v, nla_data(a), sizeof(T));
  return v;
}

// A counter that is u32 in the legacy stats block and u64 in STATS64.
uint64_t counter(const nlattr* a) {
  if (a == nullptr) return 0;
  if (nla_len(a) >= 8) return get<uint64_t>(a).value_or(0);
  return get<uint32_t>(a).value_or(0);
}

Stats parseStats(nlattr* stats64, nlattr* stats32) {
  Stats s;
  nlattr* nest = stats64 ? stats64 : stats32;
  if (nest == nullptr) return s;
  nlattr* tb[IPVS_STATS_ATTR_MAX + 1] = {};
  if (nla_parse_nested(tb, IPVS_STATS_ATTR_MAX, nest, nullptr) != 0) return s;
  s.present = true;
  s.from64Bit = stats64 != nullptr;
  s.connections = counter(tb[IPVS_STATS_ATTR_CONNS]);
  s.packetsIn = counter(tb[IPVS_STATS_ATTR_INPKTS]);
  s.packetsOut = counter(tb[IPVS_STATS_ATTR_OUTPKTS]);
  s.bytesIn = counter(tb[IPVS_STATS_ATTR_INBYTES]);
  s.bytesOut = counter(tb[IPVS_STATS_ATTR_OUTBYTES]);
  s.connectionsPerSecond = counter(tb[IPVS_STATS_ATTR_CPS]);
  s.packetsInPerSecond = counter(tb[IPVS_STATS_ATTR_INPPS]);
  s.packetsOutPerSecond = counter(tb[IPVS_STATS_ATTR_OUTPPS]);
  s.bytesInPerSecond = counter(tb[IPVS_STATS_ATTR_INBPS]);
  s.bytesOutPerSecond = counter(tb[IPVS_STATS_ATTR_OUTBPS]);
  return s;
}

std::optional<IpFamily> familyOf(std::optional<uint16_t> af) {
  if (af == AF_INET) return IpFamily::kV4;
  if (af == AF_INET6) return IpFamily::kV6;
  return std::nullopt;
}

IpAddress addressOf(IpFamily family, const nlattr* a) {
  std::array<uint8_t, 16> raw{};
  if (a != nullptr) {
    std::memcpy(raw.data(), nla_data(a), std::min<size_t>(16, static_cast<size_t>(nla_len(a))));
  }
  if (family == IpFamily::kV4) return IpAddress::v4({raw[0], raw[1], raw[2], raw[3]});
  return IpAddress::v6(raw);
}

std::string stringOf(const nlattr* a) {
  if (a == nullptr || nla_len(a) <= 0) return {};
  const char* p = static_cast<const char*>(nla_data(a));
  return std::string(p, strnlen(p, static_cast<size_t>(nla_len(a))));
}

// The top-level attributes of a generic netlink reply.
Result<void> parseTop(const nlmsghdr* h, nlattr** tb, int max) {
  auto* hdr = const_cast<nlmsghdr*>(h);
  if (genlmsg_parse(hdr, 0, tb, max, nullptr) != 0) {
    return Error::internal("IPVS reply: malformed attributes");
  }
  return okResult();
}

Result<Service> parseService(nlattr* nest) {
  if (nest == nullptr) return Error::internal("IPVS reply without a service");
  nlattr* tb[IPVS_SVC_ATTR_MAX + 1] = {};
  if (nla_parse_nested(tb, IPVS_SVC_ATTR_MAX, nest, nullptr) != 0) {
    return Error::internal("IPVS reply: malformed service attributes");
  }
  const auto family = familyOf(get<uint16_t>(tb[IPVS_SVC_ATTR_AF]));
  if (!family) return Error::internal("IPVS reply: service of an unknown address family");
  Service s;
  s.key.family = *family;
  s.key.address = addressOf(*family, nullptr);
  if (auto mark = get<uint32_t>(tb[IPVS_SVC_ATTR_FWMARK]); mark && *mark != 0) {
    s.key.fwmark = *mark;
  } else {
    s.key.protocol = static_cast<Protocol>(get<uint16_t>(tb[IPVS_SVC_ATTR_PROTOCOL]).value_or(0));
    s.key.address = addressOf(*family, tb[IPVS_SVC_ATTR_ADDR]);
    s.key.port = ntohs(get<uint16_t>(tb[IPVS_SVC_ATTR_PORT]).value_or(0));
  }
  s.scheduler = stringOf(tb[IPVS_SVC_ATTR_SCHED_NAME]);
  s.persistenceEngine = stringOf(tb[IPVS_SVC_ATTR_PE_NAME]);
  if (auto flags = get<ip_vs_flags>(tb[IPVS_SVC_ATTR_FLAGS])) s.flags = flags->flags;
  s.timeoutSeconds = get<uint32_t>(tb[IPVS_SVC_ATTR_TIMEOUT]).value_or(0);
  if (auto mask = get<uint32_t>(tb[IPVS_SVC_ATTR_NETMASK])) {
    s.persistencePrefix = decodeNetmask(*family, *mask);
  }
  s.stats = parseStats(tb[IPVS_SVC_ATTR_STATS64], tb[IPVS_SVC_ATTR_STATS]);
  return s;
}

Result<Destination> parseDestination(nlattr* nest, IpFamily serviceFamily) {
  if (nest == nullptr) return Error::internal("IPVS reply without a destination");
  nlattr* tb[IPVS_DEST_ATTR_MAX + 1] = {};
  if (nla_parse_nested(tb, IPVS_DEST_ATTR_MAX, nest, nullptr) != 0) {
    return Error::internal("IPVS reply: malformed destination attributes");
  }
  // Kernels before 3.18 send no family: the service's then.
  const auto family =
      familyOf(get<uint16_t>(tb[IPVS_DEST_ATTR_ADDR_FAMILY])).value_or(serviceFamily);
  Destination d;
  d.address = addressOf(family, tb[IPVS_DEST_ATTR_ADDR]);
  d.port = ntohs(get<uint16_t>(tb[IPVS_DEST_ATTR_PORT]).value_or(0));
  d.forward = static_cast<ForwardMethod>(get<uint32_t>(tb[IPVS_DEST_ATTR_FWD_METHOD]).value_or(0) &
                                         IP_VS_CONN_F_FWD_MASK);
  d.weight = get<uint32_t>(tb[IPVS_DEST_ATTR_WEIGHT]).value_or(0);
  d.upperThreshold = get<uint32_t>(tb[IPVS_DEST_ATTR_U_THRESH]).value_or(0);
  d.lowerThreshold = get<uint32_t>(tb[IPVS_DEST_ATTR_L_THRESH]).value_or(0);
  d.tunnelType = static_cast<TunnelType>(get<uint8_t>(tb[IPVS_DEST_ATTR_TUN_TYPE]).value_or(0));
  d.tunnelPort = ntohs(get<uint16_t>(tb[IPVS_DEST_ATTR_TUN_PORT]).value_or(0));
  d.tunnelFlags = get<uint16_t>(tb[IPVS_DEST_ATTR_TUN_FLAGS]).value_or(0);
  d.activeConnections = get<uint32_t>(tb[IPVS_DEST_ATTR_ACTIVE_CONNS]).value_or(0);
  d.inactiveConnections = get<uint32_t>(tb[IPVS_DEST_ATTR_INACT_CONNS]).value_or(0);
  d.persistentConnections = get<uint32_t>(tb[IPVS_DEST_ATTR_PERSIST_CONNS]).value_or(0);
  d.stats = parseStats(tb[IPVS_DEST_ATTR_STATS64], tb[IPVS_DEST_ATTR_STATS]);
  return d;
}

}  // namespace

// --- Batch -------------------------------------------------------------------------------------

Batch::Change Batch::keyed(Op op, const ServiceKey& key, const Destination& dest) {
  Change c{op, {}, dest};
  c.service.key = key;
  return c;
}

void Batch::deleteDestination(const ServiceKey& key, const IpAddress& address, uint16_t port) {
  Destination d;
  d.address = address;
  d.port = port;
  changes_.push_back(keyed(Op::kDeleteDestination, key, d));
}

std::string Batch::describe(size_t i) const {
  const Change& c = changes_.at(i);
  std::string s = "service " + c.service.key.toString();
  if (!isServiceOp(c.op)) s += ": destination " + c.destination.toString();
  return s;
}

Result<void> BatchResult::status() const {
  if (failures.empty()) return okResult();
  Error first = failures.front().second;
  if (failures.size() > 1) {
    first.message += " (and " + std::to_string(failures.size() - 1) + " more)";
  }
  return first;
}

// --- NetlinkClient -----------------------------------------------------------------------------

Result<std::unique_ptr<NetlinkClient>> NetlinkClient::create(NetlinkChannel::Options options) {
  options.protocol = NETLINK_GENERIC;
  auto channel = NetlinkChannel::create(options);
  if (!channel) return channel.error();
  // Resolved once: the id is stable while ip_vs stays loaded (an unload and reload could
  // renumber it; the mode then recreates the client).
  const int family = genl_ctrl_resolve((*channel)->sock(), IPVS_GENL_NAME);
  if (family < 0) {
    return Error::unavailable(std::string("IPVS generic netlink family not found (is ip_vs "
                                          "loaded?): ") +
                              nl_geterror(family));
  }
  return std::unique_ptr<NetlinkClient>(
      new NetlinkClient(std::move(*channel), static_cast<uint16_t>(family)));
}

Result<BatchResult> NetlinkClient::apply(const Batch& batch) {
  BatchResult result;
  std::vector<size_t> sent;
  sent.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    if (auto v = validate(batch.changes()[i]); !v) {
      result.failures.emplace_back(i, v.error().wrap(batch.describe(i)));
    } else {
      sent.push_back(i);
    }
  }
  if (!sent.empty()) {
    auto acks = channel_->transact(sent.size(), family_, [&](size_t k, nl_msg* msg) {
      return encodeChange(batch.changes()[sent[k]], msg);
    });
    if (!acks) return acks.error();
    for (size_t k = 0; k < sent.size(); ++k) {
      const Ack& ack = (*acks)[k];
      if (ack.error == 0) {
        ++result.applied;
      } else {
        result.failures.emplace_back(sent[k], changeError(batch, sent[k], ack));
      }
    }
  }
  std::sort(result.failures.begin(), result.failures.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return result;
}

Result<void> NetlinkClient::single(Batch batch) {
  auto r = apply(batch);
  if (!r) return r.error();
  return r->status();
}

Result<void> NetlinkClient::addService(const Service& service) {
  Batch b;
  b.addService(service);
  return single(std::move(b));
}

Result<void> NetlinkClient::updateService(const Service& service) {
  Batch b;
  b.updateService(service);
  return single(std::move(b));
}

Result<void> NetlinkClient::deleteService(const ServiceKey& key) {
  Batch b;
  b.deleteService(key);
  return single(std::move(b));
}

Result<void> NetlinkClient::addDestination(const ServiceKey& key, const Destination& dest) {
  Batch b;
  b.addDestination(key, dest);
  return single(std::move(b));
}

Result<void> NetlinkClient::updateDestination(const ServiceKey& key, const Destination& dest) {
  Batch b;
  b.updateDestination(key, dest);
  return single(std::move(b));
}

Result<void> NetlinkClient::deleteDestination(const ServiceKey& key, const IpAddress& address,
                                              uint16_t port) {
  Batch b;
  b.deleteDestination(key, address, port);
  return single(std::move(b));
}

Result<Service> NetlinkClient::getService(const ServiceKey& key) {
  const std::string what = "service " + key.toString();
  if (auto v = validate(Batch::keyed(Batch::Op::kDeleteService, key)); !v)
    return v.error().wrap(what);
  std::optional<Service> found;
  auto ack = channel_->request(
      family_,
      [&](size_t, nl_msg* msg) -> Result<void> {
        if (auto r = putGenlHeader(msg, IPVS_CMD_GET_SERVICE); !r) return r;
        return putService(msg, Batch::keyed(Batch::Op::kDeleteService, key).service, false);
      },
      [&](const nlmsghdr* h) -> Result<void> {
        nlattr* tb[IPVS_CMD_ATTR_MAX + 1] = {};
        if (auto r = parseTop(h, tb, IPVS_CMD_ATTR_MAX); !r) return r;
        auto s = parseService(tb[IPVS_CMD_ATTR_SERVICE]);
        if (!s) return s.error();
        found = std::move(*s);
        return okResult();
      });
  if (!ack) return ack.error().wrap(what);
  if (ack->error == ESRCH) return Error::notFound(what + ": no such service: " + errnoText(ESRCH));
  if (ack->error != 0) return Error::internal(what + ": " + errnoText(ack->error));
  if (!found) return Error::internal(what + ": the kernel acknowledged but sent no service");
  return std::move(*found);
}

Result<std::vector<Service>> NetlinkClient::listServices() {
  std::vector<Service> out;
  auto r = channel_->dump(
      family_, [](size_t, nl_msg* msg) { return putGenlHeader(msg, IPVS_CMD_GET_SERVICE); },
      [&](const nlmsghdr* h) -> Result<void> {
        nlattr* tb[IPVS_CMD_ATTR_MAX + 1] = {};
        if (auto p = parseTop(h, tb, IPVS_CMD_ATTR_MAX); !p) return p;
        auto s = parseService(tb[IPVS_CMD_ATTR_SERVICE]);
        if (!s) return s.error();
        out.push_back(std::move(*s));
        return okResult();
      });
  if (!r) return r.error().wrap("listing IPVS services");
  return out;
}

Result<std::vector<Destination>> NetlinkClient::listDestinations(const ServiceKey& key) {
  const std::string what = "service " + key.toString();
  if (auto v = validate(Batch::keyed(Batch::Op::kDeleteService, key)); !v)
    return v.error().wrap(what);
  std::vector<Destination> out;
  auto r = channel_->dump(
      family_,
      [&](size_t, nl_msg* msg) -> Result<void> {
        if (auto g = putGenlHeader(msg, IPVS_CMD_GET_DEST); !g) return g;
        return putService(msg, Batch::keyed(Batch::Op::kDeleteService, key).service, false);
      },
      [&](const nlmsghdr* h) -> Result<void> {
        nlattr* tb[IPVS_CMD_ATTR_MAX + 1] = {};
        if (auto p = parseTop(h, tb, IPVS_CMD_ATTR_MAX); !p) return p;
        auto d = parseDestination(tb[IPVS_CMD_ATTR_DEST], key.family);
        if (!d) return d.error();
        out.push_back(std::move(*d));
        return okResult();
      });
  if (!r) return r.error().wrap(what + ": listing destinations");
  return out;
}

Result<Info> NetlinkClient::info() {
  Info info;
  auto ack = channel_->request(
      family_, [](size_t, nl_msg* msg) { return putGenlHeader(msg, IPVS_CMD_GET_INFO); },
      [&](const nlmsghdr* h) -> Result<void> {
        nlattr* tb[IPVS_INFO_ATTR_MAX + 1] = {};
        if (auto p = parseTop(h, tb, IPVS_INFO_ATTR_MAX); !p) return p;
        info.version = get<uint32_t>(tb[IPVS_INFO_ATTR_VERSION]).value_or(0);
        info.connTableSize = get<uint32_t>(tb[IPVS_INFO_ATTR_CONN_TAB_SIZE]).value_or(0);
        return okResult();
      });
  if (!ack) return ack.error().wrap("IPVS info");
  if (ack->error != 0) return Error::internal("IPVS info: " + errnoText(ack->error));
  return info;
}

Result<Timeouts> NetlinkClient::timeouts() {
  Timeouts t;
  auto ack = channel_->request(
      family_, [](size_t, nl_msg* msg) { return putGenlHeader(msg, IPVS_CMD_GET_CONFIG); },
      [&](const nlmsghdr* h) -> Result<void> {
        nlattr* tb[IPVS_CMD_ATTR_MAX + 1] = {};
        if (auto p = parseTop(h, tb, IPVS_CMD_ATTR_MAX); !p) return p;
        t.tcpSeconds = get<uint32_t>(tb[IPVS_CMD_ATTR_TIMEOUT_TCP]).value_or(0);
        t.tcpFinSeconds = get<uint32_t>(tb[IPVS_CMD_ATTR_TIMEOUT_TCP_FIN]).value_or(0);
        t.udpSeconds = get<uint32_t>(tb[IPVS_CMD_ATTR_TIMEOUT_UDP]).value_or(0);
        return okResult();
      });
  if (!ack) return ack.error().wrap("IPVS timeouts");
  if (ack->error != 0) return Error::internal("IPVS timeouts: " + errnoText(ack->error));
  return t;
}

Result<void> NetlinkClient::simpleCommand(uint8_t cmd, const std::string& what,
                                          const NetlinkChannel::Encoder& attrs) {
  auto acks = channel_->transact(1, family_, [&](size_t i, nl_msg* msg) -> Result<void> {
    if (auto r = putGenlHeader(msg, cmd); !r) return r;
    return attrs(i, msg);
  });
  if (!acks) return acks.error().wrap(what);
  const Ack& ack = acks->front();
  if (ack.error == 0) return okResult();
  const ErrorCode code = ack.error == EINVAL ? ErrorCode::kInvalidArgument : ErrorCode::kInternal;
  return Error{
      code, what + ": " + errnoText(ack.error) + (ack.message.empty() ? "" : ": " + ack.message)};
}

Result<void> NetlinkClient::setTimeouts(const Timeouts& t) {
  return simpleCommand(IPVS_CMD_SET_CONFIG, "IPVS timeouts", [&](size_t, nl_msg* msg) {
    // 0 is "unchanged" to the kernel too; sending only what changes keeps that explicit.
    AttrWriter w(msg);
    if (t.tcpSeconds) w.u32(IPVS_CMD_ATTR_TIMEOUT_TCP, t.tcpSeconds);
    if (t.tcpFinSeconds) w.u32(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, t.tcpFinSeconds);
    if (t.udpSeconds) w.u32(IPVS_CMD_ATTR_TIMEOUT_UDP, t.udpSeconds);
    return w.status("config");
  });
}

Result<void> NetlinkClient::flush() {
  return simpleCommand(IPVS_CMD_FLUSH, "IPVS flush", [](size_t, nl_msg*) { return okResult(); });
}

}  // namespace sluice::ipvs
