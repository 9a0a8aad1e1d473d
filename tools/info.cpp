// `pareto info`: a model file's architecture, metadata (long arrays summarized) and tensor table.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "formats/model_file.h"

namespace pareto::cli {
namespace {

struct InfoOptions {
  std::string model;
  std::string tokenizer;
};

constexpr size_t kArrayPreview = 8;     // items shown of a long array
constexpr size_t kStringPreview = 120;  // characters shown of a long string

std::string quote(const std::string& s) {
  std::string shown = s.size() > kStringPreview ? s.substr(0, kStringPreview) : s;
  std::string out =
      nlohmann::json(shown).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (shown.size() < s.size()) out += str_cat("... (", s.size(), " chars)");
  return out;
}

std::string format_value(const formats::Value& v) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return quote(x);
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, formats::Array>) {
          std::ostringstream os;
          os << "[" << formats::value_type_name(x.elem_type) << " x " << x.items.size() << "] [";
          const size_t n = std::min(x.items.size(), kArrayPreview);
          for (size_t i = 0; i < n; ++i) os << (i ? ", " : "") << format_value(x.items[i]);
          if (n < x.items.size()) os << ", ...";
          os << "]";
          return os.str();
        } else {
          return str_cat(x);
        }
      },
      v.data);
}

std::string format_shape(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int info(const InfoOptions& opt) {
  auto file = formats::open_model_file(opt.model, opt.tokenizer);
  if (!file) return fail(file.error().message);
  const auto& meta = file->metadata();
  std::printf("file: %s\n", file->path().c_str());
  if (file->format() == "gguf") {
    std::printf("format: gguf v%u\n", file->gguf_version());
  } else {
    std::printf("format: %s\n", file->format().c_str());
  }
  auto arch = meta.get_string("general.architecture");
  std::printf("architecture: %s\n", arch ? arch->c_str() : "(none)");

  std::printf("\nmetadata: %zu keys\n", meta.entries().size());
  for (const auto& [key, value] : meta.entries()) {
    std::printf("  %-40s %-7s %s\n", key.c_str(),
                std::string(formats::value_type_name(value.type)).c_str(),
                format_value(value).c_str());
  }

  const auto& tensors = file->tensors();
  std::printf("\ntensors: %zu, %llu bytes\n", tensors.size(),
              static_cast<unsigned long long>(file->data_bytes()));
  if (!tensors.empty()) {
    size_t name_width = 4;
    for (const auto& t : tensors) name_width = std::max(name_width, t.name.size());
    const int w = static_cast<int>(name_width);
    std::printf("  %-*s  %-5s  %-20s  %s\n", w, "name", "type", "shape", "bytes");
    for (const auto& t : tensors) {
      std::printf("  %-*s  %-5s  %-20s  %llu\n", w, t.name.c_str(),
                  std::string(type_name(t.type)).c_str(), format_shape(t.shape).c_str(),
                  static_cast<unsigned long long>(t.nbytes));
    }
  }
  return kExitOk;
}

}  // namespace

Command add_info_command(CLI::App& parent) {
  auto opt = std::make_shared<InfoOptions>();
  CLI::App* app = parent.add_subcommand("info", "Show a model file's metadata and tensors");
  app->add_option("model", opt->model, "GGUF, or llama2.c checkpoint with --tokenizer")->required();
  app->add_option("--tokenizer", opt->tokenizer, "llama2.c tokenizer.bin (for .bin models)");
  return {app, [opt] { return info(*opt); }};
}

}  // namespace pareto::cli
