#include "serve/connection.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>

namespace pareto::serve {

namespace {

// The port of `a`, and its address as text (inet_ntop's form, as httplib writes remote_addr).
bool describe(const sockaddr_storage& a, std::string* addr, int* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    *port = ntohs(v4->sin_port);
    if (addr && !inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text))) return false;
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    *port = ntohs(v6->sin6_port);
    if (addr && !inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text))) return false;
  } else {
    return false;
  }
  if (addr) *addr = text;
  return true;
}

}  // namespace

int ClientConnection::find(const std::string& peer_addr, int peer_port, int local_port) {
  int found = -1;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return found;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st {};
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;
    }
    int lport = -1, pport = -1;
    std::string paddr;
    if (!describe(local, nullptr, &lport) || !describe(peer, &paddr, &pport)) continue;
    if (lport == local_port && pport == peer_port && paddr == peer_addr) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

bool ClientConnection::closed() {
  if (!looked_up_ && peer_port_ >= 0) fd_ = find(peer_addr_, peer_port_, local_port_);
  looked_up_ = true;
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace pareto::serve
