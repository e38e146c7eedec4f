// One netlink conversation with the kernel: a batch of requests out, every
// answer back. weftd builds and parses the messages in TypeScript
// (src/host/netlink.ts); this only moves the bytes. No Node-API here.
#ifndef WEFT_NETLINK_H_
#define WEFT_NETLINK_H_

#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace weft {

// Sends `len` bytes of requests, whole netlink messages back to back, each
// with its own nlmsg_seq and asking for an ack (NLM_F_ACK) or a dump
// (NLM_F_DUMP), on a fresh socket of `protocol` (NETLINK_ROUTE,
// NETLINK_NETFILTER) in the caller's network namespace; then appends the
// kernel's reply messages to *replies until every request is answered: an
// NLMSG_ERROR for an acked request (error 0 is the ack), NLMSG_DONE or
// NLMSG_ERROR for a dump. Requests asking for neither get no answer and are
// not waited for (nfnetlink's batch begin and end). Extended acks are on
// (NLMSGERR_ATTR_MSG says why the kernel refused), and refused requests are
// not echoed back (NETLINK_CAP_ACK).
//
// At most kWindow requests are in flight, so the acks never overrun the
// socket's receive buffer; each receive waits at most 2 s. Returns 0, or
// the errno of the socket step that failed (ETIMEDOUT when the kernel did
// not answer, EPROTO for a reply that does not parse, EINVAL for requests
// that do not parse): a request the kernel refused is not a failure here,
// its NLMSG_ERROR is among the replies. Holds nothing open after.
int netlink_transact(int protocol, const uint8_t* req, size_t len, std::vector<uint8_t>* replies);

}  // namespace weft

#endif  // WEFT_NETLINK_H_
