// pareto: command-line front end. One subcommand per file (run, tokenize, info, convert).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <new>
#include <vector>

#include "cli.h"

namespace pareto::cli {

int fail(const std::string& message) {
  std::fprintf(stderr, "pareto: error: %s\n", message.c_str());
  return kExitError;
}

KernelEnvironment kernel_environment() {
  KernelEnvironment env;
  if (const char* name = std::getenv("PARETO_KERNELS"); name != nullptr) env.kernels = name;
  if (const char* scalar = std::getenv("PARETO_SCALAR_KERNELS");
      scalar != nullptr && std::string(scalar) == "1") {
    env.kernels = "scalar";
  }
  if (const char* packed = std::getenv("PARETO_PACKED_WEIGHTS");
      packed != nullptr && std::string(packed) == "0") {
    env.place_weights = false;
  }
  return env;
}

std::string default_model_path() {
  std::string shared;
  if (const char* env = std::getenv("PARETO_SHARED"); env && *env) {
    shared = env;
  } else {
    shared = std::string(PARETO_SOURCE_DIR) + "/../shared";
  }
  return shared + "/models/stories260K/stories260K.gguf";
}

std::string resolve_model_path(const std::string& model) {
  if (!model.empty()) return model;
  const std::string fallback = default_model_path();
  std::error_code ec;
  if (std::filesystem::exists(fallback, ec)) return fallback;
  fail("no model given and the default model " + fallback +
       " does not exist; pass one with -m MODEL (GGUF, or llama2.c .bin with --tokenizer "
       "tok.bin), or set PARETO_SHARED to the shared/ data folder");
  return {};
}

}  // namespace pareto::cli

int main(int argc, char** argv) {
  using namespace pareto::cli;
  CLI::App app{"pareto: LLM inference on the CPU (Llama-family GGUF and llama2.c models)"};
  app.require_subcommand(1);
  app.fallthrough(false);
  std::vector<Command> commands = {add_run_command(app),   add_tokenize_command(app),
                                   add_info_command(app),  add_convert_command(app),
                                   add_bench_command(app), add_gen_model_command(app),
                                   add_serve_command(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, or the usage error
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    for (const Command& c : commands) {
      if (c.app->parsed()) return c.run();
    }
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return kExitUsage;
}
