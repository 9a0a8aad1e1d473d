// POST /v1/chat/completions and /v1/completions: parse, template, tokenize, submit one engine
// request per choice, then answer with one JSON body or a stream of Server-Sent Events.
//
// The engine thread's callbacks only queue events (text, done) on the request's Exchange; the
// request's HTTP thread turns them into bytes. A failed write (the client went away) cancels
// every choice of the request, so its KV pages return to the pool at the next step.
#include <cstdio>
#include <deque>
#include <span>
#include <utility>
#include <vector>

#include "serve/connection.h"
#include "serve/openai_response.h"
#include "serve/server_impl.h"

namespace pareto::serve {
namespace {

using nlohmann::json;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Event {
  int choice = 0;
  std::string text;
  bool done = false;
  std::optional<Result<Generation>> result;  // with done
  std::vector<TokenLogprob> logprobs;        // of the tokens since the last event with text
};

json piece_bytes(const std::string& piece) {
  json bytes = json::array();
  for (char c : piece) bytes.push_back(static_cast<int>(static_cast<unsigned char>(c)));
  return bytes;
}

// OpenAI's chat form: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}.
json chat_logprobs(const Engine& engine, std::span<const TokenLogprob> lps) {
  json content = json::array();
  for (const TokenLogprob& lp : lps) {
    json top = json::array();
    for (const auto& [id, logprob] : lp.top) {
      const std::string piece = engine.token_piece(id);
      top.push_back({{"token", piece}, {"logprob", logprob}, {"bytes", piece_bytes(piece)}});
    }
    const std::string piece = engine.token_piece(lp.token);
    content.push_back({{"token", piece},
                       {"logprob", lp.logprob},
                       {"bytes", piece_bytes(piece)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

// The legacy completions form: parallel arrays, top_logprobs as {token text: logprob} objects,
// text_offset in bytes from the start of the choice's text (`offset` carries it across chunks).
json completion_logprobs(const Engine& engine, std::span<const TokenLogprob> lps, int64_t& offset) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();
  for (const TokenLogprob& lp : lps) {
    const std::string piece = engine.token_piece(lp.token);
    tokens.push_back(piece);
    token_logprobs.push_back(lp.logprob);
    json alternatives = json::object();
    for (const auto& [id, logprob] : lp.top) alternatives[engine.token_piece(id)] = logprob;
    top.push_back(std::move(alternatives));
    offsets.push_back(offset);
    offset += static_cast<int64_t>(piece.size());
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top)},
          {"text_offset", std::move(offsets)}};
}

// One request's choices as the engine runs them; shared by the HTTP thread and the callbacks.
struct Exchange {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Event> events;  // guarded by mutex
  int finished = 0;          // choices done; guarded by mutex
  std::vector<uint64_t> ids;
  std::atomic<bool> abandoned{false};
  Clock::time_point received = Clock::now();
  bool stream = false;
  // Engine thread only: per-choice time of the last token, and whether the first came; logprobs
  // of tokens whose text is not out yet.
  std::vector<std::vector<TokenLogprob>> pending_logprobs;
  std::vector<Clock::time_point> last_token;
  std::vector<bool> got_token;
  bool first_seen = false;
  double ttft_seconds = -1;  // written by the engine thread before the first event it queues
};

void cancel_all(Engine& engine, Exchange& ex) {
  ex.abandoned = true;
  for (uint64_t id : ex.ids) engine.cancel(id);
}

// How often a waiting request looks at its connection: a client that left is cancelled within
// this (a step of a small model is shorter; the engine drops the sequence at its next step).
constexpr auto kConnectionCheck = std::chrono::milliseconds(20);

// Waits up to `limit` for events of `ex` and moves them to `out`. Returns false, with nothing
// waited for, once the client has closed its connection.
bool wait_events(Exchange& ex, ClientConnection& connection,
                 std::chrono::steady_clock::duration limit, std::deque<Event>& out) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(ex.mutex);
      const auto slice = std::min<std::chrono::steady_clock::duration>(
          kConnectionCheck, deadline - std::chrono::steady_clock::now());
      ex.cv.wait_for(lock, slice, [&] { return !ex.events.empty(); });
      if (!ex.events.empty()) {
        out.swap(ex.events);
        return true;
      }
    }
    if (connection.closed()) return false;
    if (std::chrono::steady_clock::now() >= deadline) return true;
  }
}

// What the request did, for the log line and the request metrics.
struct Outcome {
  std::vector<ChoiceText> choices;
  Usage usage;
  std::optional<ApiError> error;
  bool cancelled = false;
  double generate_seconds = 0;
};

}  // namespace

