// pareto serve: the OpenAI-compatible HTTP server (src/serve/server.h). Binds first, so /health
// answers 503 while the model loads, then serves until SIGINT or SIGTERM.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "cli.h"
#include "pareto/pareto.h"
#include "serve/server.h"

namespace pareto::cli {
namespace {

struct ServeOptions {
  std::string model;
  std::string tokenizer;
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 0;
  int parallel = 8;
  int context = 0;
  int64_t kv_tokens = -1;
  int max_queue = 256;
  std::string api_key;
  std::string chat_template_file;
  std::string alias;
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  int kivi_residual = 128;
  std::string strategy;
  std::string kv_policy, kv_budget;
  std::string draft_model;
  std::string draft_type;  // LoadOptions::draft_weight_type
  int draft_max = 8;
  bool fixed_draft_length = false;
  std::vector<std::string> sam_corpus;
  std::string spec_max_batch = "auto";
  bool batch_invariant = false;
  bool flash_attention = false;
  bool no_prefix_cache = false;
  size_t max_body_bytes = size_t{8} << 20;
};

int serve(const ServeOptions& opt) {
  const std::string model_path = resolve_model_path(opt.model);
  if (model_path.empty()) return kExitError;

  serve::ServerOptions so;
  so.host = opt.host;
  so.port = opt.port;
  so.api_key = opt.api_key;
  so.model_id = opt.alias;
  so.max_body_bytes = opt.max_body_bytes;
  so.default_strategy = opt.strategy;
  so.default_kv_policy = opt.kv_policy;
  so.default_kv_budget = opt.kv_budget;
  so.http_threads = std::max(64, 4 * opt.parallel);
  if (!opt.chat_template_file.empty()) {
    std::ifstream in(opt.chat_template_file, std::ios::binary);
    if (!in) return fail("cannot read --chat-template " + opt.chat_template_file);
    std::ostringstream text;
    text << in.rdbuf();
    so.chat_template = text.str();
    if (so.chat_template.empty())
      return fail("--chat-template " + opt.chat_template_file + " is empty");
  }
  so.log = [](std::string_view line) {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  };

  // Signals go to this thread's sigwait, never to the server's threads (blocked before they start).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a vanished client is a failed write, not a dead server

  serve::Server server(so);
  auto port = server.bind();
  if (!port) return fail(port.error().message);
  std::fprintf(stderr, "pareto serve: listening on http://%s:%d (loading %s)\n", opt.host.c_str(),
               *port, model_path.c_str());
  std::thread http([&server] { server.run(); });

  LoadOptions load;
  load.tokenizer_path = opt.tokenizer;
  load.n_threads = opt.threads;
  load.context_length = opt.context;
  load.max_sequences = opt.parallel;
  load.max_queue = opt.max_queue;
  load.cache_type_k = opt.cache_type_k;
  load.cache_type_v = opt.cache_type_v;
  load.kivi_residual = opt.kivi_residual;
  load.batch_invariant = opt.batch_invariant;
  load.flash_attention = opt.flash_attention;
  load.draft_model_path = opt.draft_model;
  load.draft_weight_type = opt.draft_type;
  load.draft_max = opt.draft_max;
  load.fixed_draft_length = opt.fixed_draft_length;
  load.sam_corpus_files = opt.sam_corpus;
  load.speculation_max_batch =
      opt.spec_max_batch == "auto" ? -1 : std::stoi(opt.spec_max_batch);  // checked by CLI11
  const KernelEnvironment env = kernel_environment();
  load.kernels = env.kernels;
  load.place_weights = env.place_weights;
  // Default KV memory: room for every running sequence at the full context, shared (any one
  // request may use all of it).
  load.kv_cache_tokens = opt.kv_tokens;
  load.prefix_cache = !opt.no_prefix_cache;
  int status = kExitOk;
  auto engine = Engine::load(model_path, load);
  const int context = engine ? (*engine)->context_length() : 0;
  if (!engine) {
    status = fail(engine.error().message);
  } else if (auto attached = server.attach(std::move(*engine)); !attached) {
    status = fail(attached.error().message);
  } else {
    std::fprintf(stderr, "pareto serve: ready (%d sequences at once, context %d per request)\n",
                 opt.parallel, context);
    int signal = 0;
    sigwait(&signals, &signal);
    std::fprintf(stderr, "pareto serve: %s, stopping\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
  }
  server.stop();
  http.join();
  return status;
}

}  // namespace

Command add_serve_command(CLI::App& parent) {
  auto opt = std::make_shared<ServeOptions>();
  CLI::App* app = parent.add_subcommand(
      "serve", "OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions, ...)");
  app->add_option("-m,--model", opt->model,
                  "Model: GGUF, or llama2.c checkpoint with --tokenizer (default: "
                  "$PARETO_SHARED/models/stories260K/stories260K.gguf)");
  app->add_option("--tokenizer", opt->tokenizer, "llama2.c tokenizer.bin (for .bin models)");
  app->add_option("--host", opt->host, "Address to bind (loopback unless told otherwise)")
      ->capture_default_str();
  app->add_option("--port", opt->port, "Port (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_option("-t,--threads", opt->threads, "Threads (default: hardware threads)")
      ->check(CLI::Range(1, 256));
  app->add_option("--parallel,--np", opt->parallel,
                  "Requests decoded together (more wait in the queue); no fixed slots")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app->add_option("-c,--ctx-size", opt->context,
                  "Context per request (default: the model's, at most 4096)")
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--kv-tokens", opt->kv_tokens,
                  "KV memory shared by all requests, in tokens (default: ctx-size x parallel; "
                  "0: no limit)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app->add_option("--max-queue", opt->max_queue, "Waiting requests; beyond it 429 with Retry-After")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--api-key", opt->api_key, "Require Authorization: Bearer KEY on /v1/*");
  app->add_option("--chat-template", opt->chat_template_file,
                  "Jinja chat template file (default: the model's tokenizer.chat_template, else "
                  "ChatML)");
  app->add_option("--alias", opt->alias, "Model id to list and report (default: the model's name)");
  add_cache_type_options(*app, opt->cache_type_k, opt->cache_type_v);
  add_kivi_option(*app, opt->kivi_residual);
  app->add_option("--spec", opt->strategy,
                  "Default decoding strategy of requests (a request's \"strategy\" field "
                  "overrides it): autoregressive, ngram, sam, draft, draft-adaptive, tree, "
                  "draft-sam, bandit, or NAME,NAME,...");
  add_kv_budget_options(*app, opt->kv_policy, opt->kv_budget,
                        "Default KV budget of requests (their \"kv_policy\" and \"kv_budget\" "
                        "fields override it)");
  app->add_option("--draft-model,--md", opt->draft_model,
                  "draft model for the draft strategies (same vocabulary as -m)");
  add_sam_corpus_option(*app, opt->sam_corpus);
  add_draft_type_option(*app, opt->draft_type);
  app->add_option("--draft-max", opt->draft_max, "longest draft per step")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app->add_flag(
      "--draft-fixed", opt->fixed_draft_length,
      "ngram and sam propose every token they find (up to --draft-max), not the length that pays");
  app->add_option("--spec-max-batch", opt->spec_max_batch,
                  "auto: speculative requests draft only at batch sizes where drafting measured "
                  "faster than plain decoding; N: beyond N sequences decoding together they decode "
                  "plainly; 0: always draft")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto"}) | CLI::Range(0, 4096));
  app->add_flag("--batch-invariant", opt->batch_invariant,
                "compute every row in single-token order (output independent of the batch)");
  app->add_flag("--flash-attn,--fa", opt->flash_attention, "online-softmax attention");
  app->add_flag("--no-prefix-cache", opt->no_prefix_cache,
                "do not keep finished requests' KV for later requests with the same prefix");
  app->add_option("--max-body", opt->max_body_bytes, "Largest request body in bytes (else 413)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  return {app, [opt] { return serve(*opt); }};
}

}  // namespace pareto::cli
