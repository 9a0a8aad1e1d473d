#include "serve/server.h"

#include <sys/socket.h>

#include <utility>

#include "serve/openai_response.h"
#include "serve/server_impl.h"

namespace pareto::serve {

using nlohmann::json;

void Server::Impl::notify_engine() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex);
    wake = true;
  }
  wake_cv.notify_one();
}

void Server::Impl::engine_loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(wake_mutex);
      if (stopping) return;
      if (!owned_engine->has_work()) {
        // Woken by a submit or a cancel; the timeout only bounds a missed wake-up.
        wake_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return wake || stopping; });
        wake = false;
        continue;
      }
    }
    if (Status s = owned_engine->step(); !s) {
      // A failure of the engine itself (requests' own failures end those requests): report it
      // and go on, so that one bad step does not take the server down.
      log("engine step failed: " + s.error().message);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

void Server::Impl::reply_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void Server::Impl::reply_error(httplib::Response& res, const ApiError& error) {
  reply_json(res, error.status, error_body(error));
  if (error.status == 429) res.set_header("Retry-After", "1");
}

namespace {

bool is_public_path(const std::string& path) {
  return path == "/health" || path == "/metrics";
}

}  // namespace

void Server::Impl::routes() {
  http.set_payload_max_length(options.max_body_bytes);
  // Each streamed token is a small write: without TCP_NODELAY, Nagle's algorithm holds it until the
  // client's delayed ACK (~40 ms), which showed up as a 40-50 ms p99 time to first token.
  http.set_tcp_nodelay(true);
  // httplib closes a keep-alive connection after 5 requests by default, and a client that sends
  // its next request as the connection closes gets no answer (a retry at best).
  http.set_keep_alive_max_count(100000);
  // httplib's default sets SO_REUSEPORT, which lets a second server bind the same port and take
  // half its connections; SO_REUSEADDR alone only allows a restart over TIME_WAIT connections.
  http.set_socket_options([this](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_socket = sock;
  });
  const int threads = options.http_threads > 0 ? options.http_threads : 64;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || is_public_path(req.path)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string expected = "Bearer " + options.api_key;
    if (req.get_header_value("Authorization") == expected ||
        req.get_header_value("X-Api-Key") == options.api_key) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    reply_error(res, ApiError{401, "invalid or missing API key (send Authorization: Bearer KEY)",
                              "authentication_error", "", "invalid_api_key"});
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses httplib sets itself (404 no route, 413 body too large, 400 malformed HTTP) get the
  // JSON error body too; responses that already have one keep it.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        ApiError e;
        e.status = res.status;
        if (res.status == 404) {
          e.message = str_cat("no route for ", req.method, " ", req.path);
          e.type = "not_found_error";
          e.code = "unknown_route";
        } else if (res.status == 413) {
          e.message = str_cat("request body larger than ", options.max_body_bytes, " bytes");
          e.code = "body_too_large";
        } else {
          e.message = str_cat("HTTP error ", res.status);
        }
        reply_json(res, res.status, error_body(e));
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        reply_error(res, ApiError{500, "internal error: " + what, "server_error", "", ""});
      });
  http.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    metrics.count_http(res.status);
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (ready()) {
      reply_json(res, 200, {{"status", "ok"}});
    } else {
      reply_json(res, 503, {{"status", "loading"}});
    }
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::optional<EngineCounters> counters;
    if (Engine* e = ready()) counters = e->counters();
    res.set_content(metrics.render(counters ? &*counters : nullptr), "text/plain; version=0.0.4");
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    if (!ready()) return reply_error(res, model_loading_error());
    json model = {{"id", model_id},
                  {"object", "model"},
                  {"created", started_unix},
                  {"owned_by", "pareto"},
                  {"meta",
                   {{"n_vocab", info.n_vocab},
                    {"n_ctx", info.context_length},
                    {"n_ctx_train", info.trained_context_length}}}};
    reply_json(res, 200, {{"object", "list"}, {"data", json::array({model})}});
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generation(Endpoint::kChatCompletions, req, res);
  });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generation(Endpoint::kCompletions, req, res);
  });
  // llama-server's shapes: {"content", "add_special" (false), "parse_special" (true)} ->
  // {"tokens"}; {"tokens"} -> {"content"}.
  http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    Engine* e = ready();
    if (!e) return reply_error(res, model_loading_error());
    auto body = parse_json_object(req.body);
    if (!body) return reply_error(res, body.error());
    const auto content = body->find("content");
    if (content == body->end() || !content->is_string()) {
      return reply_error(res, ApiError{400, "'content' is required and must be a string",
                                       "invalid_request_error", "content", "invalid_type"});
    }
    bool flags[2] = {false, true};
    const char* names[2] = {"add_special", "parse_special"};
    for (int i = 0; i < 2; ++i) {
      const auto it = body->find(names[i]);
      if (it == body->end() || it->is_null()) continue;
      if (!it->is_boolean()) {
        return reply_error(res, ApiError{400, str_cat("'", names[i], "' must be a boolean"),
                                         "invalid_request_error", names[i], "invalid_type"});
      }
      flags[i] = it->get<bool>();
    }
    const auto tokens = e->tokenize(content->get<std::string>(), flags[0], flags[1]);
    reply_json(res, 200, {{"tokens", tokens}});
  });
  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    Engine* e = ready();
    if (!e) return reply_error(res, model_loading_error());
    auto body = parse_json_object(req.body);
    if (!body) return reply_error(res, body.error());
    const auto tokens = body->find("tokens");
    if (tokens == body->end() || !tokens->is_array()) {
      return reply_error(res, ApiError{400, "'tokens' is required and must be an array of ids",
                                       "invalid_request_error", "tokens", "invalid_type"});
    }
    auto ids = token_array(*tokens, "tokens", info.n_vocab);
    if (!ids) return reply_error(res, ids.error());
    reply_json(res, 200, {{"content", e->detokenize(*ids)}});
  });
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->routes();
}

