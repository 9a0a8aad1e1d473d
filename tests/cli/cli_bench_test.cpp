// `pareto bench`: the JSON and SVG reports of the speed, speculative and KV-budget benchmarks
// (cli_util.h runs the binary).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "formats/gguf_writer.h"
#include "formats/model_file.h"

namespace pareto::cli_test {
namespace {

TEST(CliBench, DepthAndFlashAttentionInTheJsonReport) {
  const Outcome o =
      run_pareto({"bench", "-m", stories("stories260K.gguf"), "-p", "8", "-n", "4", "-d", "16",
                  "--fa", "-r", "1", "-t", "1", "--bandwidth-mib", "0", "--json"});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  const json j = json::parse(o.out);
  EXPECT_EQ(j.at("n_depth"), 16);
  EXPECT_EQ(j.at("flash_attn"), true);
  ASSERT_EQ(j.at("results").size(), 2u);
  EXPECT_EQ(j.at("results")[0].at("test"), "pp8 @ d16");
  EXPECT_EQ(j.at("results")[1].at("test"), "tg4 @ d16");
  expect_failure(run_pareto({"bench", "-m", stories("stories260K.gguf"), "-d", "-3"}), 2,
                 {"--n-depth"});
}

TEST(CliBench, SpecComparesStrategiesWithPlainDecodingInJsonAndSvg) {
  const std::string workload = testing::TempDir() + "/spec_workload.jsonl";
  {
    std::ofstream w(workload);
    w << R"({"id": "a", "prompt": "Once upon a time", "max_tokens": 24})"
      << "\n"
      << R"({"prompt": "Lily and Tom went to the park. Lily and Tom", "max_tokens": 24})"
      << "\n";
  }
  const std::string plot = testing::TempDir() + "/spec.svg";
  const Outcome o = run_pareto({"bench", "spec", "-m", stories("stories260K.gguf"), "--draft-model",
                                stories("stories260K-Q8_0.gguf"), "--workload", workload, "-t", "1",
                                "--json", "--plot", plot});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  const json j = json::parse(o.out);
  EXPECT_GT(j["baseline"]["tok_per_s"].get<double>(), 0);
  std::vector<std::string> names;
  for (const json& s : j["strategies"]) {
    names.push_back(s["name"].get<std::string>());
    EXPECT_TRUE(s["identical_to_baseline"].get<bool>()) << s.dump();
    EXPECT_GT(s["tok_per_s"].get<double>(), 0);
    EXPECT_GT(s["speedup"].get<double>(), 0);
    EXPECT_GE(s["mean_accepted"].get<double>(), 1.0);
    EXPECT_GE(s["acceptance_rate"].get<double>(), 0.0);
    EXPECT_LE(s["acceptance_rate"].get<double>(), 1.0);
    EXPECT_GE(s["other_seconds"].get<double>(), 0.0);
    ASSERT_TRUE(s["acceptance_by_position"].is_array());
    for (const json& a : s["acceptance_by_position"]) {
      EXPECT_GE(a.get<double>(), 0.0);
      EXPECT_LE(a.get<double>(), 1.0);
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"ngram", "sam", "draft", "draft-adaptive", "layerskip",
                                             "tree", "draft-sam", "bandit"}));
  std::ifstream svg(plot);
  std::stringstream text;
  text << svg.rdbuf();
  EXPECT_NE(text.str().find("<svg"), std::string::npos);
  EXPECT_NE(text.str().find("</svg>"), std::string::npos);
  // A bad workload line names the file, the line and the field.
  {
    std::ofstream w(workload);
    w << R"({"prompt": "x", "max_tokens": 4})"
      << "\n"
      << R"({"prompt": 7, "max_tokens": 4})"
      << "\n";
  }
  expect_failure(run_pareto({"bench", "spec", "-m", stories("stories260K.gguf"), "--workload",
                             workload, "-t", "1"}),
                 1, {workload + ":2", "prompt"});
}

// `pareto bench kv`: every row of the JSON report holds the issue's fields with values in range;
// a budget of everything matches the full cache; the speed mode reports tok/s; bad input fails
// naming the problem (a text shorter than the context names both lengths).
TEST(CliBench, KvBudgetsReportQualityAgainstTheFullCache) {
  const std::string plot = testing::TempDir() + "/kv.svg";
  const Outcome o =
      run_pareto({"bench", "kv", "-m", stories("stories260K.gguf"), "--policies", "window,h2o",
                  "--budgets", "30%,100%", "-t", "1", "--json", "--plot", plot});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  const json j = json::parse(o.out);
  ASSERT_EQ(j["results"].size(), 4u);
  for (const json& r : j["results"]) {
    for (const char* key :
         {"kl", "top1_agreement", "perplexity", "perplexity_full", "copy_accuracy",
          "copy_accuracy_full", "kv_bytes_per_token", "peak_rss_bytes"}) {
      ASSERT_TRUE(r.contains(key)) << key;
    }
    // A row's peak (0 where the kernel refuses the reset) is within the whole run's.
    EXPECT_LE(r["peak_rss_bytes"].get<uint64_t>(), j["peak_rss_bytes"].get<uint64_t>());
    EXPECT_GE(r["kl"].get<double>(), 0);
    EXPECT_GE(r["top1_agreement"].get<double>(), 0);
    EXPECT_LE(r["top1_agreement"].get<double>(), 1);
    if (r["budget"].get<double>() == 1.0) {
      EXPECT_EQ(r["kl"].get<double>(), 0) << r.dump();
      EXPECT_EQ(r["top1_agreement"].get<double>(), 1) << r.dump();
      EXPECT_EQ(r["perplexity"], r["perplexity_full"]);
      EXPECT_EQ(r["copy_accuracy"], r["copy_accuracy_full"]);
    } else {
      EXPECT_GT(r["kl"].get<double>(), 0) << r.dump();
      EXPECT_LT(r["kv_bytes_per_token"].get<double>(), r["kv_bytes_per_token_full"].get<double>());
    }
  }
  EXPECT_NE(slurp(plot).find("</svg>"), std::string::npos);
  // A per-layer budget is one more row per policy; its budget is the layers' mean. With pyramid
  // it replaces the policy's allocation, so pyramid's row is snapkv's.
  const Outcome layers =
      run_pareto({"bench", "kv", "-m", stories("stories260K.gguf"), "--policies", "snapkv,pyramid",
                  "--layer-budget", "10%,10%,20%,30%,30%", "-t", "1", "--json"});
  ASSERT_EQ(layers.exit_code, 0) << describe(layers);
  const json jl = json::parse(layers.out);
  ASSERT_EQ(jl["results"].size(), 2u);
  for (const json& r : jl["results"]) {
    EXPECT_EQ(r["layer_budgets"], "10%,10%,20%,30%,30%");
    EXPECT_NEAR(r["budget"].get<double>(), 0.2, 1e-12);
  }
  EXPECT_EQ(jl["results"][0]["kl"], jl["results"][1]["kl"]);
  expect_failure(
      run_pareto({"bench", "kv", "-m", stories("stories260K.gguf"), "--layer-budget", "20%,20%"}),
      1, {"2 per-layer budgets, the model has 5 layers"});
  const Outcome speed =
      run_pareto({"bench", "kv", "--speed", "-m", stories("stories260K.gguf"), "--contexts", "200",
                  "--policies", "window", "--steps", "4", "-t", "1", "--json"});
  ASSERT_EQ(speed.exit_code, 0) << describe(speed);
  const json js = json::parse(speed.out);
  ASSERT_EQ(js["speed"].size(), 1u);
  EXPECT_GT(js["speed"][0]["tok_per_s"].get<double>(), 0);
  EXPECT_LT(js["speed"][0]["kv_bytes"].get<double>(),
            js["speed"][0]["kv_bytes_full"].get<double>());
  const std::string text = testing::TempDir() + "/short.txt";
  std::ofstream(text) << "Once upon a time.";
  expect_failure(run_pareto({"bench", "kv", "-m", stories("stories260K.gguf"), "--text", text}), 1,
                 {"tokens, shorter than the 512-token context"});
  expect_failure(
      run_pareto({"bench", "kv", "-m", stories("stories260K.gguf"), "--policies", "lru"}), 1,
      {"unknown policy 'lru'"});
  expect_failure(run_pareto({"bench", "kv", "-m", stories("stories260K.gguf"), "--budgets", "0%"}),
                 1, {"'0%'"});
  expect_failure(run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "x", "--kv-policy",
                             "h2o", "--kv-budget", "150%"}),
                 2, {"above 100%"});
}

