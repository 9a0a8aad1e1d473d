// `pareto convert`: llama2.c checkpoint (or any readable model) -> GGUF v3.
#include <cstdio>
#include <memory>
#include <string>

#include "cli.h"
#include "formats/gguf_writer.h"
#include "formats/model_file.h"

namespace pareto::cli {
namespace {

struct ConvertOptions {
  std::string input;
  std::string tokenizer;
  std::string output;
};

int convert(const ConvertOptions& opt) {
  auto file = formats::open_model_file(opt.input, opt.tokenizer);
  if (!file) return fail(file.error().message);
  formats::GgufWriter writer;
  if (auto s = writer.add_model(*file); !s) return fail(s.error().message);
  if (auto s = writer.write(opt.output); !s) return fail(s.error().message);
  std::printf("wrote %s: %zu tensors, %llu bytes of tensor data (from %s, %s)\n",
              opt.output.c_str(), file->tensors().size(),
              static_cast<unsigned long long>(file->data_bytes()), opt.input.c_str(),
              file->format().c_str());
  return kExitOk;
}

}  // namespace

Command add_convert_command(CLI::App& parent) {
  auto opt = std::make_shared<ConvertOptions>();
  CLI::App* app = parent.add_subcommand("convert", "Convert a llama2.c checkpoint to GGUF");
  app->add_option("input", opt->input, "llama2.c checkpoint (.bin) or GGUF")->required();
  app->add_option("--tokenizer", opt->tokenizer, "llama2.c tokenizer.bin");
  app->add_option("-o,--output", opt->output, "Output GGUF path")->required();
  return {app, [opt] { return convert(*opt); }};
}

}  // namespace pareto::cli
