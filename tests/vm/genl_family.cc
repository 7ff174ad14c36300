// Resolves a generic-netlink family by name and prints its id: the vm suite's smoke test runs it
// inside the guest to prove a host-built binary sees the guest kernel's families (IPVS is only
// registered once ip_vs is loaded). Exit 0 when found, 1 when not, 2 on a usage or socket error.
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FAMILY\n", argv[0]);
    return 2;
  }
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr || genl_connect(sock) != 0) {
    std::fprintf(stderr, "genl_family: cannot open a generic netlink socket\n");
    return 2;
  }
  const int id = genl_ctrl_resolve(sock, argv[1]);
  nl_socket_free(sock);
  if (id < 0) {
    std::fprintf(stderr, "genl_family: %s: %s\n", argv[1], nl_geterror(id));
    return 1;
  }
  std::printf("genl family %s: id %d\n", argv[1], id);
  return 0;
}
