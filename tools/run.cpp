// `pareto run`: generate text from a prompt, streamed to stdout, or one JSON object with --json.
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "pareto/pareto.h"

namespace pareto::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string tokenizer;
  std::string prompt;
  int n_predict = 128;
  int threads = 0;
  int context = 0;
  bool json = false;
  bool flash_attention = false;
  bool batch_invariant = false;
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  int kivi_residual = 128;
  std::vector<std::string> stop;
  std::string draft_model;
  std::string draft_type;  // LoadOptions::draft_weight_type
  int draft_max = 8;
  bool fixed_draft_length = false;
  std::vector<std::string> sam_corpus;
  GenerateParams params;
};

int run(const RunOptions& opt) {
  const std::string model_path = resolve_model_path(opt.model);
  if (model_path.empty()) return kExitError;

  LoadOptions load;
  load.tokenizer_path = opt.tokenizer;
  load.n_threads = opt.threads;
  load.context_length = opt.context;
  load.flash_attention = opt.flash_attention;
  load.batch_invariant = opt.batch_invariant;
  load.cache_type_k = opt.cache_type_k;
  load.cache_type_v = opt.cache_type_v;
  load.kivi_residual = opt.kivi_residual;
  load.max_sequences = 1;
  load.draft_model_path = opt.draft_model;
  load.draft_weight_type = opt.draft_type;
  load.draft_max = opt.draft_max;
  load.fixed_draft_length = opt.fixed_draft_length;
  load.sam_corpus_files = opt.sam_corpus;
  const KernelEnvironment env = kernel_environment();
  load.kernels = env.kernels;
  load.place_weights = env.place_weights;
  auto engine = Engine::load(model_path, load);
  if (!engine) return fail(engine.error().message);

  GenerateParams params = opt.params;
  params.max_tokens = opt.n_predict;
  params.stop = opt.stop;
  // Tokenized here so a prompt that cannot fit fails before anything is echoed.
  std::vector<int32_t> prompt_tokens = (*engine)->tokenize(opt.prompt, params.add_bos);
  if (static_cast<int>(prompt_tokens.size()) > (*engine)->context_length()) {
    return fail(str_cat("prompt has ", prompt_tokens.size(), " tokens, context is ",
                        (*engine)->context_length(), " (raise it with -c)"));
  }
  StreamCallback stream;
  if (!opt.json) {
    std::fputs(opt.prompt.c_str(), stdout);
    std::fflush(stdout);
    stream = [](std::string_view text, int32_t) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  auto generation = (*engine)->generate_from_tokens(std::move(prompt_tokens), params, stream);
  if (!generation) {
    if (!opt.json) std::fputc('\n', stdout);
    return fail(generation.error().message);
  }
  if (opt.json) {
    nlohmann::ordered_json out = {{"prompt_tokens", generation->prompt_tokens},
                                  {"tokens", generation->tokens},
                                  {"text", generation->text}};
    if (params.logprobs >= 0) {
      // Per generated token: its log-probability and the most likely alternatives, as
      // [token, logprob] pairs (natural log of the softmax of the raw logits).
      nlohmann::ordered_json lps = nlohmann::ordered_json::array();
      for (const TokenLogprob& lp : generation->logprobs) {
        nlohmann::ordered_json top = nlohmann::ordered_json::array();
        for (const auto& [token, logprob] : lp.top) top.push_back({token, logprob});
        lps.push_back({{"token", lp.token}, {"logprob", lp.logprob}, {"top", top}});
      }
      out["logprobs"] = lps;
    }
    std::puts(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fputc('\n', stdout);
  }
  std::fflush(stdout);
  const auto& s = generation->stats;
  std::fprintf(stderr,
               "prompt: %d tokens, %.1f tok/s | generated: %d tokens, %.1f tok/s | stop: %s\n",
               s.prompt_tokens, s.prompt_tokens_per_second(), s.generated_tokens,
               s.generated_tokens_per_second(),
               std::string(stop_reason_name(generation->stop_reason)).c_str());
  const SpeculationStats& sp = s.speculation;
  if (sp.steps > 0) {
    std::fprintf(stderr,
                 "speculation (%s): %lld verifications, %lld drafted, %lld accepted (%.1f%%), "
                 "%.2f tokens per verification | draft %.3f s, verify %.3f s\n",
                 params.strategy.c_str(), static_cast<long long>(sp.steps),
                 static_cast<long long>(sp.drafted), static_cast<long long>(sp.accepted),
                 100.0 * sp.acceptance_rate(), sp.mean_accepted(), sp.draft_seconds,
                 sp.verify_seconds);
    std::string by_position;
    for (size_t i = 0; i < sp.drafted_at.size(); ++i) {
      by_position += str_cat(i == 0 ? "" : " ", sp.accepted_at[i], "/", sp.drafted_at[i]);
    }
    std::fprintf(stderr, "accepted by draft position: %s\n", by_position.c_str());
  }
  return kExitOk;
}

}  // namespace

Command add_run_command(CLI::App& parent) {
  auto opt = std::make_shared<RunOptions>();
  CLI::App* app = parent.add_subcommand("run", "Generate text from a prompt");
  app->add_option("-m,--model", opt->model,
                  "Model: GGUF, or llama2.c checkpoint with --tokenizer (default: "
                  "$PARETO_SHARED/models/stories260K/stories260K.gguf)");
  app->add_option("-p,--prompt", opt->prompt, "Prompt text")->required();
  app->add_option("-n,--n-predict", opt->n_predict,
                  "Tokens to generate (-1: until end of text or the context is full)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1 << 30));
  app->add_option("--temp", opt->params.temperature, "Temperature (<= 0: greedy)")
      ->capture_default_str()
      ->check(finite_number());
  app->add_option("--top-k", opt->params.top_k, "Top-k (<= 0: off)")->capture_default_str();
  app->add_option("--top-p", opt->params.top_p, "Top-p (1: off)")
      ->capture_default_str()
      ->check(finite_number() & CLI::Range(0.0f, 1.0f));
  app->add_option("--min-p", opt->params.min_p, "Min-p (0: off)")
      ->capture_default_str()
      ->check(finite_number() & CLI::Range(0.0f, 1.0f));
  app->add_option("--repeat-penalty", opt->params.repeat_penalty, "Repetition penalty (1: off)")
      ->capture_default_str()
      ->check(finite_number() & CLI::PositiveNumber);
  app->add_option("--repeat-last-n", opt->params.repeat_last_n,
                  "Tokens the repetition penalty looks back over")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--seed", opt->params.seed, "Random seed")->capture_default_str();
  app->add_option("-t,--threads", opt->threads, "Threads (default: hardware threads)")
      ->check(CLI::Range(1, 256));
  app->add_option("--tokenizer", opt->tokenizer, "llama2.c tokenizer.bin (for .bin models)");
  app->add_option("-c,--ctx-size", opt->context,
                  "Context length (default: the model's, at most 4096)")
      ->check(CLI::Range(1, 1 << 20));
  app->add_flag("--flash-attn,--fa", opt->flash_attention,
                "online-softmax attention, one pass over the cache (llama.cpp -fa)");
  add_cache_type_options(*app, opt->cache_type_k, opt->cache_type_v);
  add_kivi_option(*app, opt->kivi_residual);
  app->add_option("--stop", opt->stop, "Stop string (repeatable): output ends before it");
  app->add_option("--spec", opt->params.strategy,
                  "Decoding strategy: autoregressive (default), or speculative (lossless): ngram "
                  "(prompt lookup), sam (suffix automaton), draft, draft-adaptive, tree, draft-sam "
                  "(need --draft-model), bandit (picks among them by measured speed), or a list "
                  "NAME,NAME,... (a bandit over those)");
  add_kv_budget_options(*app, opt->params.kv_policy, opt->params.kv_budget, "KV budget");
  app->add_option(
      "--draft-model,--md", opt->draft_model,
      "draft model for --spec draft / draft-adaptive / tree / draft-sam (same vocabulary "
      "as -m)");
  add_sam_corpus_option(*app, opt->sam_corpus);
  add_draft_type_option(*app, opt->draft_type);
  app->add_option("--draft-max", opt->draft_max, "longest draft per step (speculative --spec)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app->add_flag(
      "--draft-fixed", opt->fixed_draft_length,
      "ngram and sam propose every token they find (up to --draft-max), not the length that pays");
  app->add_flag("--batch-invariant", opt->batch_invariant,
                "compute every row in single-token order (results independent of the batch)");
  CLI::Option* json =
      app->add_flag("--json", opt->json,
                    "Print one JSON object {prompt_tokens, tokens, text} instead of streaming");
  app->add_option("--logprobs", opt->params.logprobs,
                  "With --json: each generated token's log-probability and its N most likely "
                  "alternatives (\"logprobs\": [{token, logprob, top: [[token, logprob], ...]}])")
      ->check(CLI::Range(0, 20))
      ->needs(json);
  return {app, [opt] { return run(*opt); }};
}

}  // namespace pareto::cli
