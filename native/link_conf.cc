// rtnetlink requests for per-device IPv4 settings: see link_conf.h.
#include "link_conf.h"

#include <errno.h>
#include <linux/ip.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace weft {
namespace {

// A request with room for IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { [id] = u32 } } }.
struct SetLinkRequest {
  nlmsghdr nh;
  ifinfomsg ifi;
  alignas(NLA_ALIGNTO) uint8_t attrs[64];
};

// Appends an attribute header at `at` (payload follows, `len` bytes); returns it for nesting.
nlattr* put_attr(SetLinkRequest* r, size_t* at, uint16_t type, uint16_t len) {
  nlattr* a = reinterpret_cast<nlattr*>(r->attrs + *at);
  a->nla_type = type;
  a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  *at += NLA_HDRLEN;
  return a;
}

void close_nest(SetLinkRequest* r, nlattr* a, size_t at) {
  a->nla_len = static_cast<uint16_t>(r->attrs + at - reinterpret_cast<uint8_t*>(a));
}

}  // namespace

int set_accept_local(const char* ifname) {
  const unsigned index = if_nametoindex(ifname);
  if (index == 0) return errno;

  SetLinkRequest req;
  memset(&req, 0, sizeof(req));
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = static_cast<int>(index);
  size_t at = 0;
  nlattr* spec = put_attr(&req, &at, IFLA_AF_SPEC | NLA_F_NESTED, 0);
  nlattr* inet = put_attr(&req, &at, AF_INET | NLA_F_NESTED, 0);
  nlattr* conf = put_attr(&req, &at, IFLA_INET_CONF | NLA_F_NESTED, 0);
  put_attr(&req, &at, IPV4_DEVCONF_ACCEPT_LOCAL, sizeof(uint32_t));
  const uint32_t on = 1;
  memcpy(req.attrs + at, &on, sizeof(on));
  at += NLA_ALIGN(sizeof(on));
  close_nest(&req, conf, at);
  close_nest(&req, inet, at);
  close_nest(&req, spec, at);
  req.nh.nlmsg_len = static_cast<uint32_t>(offsetof(SetLinkRequest, attrs) + at);
  req.nh.nlmsg_type = RTM_SETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;

  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno;
  // The kernel acks at once; bound the wait all the same, so start-up never hangs here.
  const timeval ack_wait{2, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &ack_wait, sizeof(ack_wait)) != 0) {
    const int e = errno;
    close(fd);
    return e;
  }
  int err = 0;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, &req, req.nh.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
  } while (n < 0 && errno == EINTR);
  if (n < 0) err = errno;

  // The kernel answers with one NLMSG_ERROR: error 0 is the ack.
  alignas(nlmsghdr) uint8_t reply[512];
  while (err == 0) {
    do {
      n = recv(fd, reply, sizeof(reply), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      err = errno;
      break;
    }
    const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(reply);
    if (n < static_cast<ssize_t>(sizeof(nlmsghdr)) || !NLMSG_OK(h, static_cast<unsigned>(n))) {
      err = EPROTO;
      break;
    }
    if (h->nlmsg_seq != req.nh.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR) continue;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
      err = EPROTO;
      break;
    }
    err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
    break;
  }
  close(fd);
  return err;
}

}  // namespace weft
