// Test helpers: random-weight llama/qwen2 GGUF files written with formats::GgufWriter, and a
// straightforward float64 forward pass over the same (dequantized) weights.
#pragma once

#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/gguf_writer.h"
#include "formats/model_file.h"
#include "kernels/kernel_path.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "test_util.h"

namespace pareto::model::test {

struct TinySpec {
  std::string arch = "llama";
  int n_vocab = 50;
  int dim = 64;
  int n_layers = 2;
  int n_heads = 4;
  int n_kv_heads = 2;
  int ffn_dim = 96;
  int context_length = 64;
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  TensorType weight_type = TensorType::F32;  // every matrix
  bool tied_output = false;
  uint32_t seed = 1;
  int head_dim() const { return dim / n_heads; }
};

// Weights as f32 values before encoding, by tensor name (shape {cols, rows} as in GGUF).
struct TinyWeights {
  std::map<std::string, std::vector<float>> values;
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, TensorType> types;
};

inline void add_tensor(TinyWeights& w, std::mt19937& rng, const std::string& name,
                       std::vector<int64_t> shape, TensorType type, float scale, float offset = 0) {
  std::normal_distribution<float> dist(0.0f, scale);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = offset + dist(rng);
  w.values[name] = std::move(v);
  w.shapes[name] = std::move(shape);
  w.types[name] = type;
}

inline TinyWeights make_weights(const TinySpec& s) {
  std::mt19937 rng(s.seed);
  TinyWeights w;
  const int64_t q_dim = int64_t{s.n_heads} * s.head_dim();
  const int64_t kv_dim = int64_t{s.n_kv_heads} * s.head_dim();
  const TensorType t = s.weight_type;
  const float ws = 1.0f / std::sqrt(static_cast<float>(s.dim));
  add_tensor(w, rng, "token_embd.weight", {s.dim, s.n_vocab}, t, 1.0f);
  add_tensor(w, rng, "output_norm.weight", {s.dim}, TensorType::F32, 0.1f, 1.0f);
  if (!s.tied_output) add_tensor(w, rng, "output.weight", {s.dim, s.n_vocab}, t, ws * 3);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add_tensor(w, rng, b + "attn_norm.weight", {s.dim}, TensorType::F32, 0.1f, 1.0f);
    add_tensor(w, rng, b + "attn_q.weight", {s.dim, q_dim}, t, ws * 2);
    add_tensor(w, rng, b + "attn_k.weight", {s.dim, kv_dim}, t, ws * 2);
    add_tensor(w, rng, b + "attn_v.weight", {s.dim, kv_dim}, t, ws);
    if (s.arch == "qwen2") {
      add_tensor(w, rng, b + "attn_q.bias", {q_dim}, TensorType::F32, 0.2f);
      add_tensor(w, rng, b + "attn_k.bias", {kv_dim}, TensorType::F32, 0.2f);
      add_tensor(w, rng, b + "attn_v.bias", {kv_dim}, TensorType::F32, 0.2f);
    }
    add_tensor(w, rng, b + "attn_output.weight", {q_dim, s.dim}, t, ws);
    add_tensor(w, rng, b + "ffn_norm.weight", {s.dim}, TensorType::F32, 0.1f, 1.0f);
    add_tensor(w, rng, b + "ffn_gate.weight", {s.dim, s.ffn_dim}, t, ws * 2);
    add_tensor(w, rng, b + "ffn_up.weight", {s.dim, s.ffn_dim}, t, ws * 2);
    add_tensor(w, rng, b + "ffn_down.weight", {s.ffn_dim, s.dim}, t,
               1.0f / std::sqrt(static_cast<float>(s.ffn_dim)));
  }
  return w;
}

inline std::vector<uint8_t> encode(TensorType type, const std::vector<float>& v, int64_t cols) {
  const int64_t rows = static_cast<int64_t>(v.size()) / cols;
  const int64_t rb = row_bytes(type, cols);
  std::vector<uint8_t> bytes(static_cast<size_t>(rb * rows));
  for (int64_t r = 0; r < rows; ++r) {
    kernels::quantize_row(type, v.data() + r * cols, bytes.data() + r * rb, cols);
  }
  return bytes;
}

inline void set_metadata(formats::GgufWriter& gw, const TinySpec& s) {
  using formats::Value;
  const std::string a = s.arch + ".";
  gw.set("general.architecture", Value::str(s.arch));
  gw.set(a + "context_length", Value::u32(static_cast<uint32_t>(s.context_length)));
  gw.set(a + "embedding_length", Value::u32(static_cast<uint32_t>(s.dim)));
  gw.set(a + "block_count", Value::u32(static_cast<uint32_t>(s.n_layers)));
  gw.set(a + "feed_forward_length", Value::u32(static_cast<uint32_t>(s.ffn_dim)));
  gw.set(a + "attention.head_count", Value::u32(static_cast<uint32_t>(s.n_heads)));
  gw.set(a + "attention.head_count_kv", Value::u32(static_cast<uint32_t>(s.n_kv_heads)));
  gw.set(a + "attention.layer_norm_rms_epsilon", Value::f32(s.rms_eps));
  gw.set(a + "rope.freq_base", Value::f32(s.rope_base));
}

