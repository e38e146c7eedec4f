// Per-device IPv4 settings set over rtnetlink rather than /proc/sys, so
// weftd works where /proc/sys is read-only (systemd's ProtectKernelTunables).
// No Node-API here.
#ifndef WEFT_LINK_CONF_H_
#define WEFT_LINK_CONF_H_

namespace weft {

// Sets net.ipv4.conf.<ifname>.accept_local to 1 (RTM_SETLINK with
// IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF), in the caller's network namespace.
// Needs CAP_NET_ADMIN there. Returns 0, or the errno of the failing step
// (ENODEV: no such device; EPERM: no CAP_NET_ADMIN). Holds nothing open after.
int set_accept_local(const char* ifname);

}  // namespace weft

#endif  // WEFT_LINK_CONF_H_
