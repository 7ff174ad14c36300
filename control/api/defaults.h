// Defaulting as Kubernetes' SetDefaults_* functions and registry strategies
// apply it for the fields sluice models, so `kubectl get -o yaml` shows what
// users expect (protocol: TCP, targetPort = port, restartPolicy: Always,
// sessionAffinity timeout 10800, ...). Idempotent: applied on create and on
// every update.
#pragma once

#include "control/api/proto/apps.pb.h"
#include "control/api/proto/core.pb.h"
#include "control/api/proto/discovery.pb.h"

namespace sluice::api {

void defaultPodSpec(PodSpec& spec);
void defaultPod(Pod& pod);
void defaultService(Service& svc);
// Update preparation for Services (Kubernetes' patchAllocatedValues and
// dropTypeDependentFields): allocated values the client omitted are carried
// over; fields of the old type the client left unchanged are dropped on a
// type change (NodePort -> ClusterIP drops the node ports, * -> ExternalName
// the cluster IP).
void prepareServiceUpdate(Service& svc, const Service& old);

void defaultReplicaSet(ReplicaSet& rs);
void defaultDeployment(Deployment& d);
void defaultNamespace(Namespace& ns);
void defaultEndpoints(Endpoints& ep);
void defaultEndpointSlice(EndpointSlice& slice);

// The pod's QoS class from its containers' requests and limits.
std::string podQosClass(const PodSpec& spec);

}  // namespace sluice::api
