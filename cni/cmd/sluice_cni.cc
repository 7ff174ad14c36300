// sluice-cni: the CNI plugin binary (veth_plugin.h). Runtimes exec it with
// CNI_* in the environment and the network configuration on stdin.
#include "cni/skel.h"
#include "cni/veth_plugin.h"

int main() {
  sluice::cni::VethPlugin plugin;
  return sluice::cni::pluginMain(plugin);
}
