// sluice-ipam: the host-local style IPAM plugin binary (ipam_plugin.h),
// normally exec'd by sluice-cni for the network's `ipam` section.
#include "cni/ipam_plugin.h"
#include "cni/skel.h"

int main() {
  sluice::cni::IpamPlugin plugin;
  return sluice::cni::pluginMain(plugin);
}