// KIVI rows: a quantization alone is one row at 100% (every entry kept, quantized), composed
// with a policy one row per budget; both hold less KV than the full cache and cost some quality.
// `run` takes the cache types; bad names fail naming them.
TEST(CliBench, KvQuantizationRowsNameTheirBits) {
  const Outcome o = run_pareto({"bench", "kv", "-m", stories("stories260K.gguf"), "--policies",
                                "kivi4,snapkv+kivi2", "--budgets", "20%,50%", "--kivi-residual",
                                "32", "-t", "1", "--json"});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  const json j = json::parse(o.out);
  ASSERT_EQ(j["results"].size(), 3u);
  EXPECT_EQ(j["results"][0]["policy"], "kivi4");
  EXPECT_EQ(j["results"][0]["budget"].get<double>(), 1.0);
  EXPECT_EQ(j["results"][1]["policy"], "snapkv+kivi2");
  EXPECT_EQ(j["results"][2]["budget"].get<double>(), 0.5);
  for (const json& r : j["results"]) {
    EXPECT_GT(r["kl"].get<double>(), 0) << r.dump();
    EXPECT_LT(r["kv_bytes_per_token"].get<double>(), r["kv_bytes_per_token_full"].get<double>());
    EXPECT_EQ(r["evicted"].get<int64_t>() == 0, r["policy"] == "kivi4") << r.dump();
  }
  expect_failure(
      run_pareto({"bench", "kv", "-m", stories("stories260K.gguf"), "--policies", "snapkv+q4_0"}),
      1, {"'q4_0' is not a KV quantization (kivi4, kivi2)"});
  const Outcome run =
      run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "Once upon a", "-n", "40",
                  "--temp", "0", "--ctk", "kivi4", "--ctv", "kivi2", "--kivi-residual", "8"});
  EXPECT_EQ(run.exit_code, 0) << describe(run);
  expect_failure(
      run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "x", "--ctk", "kivi3"}), 1,
      {"unknown KV cache type 'kivi3'", "kivi4, kivi2"});
}

TEST(CliBench, ParallelModeReportsAggregateSpeedAndKvBytesPerLevel) {
  const Outcome o = run_pareto({"bench", "-m", stories("stories260K.gguf"), "-p", "8", "-n", "4",
                                "--parallel", "1,3", "-r", "1", "-t", "1", "--json"});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  const json j = json::parse(o.out);
  EXPECT_EQ(j.at("cache_type_k"), "f16");
  ASSERT_EQ(j.at("results").size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const json& r = j.at("results")[i];
    EXPECT_EQ(r.at("parallel"), i < 2 ? 1 : 3);
    EXPECT_EQ(r.at("test"), i % 2 == 0 ? "pp8" : "tg4");
    EXPECT_GT(r.at("tok_per_s_mean").get<double>(), 0.0);
  }
  // Three sequences hold three times the pages of one (13 entries each: one page per layer, head).
  EXPECT_EQ(j.at("results")[2].at("kv_bytes").get<int64_t>(),
            3 * j.at("results")[0].at("kv_bytes").get<int64_t>());
  expect_failure(run_pareto({"bench", "-m", stories("stories260K.gguf"), "--parallel", "2,x"}), 1,
                 {"--parallel"});
}

}  // namespace
}  // namespace pareto::cli_test
