// `pareto run`, tokenize, info, convert and serve settings, and the errors of bad input (cli_util.h
// runs the binary).
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

TEST(CliRun, GreedyJsonMatchesLlamaCppOracle) {
  const json oracle = first_oracle_case();
  const auto expected = oracle.at("greedy_tokens").get<std::vector<int>>();
  const json out = run_json({"-m", stories("stories260K.gguf")},
                            oracle.at("prompt").get<std::string>(), expected.size());
  ASSERT_TRUE(out.contains("tokens")) << out.dump();
  EXPECT_EQ(out.at("prompt_tokens"), oracle.at("prompt_tokens"));
  EXPECT_EQ(out.at("tokens").get<std::vector<int>>(), expected);
  EXPECT_EQ(out.at("text"), oracle.at("greedy_text"));
}

TEST(CliRun, FlashAttentionGivesTheOracleTokens) {
  const json oracle = first_oracle_case();
  const auto expected = oracle.at("greedy_tokens").get<std::vector<int>>();
  const json out = run_json({"-m", stories("stories260K.gguf"), "--flash-attn"},
                            oracle.at("prompt").get<std::string>(), expected.size());
  ASSERT_TRUE(out.contains("tokens")) << out.dump();
  EXPECT_EQ(out.at("tokens").get<std::vector<int>>(), expected);
}

TEST(CliRun, Llama2cCheckpointGivesTheSameTokens) {
  const json oracle = first_oracle_case();
  const auto expected = oracle.at("greedy_tokens").get<std::vector<int>>();
  const json out =
      run_json({"-m", stories("stories260K.bin"), "--tokenizer", stories("tok512.bin")},
               oracle.at("prompt").get<std::string>(), expected.size());
  ASSERT_TRUE(out.contains("tokens")) << out.dump();
  EXPECT_EQ(out.at("prompt_tokens"), oracle.at("prompt_tokens"));
  EXPECT_EQ(out.at("tokens").get<std::vector<int>>(), expected);
}