Server::~Server() {
  stop();
}

Result<int> Server::bind() {
  Impl& s = *impl_;
  int port = s.options.port;
  if (port < 0 || port > 65535) return make_error("port must be in [0, 65535], got ", port);
  if (port == 0) {
    port = s.http.bind_to_any_port(s.options.host);
    if (port <= 0) return make_error("cannot bind ", s.options.host, " (any port)");
  } else if (!s.http.bind_to_port(s.options.host, port)) {
    return make_error("cannot bind ", s.options.host, ":", port,
                      " (in use, or not an address of this machine)");
  }
  // httplib listens with a backlog of 5: 16 clients connecting at once overflowed it, and the
  // dropped connections' SYNs were retried after 1 s (a 1-s time to first token seen at 16
  // streams). Listening again on the bound socket raises the backlog.
  if (s.listen_socket >= 0) ::listen(s.listen_socket, SOMAXCONN);
  s.bound = true;
  return port;
}

Status Server::attach(std::unique_ptr<Engine> engine) {
  Impl& s = *impl_;
  if (!engine) return make_error("Server::attach: no engine");
  s.info = engine->model_info();
  s.model_id = s.options.model_id.empty() ? s.info.name : s.options.model_id;
  if (!s.options.chat_template.empty()) {
    // A template the operator chose must work: refuse to start otherwise.
    PARETO_TRY(auto tmpl, tokenizer::ChatTemplate::parse(s.options.chat_template));
    s.chat_template.emplace(std::move(tmpl));
  } else {
    // The model's own: if it uses something the interpreter lacks, completions still serve and
    // chat requests get a 400 that names the construct.
    auto tmpl = tokenizer::ChatTemplate::parse(
        s.info.chat_template.empty() ? std::string(kChatMlTemplate) : s.info.chat_template);
    if (tmpl) {
      s.chat_template.emplace(std::move(*tmpl));
    } else {
      s.chat_template_error = "the model's chat template cannot be used: " + tmpl.error().message +
                              " (pass one with --chat-template FILE)";
    }
  }
  s.limits.n_vocab = s.info.n_vocab;
  s.limits.max_choices = s.options.max_choices;
  s.owned_engine = std::move(engine);
  s.engine_thread = std::thread([&s] { s.engine_loop(); });
  s.ready_flag.store(true, std::memory_order_release);
  return ok();
}

void Server::run() {
  Impl& s = *impl_;
  if (!s.bound) return;
  s.run_called = true;
  if (!s.stop_requested) s.http.listen_after_bind();
  s.run_returned = true;
}

void Server::stop() {
  Impl& s = *impl_;
  // httplib's stop() only ends a loop that is already listening, so a stop() racing a run() that
  // has not started listening yet is repeated until run() returns; a run() after stop() returns
  // at once.
  s.stop_requested = true;
  s.http.stop();
  while (s.run_called && !s.run_returned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s.http.stop();
  }
  {
    std::lock_guard<std::mutex> lock(s.wake_mutex);
    s.stopping = true;
  }
  s.wake_cv.notify_all();
  if (s.engine_thread.joinable()) s.engine_thread.join();
}

const ServerMetrics& Server::metrics() const {
  return impl_->metrics;
}

}  // namespace pareto::serve
