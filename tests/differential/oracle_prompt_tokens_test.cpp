// Differential check against llama.cpp's own tokenization: for every case of
// shared/oracle/*.llamacpp.json, encoding the prompt with BOS must give `prompt_tokens` exactly,
// and streaming the generated tokens' pieces must give llama.cpp's text. Autoregressive oracles
// name them `greedy_tokens` / `greedy_text`; the diffusion model's (pycode-dllm.<rule>) `tokens` /
// `text`.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/model_file.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace pareto::tokenizer {
namespace {

namespace fs = std::filesystem;

struct OracleFile {
  std::string name;        // e.g. "stories260K-Q8_0", "pycode-dllm.steps"
  std::string oracle;      // path of the .llamacpp.json
  std::string model_gguf;  // the model it was produced with
};

// The oracle's model: models/<family>/<model>.gguf, family being the name's first word and model
// the name up to its first '.' (pycode-dllm.steps and pycode-dllm.tau05: two decoding rules of one
// model).
std::vector<OracleFile> oracle_files() {
  std::vector<OracleFile> files;
  const fs::path dir = test::shared_path("oracle");
  const std::string suffix = ".llamacpp.json";
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (file.size() <= suffix.size() ||
        file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    const std::string name = file.substr(0, file.size() - suffix.size());
    const std::string family = name.rfind("stories260K", 0) == 0 ? "stories260K"
                               : name.rfind("pycode", 0) == 0    ? "pycode"
                                                                 : "";
    EXPECT_FALSE(family.empty()) << "oracle file for an unknown model: " << file;
    if (family.empty()) continue;
    const std::string model = name.substr(0, name.find('.'));
    files.push_back({name, entry.path().string(),
                     test::shared_path("models/" + family + "/" + model + ".gguf")});
  }
  std::sort(files.begin(), files.end(),
            [](const OracleFile& a, const OracleFile& b) { return a.name < b.name; });
  return files;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

Tokenizer load_tokenizer(const std::string& gguf) {
  auto file = formats::read_gguf(gguf);
  if (!file) ADD_FAILURE() << file.error().message;
  if (!file) std::abort();
  auto tok = Tokenizer::from_metadata(file->metadata());
  if (!tok) ADD_FAILURE() << tok.error().message;
  if (!tok) std::abort();
  return std::move(*tok);
}

TEST(OraclePromptTokens, EncodeWithBosMatchesLlamaCpp) {
  const std::vector<OracleFile> files = oracle_files();
  ASSERT_GE(files.size(), 8u) << "expected the stories260K, pycode, pycode-moe and pycode-dllm "
                                 "oracle files";
  size_t n_cases = 0;
  for (const OracleFile& f : files) {
    const Tokenizer tok = load_tokenizer(f.model_gguf);
    ASSERT_TRUE(tok.add_bos_default()) << f.name;
    for (const auto& c : read_json(f.oracle)) {
      const std::string prompt = c.at("prompt").get<std::string>();
      const auto expected = c.at("prompt_tokens").get<std::vector<int32_t>>();
      EXPECT_EQ(tok.encode(prompt, /*add_bos=*/true), expected)
          << f.name << ": prompt '" << prompt.substr(0, 80) << "'";
      ++n_cases;
    }
  }
  EXPECT_GE(n_cases, 40u);
}

TEST(OraclePromptTokens, StreamedGreedyPiecesMatchLlamaCppText) {
  for (const OracleFile& f : oracle_files()) {
    const Tokenizer tok = load_tokenizer(f.model_gguf);
    for (const auto& c : read_json(f.oracle)) {
      const bool greedy = c.contains("greedy_tokens");
      const auto tokens = c.at(greedy ? "greedy_tokens" : "tokens").get<std::vector<int32_t>>();
      // A continuation follows the prompt, so its first token keeps its leading space.
      IncrementalDecoder dec(tok, /*at_text_start=*/false);
      std::string text;
      for (const int32_t id : tokens) text += dec.push(id);
      text += dec.flush();
      EXPECT_EQ(text, c.at(greedy ? "greedy_text" : "text").get<std::string>()) << f.name;
    }
  }
}

}  // namespace
}  // namespace pareto::tokenizer
