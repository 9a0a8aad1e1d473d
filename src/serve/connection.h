// ClientConnection: the socket a request arrived on, to notice a client that went away while its
// request is still generating (a non-streamed one writes nothing until the end, so no failed write
// would tell). cpp-httplib 0.11 (Debian bookworm's) does not hand the socket to handlers, so it is
// found among this process's descriptors by the connection's two ports and the peer's address.
// Linux only (/proc/self/fd, POLLRDHUP).
#pragma once

#include <string>

namespace pareto::serve {

class ClientConnection {
 public:
  // The connection local_port <- peer_addr:peer_port; not found (closed() always false) when no
  // descriptor matches.
  static ClientConnection find(const std::string& peer_addr, int peer_port, int local_port);
  bool found() const { return fd_ >= 0; }
  // Whether the client closed or reset the connection (or half-closed it: an HTTP client that has
  // sent its request and shuts down its side has left). Does not block.
  bool closed() const;

 private:
  int fd_ = -1;
};

}  // namespace pareto::serve
