// Helpers of the CLI tests: run the built `pareto` binary as a user would (through `timeout`, so
// a hang fails the test instead of stalling the suite) and check stdout, stderr and the exit code.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace pareto::cli_test {

namespace fs = std::filesystem;
using nlohmann::json;

inline constexpr int kTimeoutExit = 124;  // what `timeout` returns when the child ran too long

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// `env_prefix` is prepended to the command line (e.g. "PARETO_SHARED=/x").
inline Outcome run_pareto(const std::vector<std::string>& args,
                          const std::string& env_prefix = "") {
  static int counter = 0;
  const fs::path dir = fs::path(PARETO_BINARY_DIR) / "test_tmp" / "cli_runs";
  fs::create_directories(dir);
  const std::string stem = std::to_string(::getpid()) + "_" + std::to_string(counter++);
  const fs::path out_path = dir / (stem + ".out");
  const fs::path err_path = dir / (stem + ".err");
  std::string cmd = "env " + env_prefix + " timeout 120 " + shell_quote(PARETO_CLI_PATH);
  for (const auto& a : args) {
    cmd += ' ';
    cmd += shell_quote(a);
  }
  cmd += " >";
  cmd += shell_quote(out_path.string());
  cmd += " 2>";
  cmd += shell_quote(err_path.string());
  cmd += " </dev/null";
  const int status = std::system(cmd.c_str());
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.out = slurp(out_path);
  o.err = slurp(err_path);
  fs::remove(out_path);
  fs::remove(err_path);
  return o;
}

inline std::string describe(const Outcome& o) {
  return "exit " + std::to_string(o.exit_code) + "\nstdout: " + o.out + "\nstderr: " + o.err;
}

inline std::string stories(const std::string& file) {
  return pareto::test::shared_path("models/stories260K/" + file);
}

inline std::string pycode(const std::string& file) {
  return pareto::test::shared_path("models/pycode/" + file);
}

inline json first_oracle_case() {
  std::ifstream in(pareto::test::shared_path("oracle/stories260K.llamacpp.json"));
  return json::parse(in).at(0);
}

inline std::vector<std::string> greedy_args(const std::string& prompt, size_t n) {
  return {"-p", prompt, "--temp", "0", "-n", std::to_string(n), "-t", "2", "--json"};
}

// Runs `pareto run` with `model_args` + greedy options and returns the parsed JSON.
inline json run_json(std::vector<std::string> model_args, const std::string& prompt, size_t n) {
  std::vector<std::string> args = {"run"};
  args.insert(args.end(), model_args.begin(), model_args.end());
  for (auto& a : greedy_args(prompt, n)) args.push_back(a);
  const Outcome o = run_pareto(args);
  EXPECT_EQ(o.exit_code, 0) << describe(o);
  try {
    return json::parse(o.out);
  } catch (const json::exception& e) {
    ADD_FAILURE() << "stdout is not one JSON object: " << e.what() << "\n" << describe(o);
    return json::object();
  }
}

// Expects failure with `code` and a stderr message containing every one of `needles`.
inline void expect_failure(const Outcome& o, int code, const std::vector<std::string>& needles) {
  EXPECT_EQ(o.exit_code, code) << describe(o);
  EXPECT_NE(o.exit_code, kTimeoutExit) << "pareto hung";
  for (const auto& n : needles) {
    EXPECT_NE(o.err.find(n), std::string::npos) << "stderr lacks '" << n << "'\n" << describe(o);
  }
}

}  // namespace pareto::cli_test
