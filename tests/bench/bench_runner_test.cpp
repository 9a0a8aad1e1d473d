// The bench runner: statistics, report formats, and a real (short) run on a generated tiny model.
// No timing assertions: only that figures are positive and well-formed.
#include "bench/bench_runner.h"

#include <cmath>
#include <memory>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bench/model_gen.h"
#include "test_util.h"

namespace pareto::bench {
namespace {

std::string tiny_model(const std::string& shape, const std::string& name) {
  GenerateOptions options;
  options.type = TensorType::Q8_0;
  ThreadPool pool(2);
  const std::string path = (test::temp_dir("bench_run_" + name) / "model.gguf").string();
  auto status = generate_model(*find_model_shape(shape), options, path, pool);
  EXPECT_TRUE(status) << status.error().message;
  return path;
}

BenchReport sample_report() {
  BenchReport r;
  r.model = "random tiny Q8_0";
  r.model_path = "/tmp/m.gguf";
  r.type = "Q8_0";
  r.model_bytes = 1 << 20;
  r.n_params = 1000;
  r.threads = 2;
  r.repetitions = 3;
  r.peak_rss_bytes = 123456789;
  r.results.push_back({"pp512", {10, 20, 30}, summarize(std::vector<double>{10, 20, 30})});
  r.results.push_back({"tg128", {5}, summarize(std::vector<double>{5})});
  return r;
}

TEST(Summarize, MeanAndSampleStandardDeviation) {
  const std::vector<double> v = {2, 4, 4, 4, 5, 5, 7, 9};
  const Summary s = summarize(v);
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  // Squared deviations sum to 32; the sample variance divides by n - 1 = 7.
  EXPECT_DOUBLE_EQ(s.sd, std::sqrt(32.0 / 7.0));
}

TEST(Summarize, SingleValueHasZeroSpreadAndEmptyIsZero) {
  EXPECT_DOUBLE_EQ(summarize(std::vector<double>{3.5}).mean, 3.5);
  EXPECT_DOUBLE_EQ(summarize(std::vector<double>{3.5}).sd, 0.0);
  EXPECT_DOUBLE_EQ(summarize(std::vector<double>{}).mean, 0.0);
}

TEST(FormatJson, HasTheDocumentedShape) {
  BenchReport r = sample_report();
  r.decode_limit = DecodeLimit{20.0, 1000000, 20000.0, 0.25};
  const auto j = nlohmann::json::parse(format_json(r));
  EXPECT_EQ(j.at("model"), "random tiny Q8_0");
  EXPECT_EQ(j.at("type"), "Q8_0");
  EXPECT_EQ(j.at("threads"), 2);
  EXPECT_EQ(j.at("peak_rss_bytes"), 123456789);
  ASSERT_EQ(j.at("results").size(), 2u);
  const auto& pp = j.at("results")[0];
  EXPECT_EQ(pp.size(), 3u);  // exactly test, tok_per_s_mean, tok_per_s_sd
  EXPECT_EQ(pp.at("test"), "pp512");
  EXPECT_DOUBLE_EQ(pp.at("tok_per_s_mean").get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(pp.at("tok_per_s_sd").get<double>(), 10.0);
  EXPECT_EQ(j.at("results")[1].at("test"), "tg128");
  EXPECT_DOUBLE_EQ(j.at("bandwidth_gb_per_s").get<double>(), 20.0);
  EXPECT_EQ(j.at("weight_bytes_per_token"), 1000000);
  EXPECT_DOUBLE_EQ(j.at("tg_fraction_of_limit").get<double>(), 0.25);
}

TEST(FormatJson, OmitsDecodeLimitWhenNotMeasured) {
  const auto j = nlohmann::json::parse(format_json(sample_report()));
  EXPECT_FALSE(j.contains("bandwidth_gb_per_s"));
  EXPECT_FALSE(j.contains("tg_limit_tok_per_s"));
}

TEST(FormatMarkdown, OneRowPerTestWithMeanAndSd) {
  BenchReport r = sample_report();
  r.decode_limit = DecodeLimit{20.0, 1000000, 20000.0, 0.25};
  const std::string md = format_markdown(r);
  EXPECT_EQ(md.rfind("| model | type | size | params | threads | test | t/s |", 0), 0u) << md;
  EXPECT_NE(md.find("| pp512 | 20.00 ± 10.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| tg128 | 5.00 ± 0.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("25.0%"), std::string::npos) << md;
  EXPECT_EQ(md.find("paired"), std::string::npos) << md;  // no pairs measured
}

TEST(FormatReport, PairedRunsInMarkdownAndJson) {
  BenchReport r = sample_report();
  DecodeLimit d{20.0, 1000000, 20000.0, 0.25};
  d.paired_probe_gb_per_s = {20.0, 30.0};
  d.paired_tg_gb_per_s = {10.0, 24.0};
  d.paired_fraction = summarize(std::vector<double>{0.5, 0.8});
  r.decode_limit = d;
  const std::string md = format_markdown(r);
  EXPECT_NE(md.find("paired (probe pass, then tg run) x 2: probe 25.00 ± 7.07 GB/s, tg read "
                    "17.00 ± 9.90 GB/s; tg reached 65.0 ± 21.2% of the probe"),
            std::string::npos)
      << md;
  const auto j = nlohmann::json::parse(format_json(r));
  EXPECT_EQ(j.at("paired_probe_gb_per_s"), nlohmann::json::array({20.0, 30.0}));
  EXPECT_EQ(j.at("paired_tg_gb_per_s"), nlohmann::json::array({10.0, 24.0}));
  EXPECT_DOUBLE_EQ(j.at("paired_fraction_mean").get<double>(), 0.65);
  EXPECT_NEAR(j.at("paired_fraction_sd").get<double>(), 0.2121, 1e-4);
}

TEST(BenchRun, TinyModelGivesPositiveFigures) {
  BenchOptions options;
  options.n_prompt = 16;
  options.n_gen = 8;
  options.threads = 2;
  options.repetitions = 2;
  options.bandwidth_bytes = 8 << 20;
  auto report = run_bench(tiny_model("tiny", "tiny"), options);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->type, "Q8_0");
  EXPECT_EQ(report->threads, 2);
  EXPECT_GT(report->peak_rss_bytes, 0u);
  EXPECT_GT(report->model_bytes, 0u);
  ASSERT_EQ(report->results.size(), 2u);
  EXPECT_EQ(report->results[0].test, "pp16");
  EXPECT_EQ(report->results[1].test, "tg8");
  for (const TestResult& t : report->results) {
    ASSERT_EQ(t.samples.size(), 2u) << t.test;
    for (double s : t.samples) EXPECT_GT(s, 0.0) << t.test;
    EXPECT_GT(t.tok_per_s.mean, 0.0) << t.test;
    EXPECT_GE(t.tok_per_s.sd, 0.0) << t.test;
  }
  ASSERT_TRUE(report->decode_limit.has_value());
  EXPECT_GT(report->decode_limit->bandwidth_gb_per_s, 0.0);
  EXPECT_GT(report->decode_limit->tok_per_s, 0.0);
  EXPECT_GT(report->decode_limit->fraction, 0.0);
  EXPECT_NE(report->decode_limit->probe.find("streams/thread"), std::string::npos);
  // One pair (probe pass, tg run) per repetition; the fraction is the mean of the pairs' ratios.
  const DecodeLimit& d = *report->decode_limit;
  ASSERT_EQ(d.paired_probe_gb_per_s.size(), 2u);
  ASSERT_EQ(d.paired_tg_gb_per_s.size(), 2u);
  double sum = 0;
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_GT(d.paired_probe_gb_per_s[i], 0.0);
    EXPECT_GT(d.paired_tg_gb_per_s[i], 0.0);
    sum += d.paired_tg_gb_per_s[i] / d.paired_probe_gb_per_s[i];
  }
  EXPECT_DOUBLE_EQ(d.paired_fraction.mean, sum / 2);
}

TEST(BenchRun, SkipsTestsOfSizeZeroAndRejectsBadOptions) {
  const std::string path = tiny_model("tiny", "skip");
  BenchOptions options;
  options.n_prompt = 0;
  options.n_gen = 2;
  options.threads = 1;
  options.repetitions = 1;
  options.bandwidth_bytes = 0;
  auto report = run_bench(path, options);
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->results.size(), 1u);
  EXPECT_EQ(report->results[0].test, "tg2");
  EXPECT_FALSE(report->decode_limit.has_value());

  options.n_prompt = 100000;  // beyond the tiny model's 512-token context
  auto too_long = run_bench(path, options);
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("context"), std::string::npos);
  options.n_prompt = 4;
  options.repetitions = 0;
  EXPECT_FALSE(run_bench(path, options));
}

TEST(BenchRun, DepthAndFlashAttentionNameTheTestsAndFitTheContext) {
  const std::string path = tiny_model("tiny", "depth");
  BenchOptions options;
  options.n_prompt = 8;
  options.n_gen = 4;
  options.threads = 2;
  options.repetitions = 2;
  options.bandwidth_bytes = 0;
  options.depth = 40;
  options.flash_attention = true;
  auto report = run_bench(path, options);
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->results.size(), 2u);
  EXPECT_EQ(report->results[0].test, "pp8 @ d40");
  EXPECT_EQ(report->results[1].test, "tg4 @ d40");
  for (const TestResult& t : report->results) EXPECT_GT(t.tok_per_s.mean, 0.0) << t.test;
  const auto j = nlohmann::json::parse(format_json(*report));
  EXPECT_EQ(j.at("n_depth"), 40);
  EXPECT_EQ(j.at("flash_attn"), true);
  EXPECT_NE(format_markdown(*report).find("attention: online softmax"), std::string::npos);

  options.depth = 510;  // + pp8 exceeds the tiny model's 512-token context
  auto too_deep = run_bench(path, options);
  ASSERT_FALSE(too_deep);
  EXPECT_NE(too_deep.error().message.find("depth 510"), std::string::npos)
      << too_deep.error().message;
  options.depth = -1;
  EXPECT_FALSE(run_bench(path, options));
}

TEST(WeightBytesPerToken, CountsOneEmbeddingRowUnlessTied) {
  for (const std::string shape : {"tiny", "tiny-qwen2"}) {
    auto file = formats::read_gguf(tiny_model(shape, "bytes_" + shape));
    ASSERT_TRUE(file) << file.error().message;
    const formats::TensorInfo* embd = file->find_tensor("token_embd.weight");
    ASSERT_NE(embd, nullptr);
    const bool tied = file->find_tensor("output.weight") == nullptr;
    const uint64_t expected = tied ? file->data_bytes()
                                   : file->data_bytes() - embd->nbytes +
                                         embd->nbytes / static_cast<uint64_t>(embd->rows());
    EXPECT_EQ(weight_bytes_per_token(*file), expected) << shape;
  }
}

}  // namespace
}  // namespace pareto::bench
