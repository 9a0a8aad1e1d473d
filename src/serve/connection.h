// ClientConnection: the socket a request arrived on, to notice a client that went away while its
// request is still generating (a non-streamed one writes nothing until the end, so no failed write
// would tell). cpp-httplib 0.11 (Debian bookworm's) does not hand the socket to handlers, so it is
// found among this process's descriptors by the connection's two ports and the peer's address.
// Linux only (/proc/self/fd, POLLRDHUP).
#pragma once

#include <string>
#include <utility>

namespace pareto::serve {

class ClientConnection {
 public:
  ClientConnection() = default;  // no connection: closed() is always false
  // The connection local_port <- peer_addr:peer_port. Its descriptor is looked up on the first
  // closed() (a request answered at once never pays for the scan); not found, closed() is always
  // false.
  ClientConnection(std::string peer_addr, int peer_port, int local_port)
      : peer_addr_(std::move(peer_addr)), peer_port_(peer_port), local_port_(local_port) {}
  // Whether the client closed or reset the connection (or half-closed it: an HTTP client that has
  // sent its request and shuts down its side has left). Does not block. One thread at a time.
  bool closed();

 private:
  static int find(const std::string& peer_addr, int peer_port, int local_port);

  std::string peer_addr_;
  int peer_port_ = -1;
  int local_port_ = -1;
  bool looked_up_ = false;
  int fd_ = -1;
};

}  // namespace pareto::serve
