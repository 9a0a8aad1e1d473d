// What the draft-model drafter tests share: stories260K loaded from ../shared, and draft-model
// resources over a model (F16 pages of their own, a 256-token context), greedy requests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <utility>
#include <vector>

#include "base/thread_pool.h"
#include "decoding/drafter.h"
#include "formats/model_file.h"
#include "model/model.h"
#include "test_util.h"

namespace pareto::decoding::test_models {

inline std::unique_ptr<model::Model> load_stories() {
  auto file = formats::read_gguf(test::shared_path("models/stories260K/stories260K.gguf"));
  EXPECT_TRUE(file.has_value()) << file.error().message;
  if (!file) return nullptr;
  auto m = model::Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  EXPECT_TRUE(m.has_value()) << m.error().message;
  return m ? std::move(*m) : nullptr;
}

inline DraftModelResources resources_for(const model::Model& m, ThreadPool& pool) {
  DraftModelResources r;
  r.model = &m;
  r.kv_pool = std::make_shared<kv::KvPool>(m.kv_pool_options(kv::KvType::kF16, kv::KvType::kF16));
  r.pool = &pool;
  r.context_length = 256;
  return r;
}

// A greedy request whose text so far (prompt) is `tokens`.
inline SequenceState greedy_request(std::vector<int32_t> tokens, int n_vocab) {
  SequenceState s;
  s.tokens = std::move(tokens);
  s.n_prompt = static_cast<int>(s.tokens.size());
  s.n_vocab = n_vocab;
  sampling::SamplingParams p;
  p.temperature = 0.0f;
  s.sampler = sampling::SamplerChain::from_params(p);
  return s;
}

}  // namespace pareto::decoding::test_models
