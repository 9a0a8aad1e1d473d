// The server over raw TCP. Malformed HTTP framing: truncated request lines and headers, bodies
// shorter or longer than Content-Length, absurd lengths, broken chunked encoding, oversized
// header lines, binary garbage, and random mutations of valid requests; whatever comes back is
// never a 5xx, the server never crashes or hangs, and it still serves a valid request afterwards.
// And a client that closes its connection while its non-streamed request generates: the
// generation is cancelled (a streamed one is covered by server_test.cpp).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "serve/server_fixture.h"

namespace pareto::serve {
namespace {

// Sends `bytes`, half-closes unless told not to (a client that leaves: a generation it asked for
// is cancelled), and returns what the server answered (empty if it just closed).
std::string send_raw(int port, const std::string& bytes, bool half_close = true) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (a header it refused)
    sent += static_cast<size_t>(n);
  }
  if (half_close) ::shutdown(fd, SHUT_WR);  // the server sees the end now, not at its timeout
  std::string reply;
  char buf[4096];
  pollfd p{fd, POLLIN, 0};
  // The server's own timeouts are 5 s; 20 s without a byte would be a hang.
  while (::poll(&p, 1, 20000) > 0) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return reply;
}

// The status codes of every response in `reply` (keep-alive may carry several).
std::vector<int> statuses(const std::string& reply) {
  std::vector<int> out;
  for (size_t at = reply.find("HTTP/1."); at != std::string::npos;
       at = reply.find("HTTP/1.", at + 1)) {
    if (at + 12 <= reply.size()) out.push_back(std::atoi(reply.substr(at + 9, 3).c_str()));
  }
  return out;
}

void expect_no_server_error(const std::string& request, const std::string& reply) {
  for (int status : statuses(reply)) {
    EXPECT_LT(status, 500) << "request: " << testing::PrintToString(request.substr(0, 200))
                           << "\nreply: " << reply.substr(0, 300);
  }
}

const std::string kValid =
    "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    "Content-Length: 48\r\nConnection: close\r\n\r\n"
    R"({"prompt": "Once upon", "max_tokens": 4, "n": 1})";

TEST(HttpFraming, MalformedRequestsGetNoServerErrorAndTheServerGoesOn) {
  ServerOptions o;
  RunningServer s(o);
  ASSERT_EQ(statuses(send_raw(s.port, kValid, false)), std::vector<int>{200});
  const std::string long_header(20000, 'a');
  const std::vector<std::string> cases = {
      "",
      "GET",
      "GET /health HTTP/1.1\r\n",  // no blank line
      "GET /health HTTP/9.9\r\n\r\n",
      "\x00\xff\xfe garbage \r\n\r\n",
      "POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"prompt\":",  // short body
      "POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n{}",
      "POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}",
      "POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}{\"extra\": true}",
      "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
      "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"pr",
      "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
      "GET /health HTTP/1.1\r\nX-Long: " + long_header + "\r\n\r\n",
      "GET /" + long_header + " HTTP/1.1\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 9\r\n\r\n{}",
      "POST /v1/completions HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
      "Content-Length: 20\r\n\r\n--x\r\nbroken\r\n--x--",
      "GET /health HTTP/1.1\r\nHost\r\n\r\n",  // a header without a colon
      "BREW /v1/completions HTTP/1.1\r\n\r\n",
  };
  for (const std::string& request : cases)
    expect_no_server_error(request, send_raw(s.port, request));

  // Random mutations of a valid request: bytes flipped, cut, or repeated.
  std::mt19937 rng(1234);
  for (int i = 0; i < 150; ++i) {
    std::string request = kValid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !request.empty(); ++e) {
      const size_t at = rng() % request.size();
      switch (rng() % 3) {
        case 0:
          request[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          request.resize(at);
          break;
        default:
          request.insert(at, request.substr(at, rng() % 16));
          break;
      }
    }
    expect_no_server_error(request, send_raw(s.port, request));
  }
  EXPECT_EQ(statuses(send_raw(s.port, kValid, false)), std::vector<int>{200});
}

double metric(httplib::Client& c, const std::string& name) {
  auto r = c.Get("/metrics");
  if (!r) return -1;
  const std::string key = "\n" + name + " ";
  const size_t at = r->body.find(key);
  return at == std::string::npos ? -1 : std::stod(r->body.substr(at + key.size()));
}

TEST(ClientConnection, ANonStreamedRequestIsCancelledWhenItsClientLeaves) {
  ServerOptions o;
  RunningServer s(o);
  auto c = s.client();
  const double before = metric(c, "pareto_generation_tokens_total");
  const double pages = metric(c, "pareto_kv_cache_pages_in_use");
  // 16 choices of 240 tokens each: far more than the time below allows.
  const std::string body =
      R"({"prompt": "Once upon a time", "n": 16, "max_tokens": 240, "ignore_eos": true})";
  const std::string request =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(s.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  // Wait until it generates, then leave without reading anything.
  for (int i = 0; i < 500 && metric(c, "pareto_generation_tokens_total") == before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::close(fd);
  for (int i = 0; i < 500 && metric(c, "pareto_requests_running") != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(metric(c, "pareto_requests_running"), 0);
  EXPECT_LT(metric(c, "pareto_generation_tokens_total") - before, 16 * 240);
  EXPECT_EQ(metric(c, "pareto_kv_cache_pages_in_use"), pages);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("pareto_requests_total{outcome=\"cancelled\"} 16"), std::string::npos)
      << m->body.substr(0, 3000);
}

}  // namespace
}  // namespace pareto::serve