ApiResult<std::string> Server::Impl::render_chat(const OpenAiRequest& r) const {
  if (!chat_template) {
    return bad_request(chat_template_error, "messages", "unsupported_chat_template");
  }
  nlohmann::ordered_json context = r.chat_template_kwargs;
  context["messages"] = r.messages;
  context["add_generation_prompt"] = r.add_generation_prompt;
  context["bos_token"] = info.bos_token;
  context["eos_token"] = info.eos_token;
  if (!r.tools.is_null()) context["tools"] = r.tools;
  auto rendered = chat_template->render(context);
  if (!rendered) {
    return bad_request(rendered.error().message, "messages",
                       rendered.error().code == ErrorCode::kUnsupported
                           ? "unsupported_chat_template"
                           : "chat_template_error");
  }
  std::string text = std::move(*rendered);
  // Templates write BOS themselves and the tokenizer adds it too: keep one (llama.cpp does so).
  if (!info.bos_token.empty() && text.starts_with(info.bos_token)) {
    text.erase(0, info.bos_token.size());
  }
  return text;
}

void Server::Impl::handle_generation(Endpoint endpoint, const httplib::Request& req,
                                     httplib::Response& res) {
  Engine* engine = ready();
  if (!engine) return reply_error(res, model_loading_error());
  auto parsed = parse_openai_request(endpoint, req.body, limits);
  if (!parsed) return reply_error(res, parsed.error());
  OpenAiRequest& r = *parsed;
  if (r.params.strategy.empty()) r.params.strategy = options.default_strategy;
  if (r.params.kv_policy.empty() && r.params.kv_budget.empty()) {
    r.params.kv_policy = options.default_kv_policy;
    r.params.kv_budget = options.default_kv_budget;
  }

  // The prompts as token ids.
  std::vector<std::vector<int32_t>> prompts;
  if (endpoint == Endpoint::kChatCompletions) {
    auto text = render_chat(r);
    if (!text) return reply_error(res, text.error());
    prompts.push_back(engine->tokenize(*text, true, true));
  } else {
    for (Prompt& p : r.prompts) {
      prompts.push_back(p.is_tokens ? std::move(p.tokens) : engine->tokenize(p.text, true, true));
    }
  }

  const uint64_t serial = next_request++;
  const bool chat = endpoint == Endpoint::kChatCompletions;
  ResponseHeader header;
  header.endpoint = endpoint;
  header.id = str_cat(chat ? "chatcmpl-" : "cmpl-", started_unix, "-", serial);
  header.created = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  header.model = model_id;

  auto ex = std::make_shared<Exchange>();
  ex->stream = r.stream;
  const int n_choices = static_cast<int>(prompts.size()) * r.n;
  ex->last_token.resize(static_cast<size_t>(n_choices));
  ex->got_token.resize(static_cast<size_t>(n_choices), false);
  ex->pending_logprobs.resize(static_cast<size_t>(n_choices));
  Usage usage;
  for (const auto& p : prompts) usage.prompt_tokens += static_cast<int64_t>(p.size());

  for (int c = 0; c < n_choices; ++c) {
    GenerateParams params = r.params;
    params.seed += static_cast<uint64_t>(c % r.n);  // choices of one prompt differ
    auto on_text = [this, ex, c](std::string_view text, int32_t token) {
      if (ex->abandoned) return false;
      const auto now = Clock::now();
      if (token >= 0) {
        const auto i = static_cast<size_t>(c);
        if (!ex->got_token[i]) {
          ex->got_token[i] = true;
          if (!ex->first_seen) {
            ex->first_seen = true;
            ex->ttft_seconds = seconds_between(ex->received, now);
            metrics.time_to_first_token.observe(ex->ttft_seconds);
          }
        } else {
          metrics.inter_token_latency.observe(seconds_between(ex->last_token[i], now));
        }
        ex->last_token[i] = now;
      }
      if (ex->stream && !text.empty()) {
        std::lock_guard<std::mutex> lock(ex->mutex);
        auto& pending = ex->pending_logprobs[static_cast<size_t>(c)];
        ex->events.push_back(Event{c, std::string(text), false, std::nullopt, std::move(pending)});
        pending.clear();
        ex->cv.notify_all();
      }
      return true;
    };
    auto on_done = [ex, c](const Result<Generation>& result) {
      std::lock_guard<std::mutex> lock(ex->mutex);
      auto& pending = ex->pending_logprobs[static_cast<size_t>(c)];
      ex->events.push_back(Event{c, {}, true, result, std::move(pending)});
      pending.clear();
      ex->cv.notify_all();
    };
    LogprobCallback on_logprob;
    if (r.stream && params.logprobs >= 0) {
      on_logprob = [ex, c](const TokenLogprob& lp) {
        ex->pending_logprobs[static_cast<size_t>(c)].push_back(lp);
      };
    }
    auto id = engine->submit(prompts[static_cast<size_t>(c / r.n)], params, std::move(on_text),
                             std::move(on_done), std::move(on_logprob));
    if (!id) {
      cancel_all(*engine, *ex);
      notify_engine();
      metrics.count_request("rejected");
      ApiError e = api_error_from(id.error());
      if (e.status == 400 && id.error().code == ErrorCode::kInvalidArgument &&
          id.error().message.find("strategy") != std::string::npos) {
        e.param = "strategy";
      }
      return reply_error(res, e);
    }
    ex->ids.push_back(*id);
  }
  notify_engine();

  // Turns a finished choice's result into the outcome; returns false for an error.
  const int n_per_prompt = r.n;
  const bool whole_logprobs = !r.stream && r.params.logprobs >= 0;
  auto settle = [this, ex, n_per_prompt, whole_logprobs, chat, engine](const Event& ev,
                                                                       Outcome& out) {
    const Result<Generation>& result = *ev.result;
    if (!result) {
      if (result.error().code == ErrorCode::kCancelled) {
        out.cancelled = true;
        metrics.count_request("cancelled");
        return false;
      }
      if (!out.error) out.error = api_error_from(result.error());
      metrics.count_request("error");
      return false;
    }
    const Generation& g = *result;
    if (g.stop_reason == StopReason::kCancelled || g.stop_reason == StopReason::kCallback) {
      out.cancelled = true;
      metrics.count_request("cancelled");
      return true;
    }
    const std::string reason(finish_reason(g.stop_reason));
    metrics.count_request(reason);
    metrics.add_speculation(g.stats.speculation.drafted, g.stats.speculation.accepted);
    out.usage.completion_tokens += static_cast<int64_t>(g.tokens.size());
    if (ev.choice % n_per_prompt == 0) out.usage.cached_tokens += g.stats.cached_prompt_tokens;
    out.generate_seconds = std::max(out.generate_seconds, g.stats.generate_seconds);
    json logprobs;
    if (whole_logprobs) {
      int64_t offset = 0;
      logprobs = chat ? chat_logprobs(*engine, g.logprobs)
                      : completion_logprobs(*engine, g.logprobs, offset);
    }
    out.choices.push_back(ChoiceText{ev.choice, g.text, reason, std::move(logprobs)});
    return true;
  };
  auto log_outcome = [this, ex, header, serial](const Outcome& out, int status) {
    const double total = seconds_between(ex->received, Clock::now());
    metrics.request_latency.observe(total);
    if (!options.log) return;
    char rate[32];
    std::snprintf(
        rate, sizeof rate, "%.1f",
        out.generate_seconds > 0 ? out.usage.completion_tokens / out.generate_seconds : 0.0);
    std::string finish = out.error ? "error" : out.cancelled ? "cancelled" : "";
    for (const ChoiceText& c : out.choices) {
      if (finish.empty()) finish = c.finish_reason;
    }
    log(str_cat(
        "request ", serial, " ", header.id, " status=", status, " prompt_tokens=",
        out.usage.prompt_tokens, " completion_tokens=", out.usage.completion_tokens,
        " ttft_ms=", ex->ttft_seconds >= 0 ? static_cast<int64_t>(ex->ttft_seconds * 1000) : -1,
        " tok/s=", rate, " total_ms=", static_cast<int64_t>(total * 1000), " finish=", finish));
  };

  const auto connection =
      std::make_shared<ClientConnection>(req.remote_addr, req.remote_port, req.local_port);
  if (!r.stream) {
    Outcome out;
    out.usage = usage;
    int finished = 0;
    bool left = false;  // the client closed its connection: the choices are cancelled
    std::deque<Event> events;
    ClientConnection none;  // watched once the client has left: the cancelled choices still end
    while (finished < n_choices) {
      if (!wait_events(*ex, left ? none : *connection, std::chrono::hours(24), events)) {
        left = true;
        cancel_all(*engine, *ex);
        notify_engine();
        continue;
      }
      for (Event& ev : events) {
        if (!ev.done) continue;
        ++finished;
        if (!settle(ev, out)) {
          cancel_all(*engine, *ex);
          notify_engine();
        }
      }
      events.clear();
    }
    if (left) {
      log_outcome(out, 499);  // nobody to answer
      return reply_error(
          res, ApiError{499, "the client closed the connection", "cancelled", "", "client_closed"});
    }
    if (out.error) {
      log_outcome(out, out.error->status);
      return reply_error(res, *out.error);
    }
    std::sort(out.choices.begin(), out.choices.end(),
              [](const ChoiceText& a, const ChoiceText& b) { return a.index < b.index; });
    log_outcome(out, 200);
    return reply_json(res, 200, completion_body(header, out.choices, out.usage));
  }

  // Streaming. The provider runs on this request's HTTP thread until it calls sink.done() or
  // returns false (a failed write: the client is gone).
  struct StreamState {
    bool started = false;
    int finished = 0;
    Outcome out;
    bool logged = false;
    std::vector<int64_t> text_offsets;  // per choice: bytes streamed (completions' text_offset)
  };
  auto state = std::make_shared<StreamState>();
  state->text_offsets.resize(static_cast<size_t>(n_choices), 0);
  // The logprobs of a chunk's tokens, in the endpoint's form (null when not asked for).
  auto chunk_logprobs = [state, engine, chat](const Event& ev) -> json {
    if (ev.logprobs.empty()) return nullptr;
    return chat ? chat_logprobs(*engine, ev.logprobs)
                : completion_logprobs(*engine, ev.logprobs,
                                      state->text_offsets[static_cast<size_t>(ev.choice)]);
  };
  state->out.usage = usage;
  const bool include_usage = r.include_usage;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, ex, state, header, n_choices, include_usage, engine, chat, log_outcome, settle,
       chunk_logprobs, connection](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& bytes) {
          if (sink.write(bytes.data(), bytes.size())) return true;
          cancel_all(*engine, *ex);
          notify_engine();
          return false;
        };
        if (!state->started) {
          state->started = true;
          if (chat) {
            for (int c = 0; c < n_choices; ++c) {
              if (!write(sse_event(chunk_body(header, c, "", true, std::nullopt, include_usage)))) {
                return false;
              }
            }
          }
        }
        std::deque<Event> events;
        if (!wait_events(*ex, *connection, std::chrono::seconds(1), events)) {
          cancel_all(*engine, *ex);
          notify_engine();
          return false;
        }
        // A comment line keeps idle streams alive and finds a vanished client (clients ignore it).
        if (events.empty()) return write(": keep-alive\n\n");
        for (Event& ev : events) {
          if (!ev.done) {
            if (!write(sse_event(chunk_body(header, ev.choice, ev.text, false, std::nullopt,
                                            include_usage, chunk_logprobs(ev))))) {
              return false;
            }
            continue;
          }
          // Tokens whose text never came out (held back for a stop string, say) still get their
          // logprobs, in a chunk of their own.
          if (!ev.logprobs.empty() && ev.result && *ev.result &&
              !write(sse_event(chunk_body(header, ev.choice, "", false, std::nullopt, include_usage,
                                          chunk_logprobs(ev))))) {
            return false;
          }
          ++state->finished;
          if (!settle(ev, state->out)) {
            // An error after the stream began: an error event, then the stream ends.
            cancel_all(*engine, *ex);
            notify_engine();
            const ApiError e = state->out.error ? *state->out.error
                                                : ApiError{499, "cancelled", "cancelled", "", ""};
            log_outcome(state->out, e.status);
            state->logged = true;
            write(sse_event(error_body(e)));
            sink.done();
            return true;
          }
          if (!state->out.choices.empty() && state->out.choices.back().index == ev.choice) {
            const std::string reason = state->out.choices.back().finish_reason;
            if (!write(
                    sse_event(chunk_body(header, ev.choice, "", false, reason, include_usage)))) {
              return false;
            }
          }
        }
        if (state->finished < n_choices) return true;
        if (include_usage && !write(sse_event(usage_chunk_body(header, state->out.usage)))) {
          return false;
        }
        if (!write(std::string(kSseDone))) return false;
        log_outcome(state->out, 200);
        state->logged = true;
        sink.done();
        return true;
      },
      [this, ex, state, engine, log_outcome](bool success) {
        if (!success) {
          cancel_all(*engine, *ex);
          notify_engine();
        }
        if (!state->logged) {  // the client went away before the end
          state->out.cancelled = true;
          metrics.count_request("cancelled");
          log_outcome(state->out, 499);
        }
      });
}

}  // namespace pareto::serve
