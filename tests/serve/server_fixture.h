// What the server tests share: stories260K behind a Server on an ephemeral loopback port.
#pragma once

#include <httplib.h>

#include <string>
#include <thread>

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

}  // namespace pareto::serve
