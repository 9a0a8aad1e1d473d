// What the server tests share: stories260K behind a Server on an ephemeral loopback port.
#pragma once

#include <httplib.h>

#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "serve/server.h"
#include "test_util.h"

namespace pareto::serve {

inline std::string model_path() {
  return test::shared_path("models/stories260K/stories260K.gguf");
}

inline LoadOptions engine_options() {
  LoadOptions o;
  o.n_threads = 2;
  o.max_sequences = 8;
  o.max_queue = 64;
  o.context_length = 256;
  o.kv_cache_tokens = -1;
  o.batch_invariant = true;  // a request's output does not depend on what shares its steps
  return o;
}

// A server on an ephemeral loopback port, running on its own thread.
struct RunningServer {
  explicit RunningServer(ServerOptions options, LoadOptions load = engine_options(),
                         bool attach_engine = true, const std::string& model = model_path())
      : server(with_any_port(std::move(options))) {
    auto bound = server.bind();
    EXPECT_TRUE(bound) << bound.error().message;
    port = bound.value_or(0);
    thread = std::thread([this] { server.run(); });
    if (attach_engine) {
      auto engine = Engine::load(model, load);
      EXPECT_TRUE(engine) << engine.error().message;
      auto attached = server.attach(std::move(*engine));
      EXPECT_TRUE(attached) << attached.error().message;
    }
  }
  ~RunningServer() {
    server.stop();
    thread.join();
  }
  static ServerOptions with_any_port(ServerOptions o) {
    o.port = 0;
    return o;
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
  Server server;
  int port = 0;
  std::thread thread;
};

// Replies and metrics as the server tests read them.
struct Reply {
  int status = 0;
  nlohmann::json body;
  std::string raw;
};

inline Reply post(httplib::Client& c, const std::string& path, const std::string& body,
                  const httplib::Headers& headers = {}) {
  auto r = c.Post(path, headers, body, "application/json");
  Reply reply;
  if (!r) return reply;
  reply.status = r->status;
  reply.raw = r->body;
  reply.body = nlohmann::json::parse(r->body, nullptr, false);
  return reply;
}

// The engine's own greedy text for a prompt (a server reply must equal it).
inline std::string engine_text(const std::string& prompt, int max_tokens) {
  static std::unique_ptr<Engine> engine = [] {
    auto e = Engine::load(model_path(), engine_options());
    EXPECT_TRUE(e) << e.error().message;
    return std::move(*e);
  }();
  GenerateParams p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  auto g = engine->generate(prompt, p);
  EXPECT_TRUE(g) << g.error().message;
  return g ? g->text : "";
}

// A gauge of /metrics (-1: missing).
inline int gauge(httplib::Client& c, const std::string& name) {
  auto r = c.Get("/metrics");
  const std::string key = "\n" + name + " ";
  const size_t at = r ? r->body.find(key) : std::string::npos;
  return at == std::string::npos ? -1 : std::stoi(r->body.substr(at + key.size()));
}

inline int requests_running(httplib::Client& c) {
  return gauge(c, "pareto_requests_running");
}

}  // namespace pareto::serve