TEST(CliRun, StreamsTextAndReportsSpeedOnStderr) {
  const json oracle = first_oracle_case();
  const std::string prompt = oracle.at("prompt").get<std::string>();
  const Outcome o = run_pareto(
      {"run", "-m", stories("stories260K.gguf"), "-p", prompt, "--temp", "0", "-n", "64"});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_EQ(o.out, prompt + oracle.at("greedy_text").get<std::string>() + "\n");
  EXPECT_NE(o.err.find("prompt: 5 tokens"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("generated: 64 tokens"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("tok/s"), std::string::npos) << o.err;
}

TEST(CliRun, DefaultModelComesFromParetoShared) {
  const json oracle = first_oracle_case();
  const Outcome o = run_pareto(
      {"run", "-p", oracle.at("prompt").get<std::string>(), "--temp", "0", "-n", "8", "--json"},
      "PARETO_SHARED=" + shell_quote(pareto::test::shared_dir()));
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  const json out = json::parse(o.out);
  const auto expected = oracle.at("greedy_tokens").get<std::vector<int>>();
  EXPECT_EQ(out.at("tokens").get<std::vector<int>>(),
            std::vector<int>(expected.begin(), expected.begin() + 8));
}

TEST(CliRun, MissingDefaultModelSaysHowToPassOne) {
  const Outcome o = run_pareto({"run", "-p", "hello"}, "PARETO_SHARED=/nonexistent/shared");
  expect_failure(o, 1, {"/nonexistent/shared/models/stories260K/stories260K.gguf", "-m"});
}

TEST(CliRun, SeededSamplingIsReproducible) {
  const std::vector<std::string> args = {"run",
                                         "-m",
                                         stories("stories260K.gguf"),
                                         "-p",
                                         "Once upon a time",
                                         "-n",
                                         "24",
                                         "--temp",
                                         "1.0",
                                         "--seed",
                                         "99",
                                         "--json"};
  const Outcome a = run_pareto(args);
  const Outcome b = run_pareto(args);
  ASSERT_EQ(a.exit_code, 0) << describe(a);
  EXPECT_EQ(a.out, b.out);
}

TEST(CliTokenize, VocabularyOnlyGguf) {
  const std::string vocab = pareto::test::shared_path("vocab/ggml-vocab-llama-bpe.gguf");
  // Expected ids from the suite's reference tokenizer: first case of .inp/.out.
  std::ifstream inp(vocab + ".inp"), outp(vocab + ".out");
  std::string text, line;
  while (std::getline(inp, line) && line != "__ggml_vocab_test__")
    text += (text.empty() ? "" : "\n") + line;
  std::getline(outp, line);
  std::vector<int> expected;
  std::istringstream ids(line);
  for (int id; ids >> id;) expected.push_back(id);
  ASSERT_FALSE(text.empty());
  const Outcome o = run_pareto({"tokenize", "-m", vocab, "-p", text, "--no-bos"});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_EQ(json::parse(o.out).get<std::vector<int>>(), expected) << "text: " << text;
}

TEST(CliTokenize, AddsBosAsTheModelDoes) {
  const json oracle = first_oracle_case();
  const Outcome o = run_pareto({"tokenize", "-m", stories("stories260K.gguf"), "-p",
                                oracle.at("prompt").get<std::string>()});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_EQ(json::parse(o.out), oracle.at("prompt_tokens"));
}

TEST(CliInfo, PrintsArchitectureMetadataAndTensorTable) {
  const Outcome o = run_pareto({"info", stories("stories260K.gguf")});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_NE(o.out.find("architecture: llama"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("llama.embedding_length"), std::string::npos) << o.out;
  // token_embd: 512 tokens x 64 dims in F32.
  EXPECT_NE(o.out.find("token_embd.weight"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("[64, 512]"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(std::to_string(64 * 512 * 4)), std::string::npos) << o.out;
  // The 512-entry vocabulary is summarized, not dumped.
  EXPECT_NE(o.out.find("x 512]"), std::string::npos) << o.out;
  EXPECT_LT(o.out.size(), 20000u);
}

TEST(CliConvert, ConvertedModelGivesTheSameTokensAsTheCheckpoint) {
  const auto dir = pareto::test::temp_dir("cli_convert");
  const std::string out_gguf = (dir / "stories260K-converted.gguf").string();
  const Outcome c = run_pareto({"convert", stories("stories260K.bin"), "--tokenizer",
                                stories("tok512.bin"), "-o", out_gguf});
  ASSERT_EQ(c.exit_code, 0) << describe(c);
  const std::string prompt = "Lily and Ben went to the park.";
  const json from_bin = run_json(
      {"-m", stories("stories260K.bin"), "--tokenizer", stories("tok512.bin")}, prompt, 32);
  const json from_gguf = run_json({"-m", out_gguf}, prompt, 32);
  ASSERT_TRUE(from_bin.contains("tokens"));
  EXPECT_EQ(from_gguf.at("prompt_tokens"), from_bin.at("prompt_tokens"));
  EXPECT_EQ(from_gguf.at("tokens"), from_bin.at("tokens"));
  EXPECT_EQ(from_bin.at("tokens").size(), 32u);
}

TEST(CliErrors, NonexistentModelPath) {
  const Outcome o = run_pareto({"run", "-m", "/nonexistent/dir/model.gguf", "-p", "hi"});
  expect_failure(o, 1, {"/nonexistent/dir/model.gguf"});
}

TEST(CliErrors, WrongMagic) {
  const auto dir = pareto::test::temp_dir("cli_junk");
  const std::string junk = (dir / "junk.gguf").string();
  {
    std::ofstream f(junk, std::ios::binary);
    for (int i = 0; i < 256; ++i) f.put(static_cast<char>((i * 37 + 11) & 0xff));
  }
  for (const std::string cmd : {"run", "info", "tokenize"}) {
    std::vector<std::string> args = {cmd};
    if (cmd == "info") {
      args.push_back(junk);
    } else {
      args.insert(args.end(), {"-m", junk, "-p", "hi"});
    }
    const Outcome o = run_pareto(args);
    EXPECT_EQ(o.exit_code, 1) << cmd << ": " << describe(o);
    EXPECT_NE(o.err.find(junk), std::string::npos) << cmd << ": " << describe(o);
  }
}

TEST(CliErrors, TruncatedGguf) {
  const auto dir = pareto::test::temp_dir("cli_truncated");
  const std::string truncated = (dir / "truncated.gguf").string();
  {
    std::ifstream in(stories("stories260K.gguf"), std::ios::binary);
    std::vector<char> head(1000);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    ASSERT_EQ(in.gcount(), 1000);
    std::ofstream(truncated, std::ios::binary).write(head.data(), 1000);
  }
  expect_failure(run_pareto({"run", "-m", truncated, "-p", "hi"}), 1, {truncated});
  expect_failure(run_pareto({"info", truncated}), 1, {truncated});
}

TEST(CliErrors, PromptLongerThanContext) {
  const std::string prompt =
      "Once upon a time there was a little dog named Max who liked to run in the big green park";
  const Outcome o = run_pareto({"run", "-m", stories("stories260K.gguf"), "-c", "8", "-p", prompt});
  expect_failure(o, 1, {"prompt has ", "tokens, context is 8"});
}

TEST(CliErrors, UnsupportedTensorType) {
  // stories260K with one weight stored as F64, a GGUF type the model code has no kernels for.
  auto model = pareto::formats::read_gguf(stories("stories260K.gguf"));
  ASSERT_TRUE(model) << model.error().message;
  const std::string victim = "blk.0.attn_q.weight";
  pareto::formats::GgufWriter writer;
  for (const auto& [key, value] : model->metadata().entries()) writer.set(key, value);
  for (const auto& t : model->tensors()) {
    if (t.name == victim) {
      std::vector<uint8_t> bytes(static_cast<size_t>(t.n_elements()) * sizeof(double));
      ASSERT_TRUE(writer.add_tensor(t.name, pareto::TensorType::F64, t.shape, std::move(bytes)));
    } else {
      ASSERT_TRUE(writer.add_tensor(t.name, t.type, t.shape,
                                    std::vector<uint8_t>(t.data, t.data + t.nbytes)));
    }
  }
  const auto dir = pareto::test::temp_dir("cli_f64");
  const std::string path = (dir / "stories260K-f64.gguf").string();
  ASSERT_TRUE(writer.write(path));
  expect_failure(run_pareto({"run", "-m", path, "-p", "hi"}), 1, {victim, "F64"});
}

TEST(CliErrors, UnknownCacheTypeAndKernelOrderNameTheValidOnes) {
  expect_failure(
      run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "hi", "--cache-type-k", "q5_1"}),
      1, {"q5_1", "f32, f16, q8_0, q4_0"});
  expect_failure(run_pareto({"bench", "-m", stories("stories260K.gguf"), "--cache-type-v", "f8"}),
                 1, {"f8", "f32, f16, q8_0, q4_0"});
  expect_failure(
      run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "hi"}, "PARETO_KERNELS=avx9"), 1,
      {"avx9", "scalar, llamacpp-avx2, llamacpp-avx512, llamacpp-amx"});
  // A valid type the model's head size does not allow (stories260K: 8).
  expect_failure(
      run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "hi", "--cache-type-k", "q8_0"}),
      1, {"q8_0", "multiple of 32"});
}

