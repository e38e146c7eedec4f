// systemd's readiness protocol: one AF_UNIX datagram to $NOTIFY_SOCKET.
// Node cannot send one (dgram has no unix sockets), so the addon does.
#ifndef WEFT_SD_NOTIFY_H_
#define WEFT_SD_NOTIFY_H_

#include <stddef.h>

namespace weft {

// Sends `state` (e.g. "READY=1\nSTATUS=...") to the socket at `path`; a
// leading '@' means the abstract namespace. Returns 0, or an errno
// (ENAMETOOLONG for a path that does not fit sockaddr_un). Opens and closes
// its own socket on every call: notifications are rare.
int sd_notify_send(const char* path, const char* state, size_t state_len);

}  // namespace weft

#endif  // WEFT_SD_NOTIFY_H_
