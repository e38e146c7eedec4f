// One netlink conversation with the kernel: see netlink.h.
#include "netlink.h"

#include <errno.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace weft {
namespace {

// Requests answered per round trip: their acks (each its own skb, about
// 700 bytes of receive buffer) stay well inside the default 208 KiB.
constexpr size_t kWindow = 64;
// One receive: the kernel sizes dump messages to fit 32 KiB.
constexpr size_t kReceiveSize = 64 * 1024;

struct Request {
  size_t offset;
  size_t length;
  uint32_t seq;
  bool answered;
};

bool answered(const nlmsghdr& h) {
  return (h.nlmsg_flags & NLM_F_ACK) != 0 || (h.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
}

// The requests in `req`; false when they do not parse as whole messages.
bool split_requests(const uint8_t* req, size_t len, std::vector<Request>* out) {
  size_t at = 0;
  while (at < len) {
    nlmsghdr h;
    if (len - at < sizeof(h)) return false;
    memcpy(&h, req + at, sizeof(h));
    if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len - at) return false;
    out->push_back({at, h.nlmsg_len, h.nlmsg_seq, answered(h)});
    at += NLMSG_ALIGN(h.nlmsg_len) < len - at ? NLMSG_ALIGN(h.nlmsg_len) : len - at;
  }
  return true;
}

int open_socket(int protocol) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return -errno;
  const int on = 1;
  // The kernel answers at once; bound the wait all the same, so nothing hangs here.
  const timeval wait{2, 0};
  if (setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on)) != 0 || setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof(on)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait)) != 0) {
    const int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int send_all(int fd, const uint8_t* data, size_t len) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, data, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  return static_cast<size_t>(n) == len ? 0 : EMSGSIZE;
}

// Receives until every sequence number in `pending` is answered, appending
// each reply message to *replies and erasing answered numbers from `pending`.
int receive_answers(int fd, std::vector<uint32_t>* pending, std::vector<uint8_t>* buf, std::vector<uint8_t>* replies) {
  while (!pending->empty()) {
    ssize_t n;
    do {
      n = recv(fd, buf->data(), buf->size(), MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno;
    if (static_cast<size_t>(n) > buf->size()) return EMSGSIZE;
    size_t left = static_cast<size_t>(n);
    const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(buf->data());
    for (; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      const uint8_t* bytes = reinterpret_cast<const uint8_t*>(h);
      replies->insert(replies->end(), bytes, bytes + h->nlmsg_len);
      if (h->nlmsg_type != NLMSG_ERROR && h->nlmsg_type != NLMSG_DONE) continue;
      for (size_t i = 0; i < pending->size(); i++) {
        if ((*pending)[i] != h->nlmsg_seq) continue;
        (*pending)[i] = pending->back();
        pending->pop_back();
        break;
      }
    }
    if (left != 0) return EPROTO;
  }
  return 0;
}

}  // namespace

int netlink_transact(int protocol, const uint8_t* req, size_t len, std::vector<uint8_t>* replies) {
  std::vector<Request> requests;
  if (!split_requests(req, len, &requests)) return EINVAL;
  const int fd = open_socket(protocol);
  if (fd < 0) return -fd;
  std::vector<uint8_t> buf(kReceiveSize);
  std::vector<uint32_t> pending;
  int err = 0;
  size_t first = 0;
  while (err == 0 && first < requests.size()) {
    // A window: up to kWindow answered requests, with the unanswered ones
    // around them (an nfnetlink batch's end marker stays with its batch).
    size_t last = first;
    size_t count = 0;
    pending.clear();
    for (; last < requests.size(); last++) {
      if (requests[last].answered) {
        if (count == kWindow) break;
        count++;
        pending.push_back(requests[last].seq);
      }
    }
    const Request& a = requests[first];
    const Request& z = requests[last - 1];
    err = send_all(fd, req + a.offset, z.offset + z.length - a.offset);
    if (err == 0) err = receive_answers(fd, &pending, &buf, replies);
    first = last;
  }
  close(fd);
  return err;
}

}  // namespace weft
