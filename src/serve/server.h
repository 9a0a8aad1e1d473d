// pareto serve: an OpenAI-compatible HTTP server over one Engine.
//
//   HTTP threads (cpp-httplib pool) --parse, template, tokenize--> Engine::submit (queue)
//   engine thread: Engine::step() while there is work (continuous batching, chunked prefill)
//   callbacks (engine thread) --events--> the HTTP thread of each request --SSE or JSON--> client
//
// No fixed slots: every request may use the whole context while the shared KV pool lasts; the
// queue is bounded (429 with Retry-After beyond it). A streaming client that disconnects has its
// generation cancelled at the next token it would have received (its pages return at once).
// /health and /metrics never wait behind generation. The library never prints: one line per
// request goes to ServerOptions::log when set.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "pareto/pareto.h"
#include "serve/metrics.h"

namespace pareto::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0: any free port (bind() returns it)
  std::string api_key;             // "": no authentication; else "Authorization: Bearer KEY"
  size_t max_body_bytes = size_t{8} << 20;  // larger bodies: 413
  int http_threads = 64;                    // connections served at once (each stream holds one)
  // Jinja source overriding the model's tokenizer.chat_template; "" keeps the model's, and a
  // model without one gets ChatML.
  std::string chat_template;
  std::string model_id;          // the name /v1/models lists; "": the model's name
  int max_choices = 16;          // n (x prompts) per request
  std::string default_strategy;  // decoding strategy for requests that name none
  // KV budget for requests that set neither kv_policy nor kv_budget ("" and "": none).
  std::string default_kv_policy, default_kv_budget;
  std::function<void(std::string_view line)> log;  // one line per request; null: silent
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port; returns the bound port. Until attach(), /health answers 503 and the
  // generation routes 503 "loading".
  Result<int> bind();
  // Hands the loaded engine over and starts the engine thread. Errors: the chat template does not
  // parse (the message names the construct and line).
  Status attach(std::unique_ptr<Engine> engine);
  // Serves until stop() (returns at once if bind() failed or was not called).
  void run();
  // Thread-safe; ends run(), cancels running requests, joins the engine thread.
  void stop();
  const ServerMetrics& metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pareto::serve
