// The service model (dataplane/service.h) to and from the sluice-dpdk API
// messages (dpdk.proto), for the process and for its clients (the agent's
// dpdk mode, tests). Enums travel as their dataplane values; fromProto()
// rejects any value outside the enum, and addresses of a wrong length, with
// the field that held it.
#pragma once

#include "dataplane/dpdk/dpdk.pb.h"
#include "dataplane/result.h"
#include "dataplane/service.h"

namespace sluice::dpdk {

void toProto(const Service& s, api::Service& out);
Result<Service> fromProto(const api::Service& in);
void toProto(const ServiceKey& k, api::ServiceKey& out);
ServiceKey fromProto(const api::ServiceKey& in);

std::string addressBytes(const IpAddress& a);
Result<IpAddress> addressFrom(const std::string& bytes);

}  // namespace sluice::dpdk