// Writes the model to `path` (tests may edit `w` first to produce bad files).
inline void write_model(const std::string& path, const TinySpec& s, const TinyWeights& w) {
  formats::GgufWriter gw;
  set_metadata(gw, s);
  for (const auto& [name, values] : w.values) {
    const auto& shape = w.shapes.at(name);
    const TensorType type = w.types.at(name);
    auto st = gw.add_tensor(name, type, shape, encode(type, values, shape[0]));
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }
  auto st = gw.write(path);
  ASSERT_TRUE(st.has_value()) << st.error().message;
}

inline std::unique_ptr<Model> load_model(const std::string& path,
                                         const ModelLoadOptions& options = {}) {
  auto file = formats::read_gguf(path);
  EXPECT_TRUE(file.has_value()) << (file ? "" : file.error().message);
  if (!file) return nullptr;
  auto m = Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)), options);
  EXPECT_TRUE(m.has_value()) << (m ? "" : m.error().message);
  return m ? std::move(*m) : nullptr;
}

// The float64 reference forward pass of a whole sequence; returns logits [n_tokens][n_vocab].
// Weights are the stored (dequantized) values; activations entering each matrix product are
// rounded as the engine (and llama.cpp) rounds them for the weight type on the given kernel path
// (the AMX order multiplies the F16 matrices it takes by unrounded F32 activations).
class ReferenceModel {
 public:
  ReferenceModel(const TinySpec& s, const TinyWeights& w,
                 kernels::KernelPath path = kernels::KernelPath::kScalar)
      : s_(s), path_(path) {
    for (const auto& [name, values] : w.values) {
      const auto& shape = w.shapes.at(name);
      const TensorType type = w.types.at(name);
      const auto bytes = encode(type, values, shape[0]);
      std::vector<float> deq(values.size());
      const int64_t rb = row_bytes(type, shape[0]);
      for (size_t r = 0; r < values.size() / static_cast<size_t>(shape[0]); ++r) {
        kernels::dequantize_row(type, bytes.data() + r * rb, deq.data() + r * shape[0], shape[0]);
      }
      w_[name] = std::vector<double>(deq.begin(), deq.end());
      types_[name] = type;
    }
  }

  // Index of the first token whose logits depend on an ambiguous activation rounding (one that a
  // value within float rounding of the reference's could round the other way); tokens.size()
  // when there is none. Set by forward().
  int ambiguous_from() const { return ambiguous_from_; }

  std::vector<std::vector<double>> forward(const std::vector<int32_t>& tokens) {
    const int n = static_cast<int>(tokens.size());
    ambiguous_from_ = n;
    const int hd = s_.head_dim();
    const int group = s_.n_heads / s_.n_kv_heads;
    std::vector<std::vector<double>> x(n);
    for (int t = 0; t < n; ++t) x[t] = row("token_embd.weight", tokens[t], s_.dim);
    for (int l = 0; l < s_.n_layers; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      std::vector<std::vector<double>> q(n), k(n), v(n);
      for (int t = 0; t < n; ++t) {
        const auto h = rms_norm(x[t], b + "attn_norm.weight");
        q[t] = matvec(b + "attn_q.weight", h, t);
        k[t] = matvec(b + "attn_k.weight", h, t);
        v[t] = matvec(b + "attn_v.weight", h, t);
        if (s_.arch == "qwen2") {
          add(q[t], w_.at(b + "attn_q.bias"));
          add(k[t], w_.at(b + "attn_k.bias"));
          add(v[t], w_.at(b + "attn_v.bias"));
        }
        rope(q[t], t, s_.n_heads);
        rope(k[t], t, s_.n_kv_heads);
      }
      for (int t = 0; t < n; ++t) {
        std::vector<double> attn(static_cast<size_t>(s_.n_heads) * hd, 0.0);
        for (int h = 0; h < s_.n_heads; ++h) {
          const int g = h / group;
          std::vector<double> scores(t + 1);
          double mx = -1e300;
          for (int j = 0; j <= t; ++j) {
            double d = 0;
            for (int i = 0; i < hd; ++i) d += q[t][h * hd + i] * k[j][g * hd + i];
            scores[j] = d / std::sqrt(static_cast<double>(hd));
            mx = std::max(mx, scores[j]);
          }
          double sum = 0;
          for (auto& sc : scores) sum += (sc = std::exp(sc - mx));
          for (int j = 0; j <= t; ++j) {
            for (int i = 0; i < hd; ++i) attn[h * hd + i] += scores[j] / sum * v[j][g * hd + i];
          }
        }
        add(x[t], matvec(b + "attn_output.weight", attn, t));
        const auto h2 = rms_norm(x[t], b + "ffn_norm.weight");
        auto gate = matvec(b + "ffn_gate.weight", h2, t);
        const auto up = matvec(b + "ffn_up.weight", h2, t);
        for (size_t i = 0; i < gate.size(); ++i)
          gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
        add(x[t], matvec(b + "ffn_down.weight", gate, t));
      }
    }
    const std::string out = s_.tied_output ? "token_embd.weight" : "output.weight";
    std::vector<std::vector<double>> logits(n);
    for (int t = 0; t < n; ++t) logits[t] = matvec(out, rms_norm(x[t], "output_norm.weight"), t);
    return logits;
  }

