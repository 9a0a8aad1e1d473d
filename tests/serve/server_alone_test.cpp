// pareto::serve::Server set up on its own per test (no shared fixture): health before the model is
// attached, the API key, the bounded queue's 429, chat template overrides and their errors, and
// a port another server holds.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "serve/server.h"
#include "serve/server_fixture.h"

namespace pareto::serve {
namespace {

using nlohmann::json;

TEST(ServerAlone, HealthIs503UntilTheModelIsAttached) {
  RunningServer s(ServerOptions{}, engine_options(), /*attach_engine=*/false);
  auto c = s.client();
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  const Reply r = post(c, "/v1/completions", R"({"prompt": "a"})");
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(r.body.contains("error"));
}

TEST(ServerAlone, ApiKeyIsRequiredOnV1RoutesOnly) {
  ServerOptions o;
  o.api_key = "sesame";
  RunningServer s(o);
  auto c = s.client();
  EXPECT_EQ(post(c, "/v1/completions", R"({"prompt": "a", "max_tokens": 2})").status, 401);
  EXPECT_EQ(post(c, "/v1/completions", R"({"prompt": "a", "max_tokens": 2})",
                 {{"Authorization", "Bearer wrong"}})
                .status,
            401);
  EXPECT_EQ(post(c, "/v1/completions", R"({"prompt": "a", "max_tokens": 2})",
                 {{"Authorization", "Bearer sesame"}})
                .status,
            200);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST(ServerAlone, AFullQueueIs429WithRetryAfter) {
  LoadOptions load = engine_options();
  load.max_sequences = 1;
  load.max_queue = 1;
  load.context_length = 4096;  // the held stream runs until released, seconds at most
  RunningServer s(ServerOptions{}, load);
  auto c = s.client();
  // One running (a long stream, held open), one waiting; the next is refused.
  std::atomic<bool> release{false};
  std::thread running([&] {
    httplib::Client own = s.client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.set_header("Content-Type", "application/json");
    req.body = R"({"prompt": "Once", "max_tokens": 4000, "stream": true, "ignore_eos": true})";
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return !release; };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    own.send(req, res, error);
  });
  for (int i = 0; i < 500 && requests_running(c) != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::thread waiting([&] {
    httplib::Client own = s.client();
    post(own, "/v1/completions", R"({"prompt": "Once", "max_tokens": 2})");
  });
  for (int i = 0; i < 500 && gauge(c, "pareto_requests_waiting") != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int refused = 0;
  std::string retry_after;
  const bool full = gauge(c, "pareto_requests_waiting") == 1 && requests_running(c) == 1;
  EXPECT_TRUE(full) << "the queue did not fill";
  if (full) {  // else the probe would wait behind the held stream
    auto r =
        c.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 2})", "application/json");
    EXPECT_TRUE(r);
    if (r && r->status == 429) {
      refused = 1;
      retry_after = r->get_header_value("Retry-After");
      EXPECT_EQ(json::parse(r->body)["error"]["type"], "rate_limit_error");
    }
  }
  release = true;
  running.join();
  waiting.join();
  EXPECT_EQ(refused, 1);
  EXPECT_EQ(retry_after, "1");
}

TEST(ServerAlone, AChatTemplateOverrideShapesThePrompt) {
  ServerOptions o;
  o.chat_template = "{{ messages[-1]['content'] }}";  // the last message's text, nothing else
  RunningServer s(o);
  auto c = s.client();
  const Reply chat = post(c, "/v1/chat/completions", R"({"messages": [
      {"role": "user", "content": "Once upon a time"}], "max_tokens": 24, "temperature": 0})");
  ASSERT_EQ(chat.status, 200) << chat.raw;
  EXPECT_EQ(chat.body["choices"][0]["message"]["content"], engine_text("Once upon a time", 24));
}

TEST(ServerAlone, AnUnusableTemplateOverrideIsRefusedAtStart) {
  ServerOptions o;
  o.chat_template = "{% extends 'base.html' %}";
  o.port = 0;
  Server server(o);
  auto engine = Engine::load(model_path(), engine_options());
  ASSERT_TRUE(engine);
  auto attached = server.attach(std::move(*engine));
  ASSERT_FALSE(attached);
  EXPECT_NE(attached.error().message.find("extends"), std::string::npos)
      << attached.error().message;
}

TEST(ServerAlone, APortAnotherServerHoldsIsRefused) {
  ServerOptions o;
  o.port = 0;
  Server first(o);
  auto port = first.bind();
  ASSERT_TRUE(port) << port.error().message;
  o.port = *port;
  Server second(o);  // no SO_REUSEPORT: it must not share the port
  auto again = second.bind();
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find(std::to_string(*port)), std::string::npos)
      << again.error().message;
}

TEST(ServerAlone, TemplateErrorsRaisedWhileRenderingAreA400) {
  ServerOptions o;
  o.chat_template = "{{ raise_exception('roles must alternate') }}";
  RunningServer s(o);
  auto c = s.client();
  const Reply r =
      post(c, "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}]})");
  EXPECT_EQ(r.status, 400) << r.raw;
  EXPECT_NE(r.raw.find("roles must alternate"), std::string::npos) << r.raw;
}

}  // namespace
}  // namespace pareto::serve
