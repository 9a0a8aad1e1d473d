// The server's shared state (server.h), split over server.cpp (setup, routes, the engine
// thread) and completions.cpp (the two generation routes).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <httplib.h>

#include "serve/api_error.h"
#include "serve/metrics.h"
#include "serve/openai_request.h"
#include "serve/server.h"
#include "tokenizer/chat_template.h"

namespace pareto::serve {

using Clock = std::chrono::steady_clock;

struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}

  ServerOptions options;
  httplib::Server http;
  bool bound = false;
  int listen_socket = -1;  // the bound socket (its backlog is raised after binding)
  std::atomic<bool> run_called{false}, run_returned{false}, stop_requested{false};
  ServerMetrics metrics;
  const int64_t started_unix = std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();

  // Set once by attach(); read by HTTP threads through ready().
  std::unique_ptr<Engine> owned_engine;
  std::atomic<bool> ready_flag{false};
  ModelInfo info;
  std::string model_id;
  std::optional<tokenizer::ChatTemplate> chat_template;
  std::string chat_template_error;  // why chat_template is empty
  RequestLimits limits;

  // The engine thread: steps while there is work, else sleeps until woken by a submit.
  std::thread engine_thread;
  std::mutex wake_mutex;
  std::condition_variable wake_cv;
  bool wake = false;
  bool stopping = false;
  std::atomic<uint64_t> next_request{1};

  Engine* ready() const {
    return ready_flag.load(std::memory_order_acquire) ? owned_engine.get() : nullptr;
  }
  void notify_engine();
  void engine_loop();
  void routes();
  void reply_error(httplib::Response& res, const ApiError& error);
  void reply_json(httplib::Response& res, int status, const nlohmann::json& body);
  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  // completions.cpp
  void handle_generation(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  ApiResult<std::string> render_chat(const OpenAiRequest& request) const;
};

// ChatML, for models that ship no template (llama.cpp falls back to the same).
inline constexpr const char* kChatMlTemplate =
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

}  // namespace pareto::serve
