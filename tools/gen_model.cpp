// `pareto gen-model`: a random-weight GGUF model at the shape of a real published model, for
// benchmarks (loads in Pareto and in llama.cpp).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "base/thread_pool.h"
#include "bench/model_gen.h"
#include "cli.h"

namespace pareto::cli {
namespace {

struct GenModelOptions {
  std::string shape;
  std::string type = "Q4_0";
  std::string output;
  uint64_t seed = 1;
  int layers = 0;
};

int gen_model(const GenModelOptions& opt) {
  auto shape = bench::find_model_shape(opt.shape);
  if (!shape) return fail(shape.error().message);
  const bool q4_k_m = opt.type == "Q4_K_M" || opt.type == "q4_k_m";
  const auto type =
      q4_k_m ? std::optional<TensorType>(TensorType::Q4_K) : parse_type_name(opt.type);
  if (!type) return fail("gen-model: unknown type '" + opt.type + "'");
  bench::GenerateOptions options;
  options.type = *type;
  if (q4_k_m) options.mix = bench::TypeMix::kQ4_K_M;
  options.seed = opt.seed;
  options.n_layers = opt.layers;
  ThreadPool pool(std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  const auto start = std::chrono::steady_clock::now();
  if (auto s = bench::generate_model(*shape, options, opt.output, pool); !s) {
    return fail(s.error().message);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "gen-model: wrote %s (%s, %s, %.1f MB of tensors) in %.1f s\n",
               opt.output.c_str(), std::string(shape->name).c_str(), opt.type.c_str(),
               static_cast<double>(bench::generated_data_bytes(*shape, options)) / 1e6, seconds);
  return kExitOk;
}

}  // namespace

Command add_gen_model_command(CLI::App& parent) {
  auto opt = std::make_shared<GenModelOptions>();
  CLI::App* app = parent.add_subcommand(
      "gen-model", "Write a random-weight GGUF model at a real model's shape (for benchmarks)");
  std::string shapes;
  for (const bench::ModelShape& s : bench::model_shapes()) {
    shapes += (shapes.empty() ? "" : ", ") + std::string(s.name);
  }
  app->add_option("--shape", opt->shape, "model shape: " + shapes)->required();
  app->add_option("--type", opt->type,
                  "matrix type: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, or Q4_K_M (mixed)")
      ->capture_default_str();
  app->add_option("-o,--output", opt->output, "GGUF file to write")->required();
  app->add_option("--seed", opt->seed, "random seed")->capture_default_str();
  app->add_option("--layers", opt->layers, "override the shape's layer count (small tests)")
      ->check(CLI::PositiveNumber);
  return {app, [opt] { return gen_model(*opt); }};
}

}  // namespace pareto::cli
