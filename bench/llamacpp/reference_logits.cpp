// Writes a llama.cpp reference file for the differential tests (tests/differential/data) with raw
// logits, through llama.cpp's public API (llama.h) and the CPU backend variant that ggml picks for
// the CPU at hand from the directory of backend libraries given. Not part of the Pareto build: it
// links against the pinned llama.cpp (build de3ff81, shipped by node-llama-cpp 3.22.1);
// tests/differential/data/README.md gives the build command and the provenance of every file made.
//
// For each case of an oracle-format file (its prompt tokens and its number of greedy tokens): one
// fresh context (context 512, batch = ubatch 512, 2 threads, KV cache of the type given, flash
// attention off, CPU only, default extra buffer types so matrices are repacked as in a default
// run), the prompt decoded as one batch, then greedy decoding one token per llama_decode, stopping
// at an end-of-generation token. Before each greedy token: the 8 highest logits as [token, logit]
// (ties by lower id), printed with 9 significant digits: the exact float, so tests can compare
// bits. Logs and the backend's feature list go to stderr.
//
// usage: reference_logits BACKEND_DIR MODEL.gguf CASES.json [f32|f16] > OUT.json
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ggml-backend.h"
#include "llama.h"

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: %s BACKEND_DIR MODEL.gguf CASES.json [f32|f16] > OUT.json\n",
                 argv[0]);
    return 2;
  }
  const std::string kv = argc == 5 ? argv[4] : "f32";
  if (kv != "f32" && kv != "f16") {
    std::fprintf(stderr, "KV cache type: expected f32 or f16, got %s\n", kv.c_str());
    return 2;
  }
  std::ifstream in(argv[3]);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", argv[3]);
    return 2;
  }
  const nlohmann::json cases = nlohmann::json::parse(in);

  ggml_backend_load_all_from_path(argv[1]);
  llama_backend_init();
  std::fprintf(stderr, "system info: %s\n", llama_print_system_info());

  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(argv[2], mp);
  if (model == nullptr) {
    std::fprintf(stderr, "cannot load %s\n", argv[2]);
    return 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);

  std::printf("[\n");
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto& oc = cases[c];
    std::vector<llama_token> prompt = oc.at("prompt_tokens").get<std::vector<llama_token>>();
    const size_t steps = oc.at("greedy_tokens").size();

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_seq_max = 1;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = kv == "f16" ? GGML_TYPE_F16 : GGML_TYPE_F32;
    cp.type_v = cp.type_k;
    cp.no_perf = true;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (ctx == nullptr) {
      std::fprintf(stderr, "cannot create a context\n");
      return 1;
    }

    std::vector<llama_token> greedy;
    nlohmann::json top_logits = nlohmann::json::array();
    std::vector<llama_token> feed = prompt;
    std::vector<int> order(static_cast<size_t>(n_vocab));
    while (greedy.size() < steps) {
      if (llama_decode(ctx, llama_batch_get_one(feed.data(), static_cast<int32_t>(feed.size())))) {
        std::fprintf(stderr, "llama_decode failed (case %zu)\n", c);
        return 1;
      }
      const float* logits = llama_get_logits_ith(ctx, -1);
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + 8, order.end(), [&](int a, int b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      });
      std::string row = "[";
      for (int i = 0; i < 8; ++i) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s[%d,%.9g]", i ? "," : "", order[static_cast<size_t>(i)],
                      static_cast<double>(logits[order[static_cast<size_t>(i)]]));
        row += buf;
      }
      row += "]";
      top_logits.push_back(nlohmann::json::parse(row));
      const llama_token next = order[0];
      greedy.push_back(next);
      if (llama_vocab_is_eog(vocab, next)) break;
      feed.assign(1, next);
    }
    llama_free(ctx);

    nlohmann::json out;
    if (oc.contains("prompt")) out["prompt"] = oc["prompt"];
    out["prompt_tokens"] = prompt;
    out["greedy_tokens"] = greedy;
    out["top_logits"] = top_logits;
    std::printf("%s%s\n",
                out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str(),
                c + 1 < cases.size() ? "," : "");
  }
  std::printf("]\n");
  llama_model_free(model);
  return 0;
}
