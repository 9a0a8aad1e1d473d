// KIVI: asymmetric 4- and 2-bit KV quantization (Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit
// Quantization for KV Cache", ICML 2024). Keys are quantized per channel over a group of tokens
// (their outlier channels stay apart), values per token over groups of channels, each group with
// its own minimum and scale (f16); the most recent tokens stay in f16 (KvCache keeps them).
//
// These are the arithmetic only: KvCache decides which entries are quantized when.
//   key group: params [2 * head_dim] f16 (the channels' minima, then their scales), one per group
//              of tokens; an entry's key is head_dim codes of `bits` bits (packing below).
//   value:     per group of kValueGroup channels (the last may be shorter): f16 scale, f16 minimum,
//              then the group's codes packed likewise.
// Codes of n elements take ceil(n / (8 / bits)) = stride bytes; byte i % stride holds element i
// in bits (i / stride) * bits up (elements `stride` apart share a byte, as in ggml's Q4_0, so
// unpacking vectorizes). A code c decodes to min + c * scale. The minimum is rounded down and the
// scale up to f16, so every input decodes within half a scale step of itself (inputs beyond f16's
// range excepted).
#pragma once

#include <cstddef>
#include <cstdint>

namespace pareto::kv::kivi {

constexpr int kValueGroup = 32;  // channels per value group (the paper's group size)

// Bytes of one entry's key codes / of one encoded value, head_dim elements of `bits` (2 or 4).
size_t key_code_bytes(int bits, int head_dim);
size_t value_bytes(int bits, int head_dim);

// Per-channel parameters of a group of n keys ([n, head_dim] floats): params [2 * head_dim].
void key_group_params(int bits, const float* keys, int n, int head_dim, uint16_t* params);
// One key's codes with its group's parameters, and back.
void encode_key(int bits, const float* key, const uint16_t* params, int head_dim, uint8_t* codes);
void decode_key(int bits, const uint8_t* codes, const uint16_t* params, int head_dim, float* out);
// The same from the parameters widened once ([head_dim] minima, [head_dim] scales): decoding a
// cache's keys group by group converts each group's parameters once, not once per key.
void widen_key_params(const uint16_t* params, int head_dim, float* min, float* scale);
void decode_key(int bits, const uint8_t* codes, const float* min, const float* scale, int head_dim,
                float* out);

// One value, its own parameters included, and back.
void encode_value(int bits, const float* value, int head_dim, uint8_t* out);
void decode_value(int bits, const uint8_t* in, int head_dim, float* out);

}  // namespace pareto::kv::kivi