 private:
  std::vector<double> row(const std::string& name, int r, int n) const {
    const auto& w = w_.at(name);
    return std::vector<double>(w.begin() + static_cast<int64_t>(r) * n, w.begin() + (r + 1) * n);
  }
  std::vector<double> rms_norm(const std::vector<double>& x, const std::string& weight) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + s_.rms_eps);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * w_.at(weight)[i];
    return y;
  }
  static void add(std::vector<double>& y, const std::vector<double>& x) {
    for (size_t i = 0; i < y.size(); ++i) y[i] += x[i];
  }
  // y = W x with x rounded to the weight type's activation type first.
  std::vector<double> matvec(const std::string& name, const std::vector<double>& x, int token) {
    const TensorType type = types_.at(name);
    const TensorType at = kernels::activation_type(type);
    const int64_t cols = static_cast<int64_t>(x.size());
    const int64_t rows = static_cast<int64_t>(w_.at(name).size()) / cols;
    const bool unrounded =
        type == TensorType::F16 && kernels::f16_f32_activations(path_, rows, cols);
    std::vector<float> xf(x.begin(), x.end());
    if (at != TensorType::F32 && !unrounded) {
      std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(at, cols)));
      if (at == TensorType::Q8_0) {
        kernels::quantize_activations_q8_0(
            xf.data(), reinterpret_cast<kernels::BlockQ8_0*>(bytes.data()), cols);
      } else {
        kernels::quantize_row(at, xf.data(), bytes.data(), cols);
      }
      kernels::dequantize_row(at, bytes.data(), xf.data(), cols);
      if (is_ambiguous(at, x)) ambiguous_from_ = std::min(ambiguous_from_, token);
    }
    const auto& w = w_.at(name);
    std::vector<double> y(static_cast<size_t>(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) y[r] += w[r * cols + c] * xf[c];
    }
    return y;
  }
  // Whether some element of x, moved by a relative kMargin (a few f32 ulps: how far the engine's
  // f32 arithmetic may drift from this float64 one), would round to a different value of type `at`.
  static constexpr double kMargin = 3e-7;
  static bool is_ambiguous(TensorType at, const std::vector<double>& x) {
    const int64_t n = static_cast<int64_t>(x.size());
    if (at == TensorType::Q8_0 || at == TensorType::Q8_K) {
      // Both round x * 127 / amax per block (Q8_K: blocks of 256, scale -127 / signed max).
      const int64_t block = traits(at).block_size;
      for (int64_t b = 0; b < n; b += block) {
        double amax = 0;
        for (int64_t i = b; i < b + block; ++i) amax = std::max(amax, std::fabs(x[i]));
        for (int64_t i = b; i < b + block && amax > 0; ++i) {
          const double v = std::fabs(x[i]) * 127.0 / amax;
          if (std::fabs(v - std::floor(v) - 0.5) < kMargin * 127) return true;
        }
      }
      return false;
    }
    for (double v : x) {
      const float lo = static_cast<float>(v * (1 - kMargin)),
                  hi = static_cast<float>(v * (1 + kMargin));
      std::vector<uint8_t> a(2), b(2);
      kernels::quantize_row(at, &lo, a.data(), 1);
      kernels::quantize_row(at, &hi, b.data(), 1);
      if (a != b) return true;
    }
    return false;
  }

  void rope(std::vector<double>& v, int pos, int n_heads) const {
    const int hd = s_.head_dim();
    const bool neox = s_.arch == "qwen2";
    for (int h = 0; h < n_heads; ++h) {
      double* x = v.data() + h * hd;
      for (int i = 0; i < hd / 2; ++i) {
        const double theta = pos * std::pow(static_cast<double>(s_.rope_base), -2.0 * i / hd);
        const int i0 = neox ? i : 2 * i;
        const int i1 = neox ? i + hd / 2 : 2 * i + 1;
        const double a = x[i0], b = x[i1];
        x[i0] = a * std::cos(theta) - b * std::sin(theta);
        x[i1] = a * std::sin(theta) + b * std::cos(theta);
      }
    }
  }

  TinySpec s_;
  kernels::KernelPath path_;
  int ambiguous_from_ = 0;
  std::map<std::string, std::vector<double>> w_;
  std::map<std::string, TensorType> types_;
};

}  // namespace pareto::model::test