TEST(CliErrors, NonFiniteSamplingValuesAreUsageErrors) {
  for (const char* flag : {"--temp", "--top-p", "--min-p", "--repeat-penalty"}) {
    for (const char* value : {"nan", "inf", "-inf"}) {
      expect_failure(
          run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "hi", flag, value}), 2,
          {flag, "finite"});
    }
  }
}

TEST(CliRun, LogprobsInTheJsonOutput) {
  const Outcome o = run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "Once upon a time",
                                "--temp", "0", "-n", "8", "-t", "2", "--json", "--logprobs", "3"});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  const json out = json::parse(o.out);
  const auto& lps = out.at("logprobs");
  ASSERT_EQ(lps.size(), out.at("tokens").size());
  for (size_t i = 0; i < lps.size(); ++i) {
    const json& lp = lps[i];
    EXPECT_EQ(lp.at("token"), out.at("tokens")[i]);
    EXPECT_LE(lp.at("logprob").get<double>(), 0.0);
    ASSERT_EQ(lp.at("top").size(), 3u);
    // Greedy: the token taken is the most likely one.
    EXPECT_EQ(lp.at("top")[0][0], lp.at("token"));
    EXPECT_DOUBLE_EQ(lp.at("top")[0][1].get<double>(), lp.at("logprob").get<double>());
    EXPECT_GE(lp.at("top")[0][1].get<double>(), lp.at("top")[1][1].get<double>());
  }
  expect_failure(
      run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "hi", "--logprobs", "2"}), 2,
      {"--logprobs", "--json"});
  expect_failure(run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "hi", "--json",
                             "--logprobs", "21"}),
                 2, {"--logprobs"});
}

TEST(CliServe, BadSettingsFailBeforeServing) {
  expect_failure(run_pareto({"serve", "-m", stories("stories260K.gguf"), "--port", "70000"}), 2,
                 {"--port"});
  expect_failure(run_pareto({"serve", "-m", "/nonexistent/model.gguf", "--port", "0"}), 1,
                 {"/nonexistent/model.gguf"});
  const auto dir = pareto::test::temp_dir("cli_serve");
  const auto tmpl = dir / "bad.jinja";
  std::ofstream(tmpl) << "{% extends 'base.html' %}";
  expect_failure(run_pareto({"serve", "-m", stories("stories260K.gguf"), "--port", "0",
                             "--chat-template", tmpl.string()}),
                 1, {"extends"});
  expect_failure(run_pareto({"serve", "-m", stories("stories260K.gguf"), "--port", "0",
                             "--chat-template", (dir / "missing.jinja").string()}),
                 1, {"missing.jinja"});
}

