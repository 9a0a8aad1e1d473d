// `pareto tokenize`: prints a text's token ids as a JSON list. Loads the vocabulary only, so
// vocabulary-only GGUF files work.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "pareto/pareto.h"

namespace pareto::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string tokenizer;
  std::string text;
  bool no_bos = false;
};

int tokenize(const TokenizeOptions& opt) {
  const std::string model_path = resolve_model_path(opt.model);
  if (model_path.empty()) return kExitError;
  LoadOptions load;
  load.tokenizer_path = opt.tokenizer;
  load.vocab_only = true;
  auto engine = Engine::load(model_path, load);
  if (!engine) return fail(engine.error().message);
  const nlohmann::json ids = (*engine)->tokenize(opt.text, !opt.no_bos);
  std::puts(ids.dump().c_str());
  return kExitOk;
}

}  // namespace

Command add_tokenize_command(CLI::App& parent) {
  auto opt = std::make_shared<TokenizeOptions>();
  CLI::App* app = parent.add_subcommand("tokenize", "Print the token ids of a text as JSON");
  app->add_option("-m,--model", opt->model, "Model or vocabulary-only GGUF (default: stories260K)");
  app->add_option("-p,--prompt", opt->text, "Text to tokenize")->required();
  app->add_option("--tokenizer", opt->tokenizer, "llama2.c tokenizer.bin (for .bin models)");
  app->add_flag("--no-bos", opt->no_bos, "Do not prepend BOS even where the model adds it");
  return {app, [opt] { return tokenize(*opt); }};
}

}  // namespace pareto::cli