// --spec picks the decoding strategy: ngram gives plain greedy's text; an unknown name is an error
// naming the valid ones.
TEST(CliRun, SpecNgramGivesPlainGreedyTextAndUnknownNamesFail) {
  const std::vector<std::string> base = {"run",
                                         "-m",
                                         stories("stories260K.gguf"),
                                         "-p",
                                         "Once upon a time",
                                         "-n",
                                         "48",
                                         "--temp",
                                         "0",
                                         "--batch-invariant",
                                         "-t",
                                         "1"};
  const Outcome plain = run_pareto(base);
  std::vector<std::string> spec = base;
  spec.insert(spec.end(), {"--spec", "ngram"});
  const Outcome ngram = run_pareto(spec);
  ASSERT_EQ(plain.exit_code, 0) << describe(plain);
  ASSERT_EQ(ngram.exit_code, 0) << describe(ngram);
  EXPECT_EQ(ngram.out, plain.out);
  EXPECT_FALSE(plain.out.empty());
  // Every token the n-gram drafter finds, not the length that pays: the same text.
  spec.push_back("--draft-fixed");
  const Outcome fixed = run_pareto(spec);
  ASSERT_EQ(fixed.exit_code, 0) << describe(fixed);
  EXPECT_EQ(fixed.out, plain.out);
  expect_failure(
      run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "hi", "--spec", "medusa"}), 1,
      {"medusa", "autoregressive, ngram"});
  // sam with a corpus file (here plain's own text, so its drafts pay): the same text; a corpus
  // that is not there fails naming it.
  const std::string corpus = testing::TempDir() + "/sam_corpus.txt";
  {
    std::ofstream w(corpus);
    w << plain.out;
  }
  spec = base;
  spec.insert(spec.end(), {"--spec", "sam", "--sam-corpus", corpus});
  const Outcome sam = run_pareto(spec);
  ASSERT_EQ(sam.exit_code, 0) << describe(sam);
  EXPECT_EQ(sam.out, plain.out);
  expect_failure(run_pareto({"run", "-m", stories("stories260K.gguf"), "-p", "hi", "--spec", "sam",
                             "--sam-corpus", corpus + ".missing"}),
                 1, {"sam corpus " + corpus + ".missing"});
}

TEST(CliRun, DraftModelSpeculationGivesPlainGreedyTextAndBadSettingsFail) {
  const std::string target = stories("stories260K.gguf");
  const std::string draft = stories("stories260K-Q8_0.gguf");
  const std::vector<std::string> base = {"run", "-m", target,   "-p", "Once upon a time",
                                         "-n",  "40", "--temp", "0",  "--batch-invariant",
                                         "-t",  "1"};
  const Outcome plain = run_pareto(base);
  ASSERT_EQ(plain.exit_code, 0) << describe(plain);
  for (const char* strategy : {"draft", "draft-adaptive", "tree", "layerskip", "sam", "draft-sam",
                               "bandit", "ngram,sam"}) {
    std::vector<std::string> spec = base;
    spec.insert(spec.end(), {"--spec", strategy, "--draft-model", draft});
    const Outcome o = run_pareto(spec);
    ASSERT_EQ(o.exit_code, 0) << strategy << ": " << describe(o);
    EXPECT_EQ(o.out, plain.out) << strategy;
    EXPECT_NE(o.err.find("speculation ("), std::string::npos) << strategy << ": " << o.err;
    EXPECT_NE(o.err.find("accepted by draft position:"), std::string::npos) << o.err;
  }
  // No draft model; a draft model of another vocabulary; draft budget out of range.
  expect_failure(run_pareto({"run", "-m", target, "-p", "hi", "--spec", "tree"}), 1,
                 {"tree", "needs a draft model"});
  expect_failure(run_pareto({"run", "-m", target, "-p", "hi", "--spec", "draft", "--draft-model",
                             pycode("pycode1m.gguf")}),
                 1, {"vocabulary", "4096 tokens, the target has 512"});
  expect_failure(run_pareto({"run", "-m", target, "-p", "hi", "--spec", "draft", "--draft-max",
                             "65", "--draft-model", draft}),
                 2, {"draft-max"});
  expect_failure(run_pareto({"run", "-m", target, "-p", "hi", "--spec", "tree", "--draft-max", "0",
                             "--draft-model", draft}),
                 1, {"tree", "at least 1"});
}

TEST(CliErrors, UnknownOptionIsAUsageError) {
  const Outcome o = run_pareto({"run", "-p", "hi", "--no-such-option"});
  expect_failure(o, 2, {"--no-such-option"});
}

TEST(CliErrors, MissingSubcommandIsAUsageError) {
  EXPECT_EQ(run_pareto({}).exit_code, 2);
  EXPECT_EQ(run_pareto({"frobnicate"}).exit_code, 2);
}

TEST(CliErrors, Llama2cWithoutTokenizer) {
  const Outcome o = run_pareto({"run", "-m", stories("stories260K.bin"), "-p", "hi"});
  expect_failure(o, 1, {"stories260K.bin"});
}

}  // namespace
}  // namespace pareto::cli_test
