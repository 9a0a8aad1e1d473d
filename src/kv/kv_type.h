// How KV entries are stored: the cache types of llama.cpp's --cache-type-k / --cache-type-v.
// An entry is one head's key or value vector of head_dim elements, encoded on its own (Q8_0 and
// Q4_0 blocks of 32 never straddle two entries), so entries can be moved byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace pareto::kv {

enum class KvType {
  kF32,
  kF16,   // llama.cpp's default cache type
  kQ8_0,  // head_dim must be a multiple of 32
  kQ4_0,  // head_dim must be a multiple of 32
  // KIVI (kv_kivi.h): keys per channel over groups of tokens, values per token; the most recent
  // tokens stay in f16. Entries are not encoded on their own: KvCache quantizes them in groups
  // (kv_encode / kv_decode do not take these).
  kKivi4,
  kKivi2,
};

// "f32", "f16", "q8_0", "q4_0" (llama.cpp's names), "kivi4", "kivi2".
std::string_view kv_type_name(KvType type);
// Parses a name as kv_type_name prints it; the error lists the valid names.
Result<KvType> parse_kv_type(std::string_view name);
// Whether `type` can store vectors of head_dim elements; the error says why not.
Status check_kv_type(KvType type, int head_dim);

// Bits per element of a KIVI type; 0 for the others.
int kivi_bits(KvType type);
// Bytes of one encoded entry of head_dim elements (not for KIVI types).
size_t kv_entry_bytes(KvType type, int head_dim);
// Bytes a page stores per key / per value: kv_entry_bytes, or a KIVI key's codes (its group's
// parameters are kept apart) / a KIVI value with its parameters.
size_t kv_key_bytes(KvType type, int head_dim);
size_t kv_value_bytes(KvType type, int head_dim);
// Encodes head_dim floats (f16: round to nearest even; q8_0/q4_0: ggml's reference rules).
void kv_encode(KvType type, const float* src, uint8_t* dst, int head_dim);
// Decodes an entry back to head_dim floats. Also decodes n consecutive entries at once
// (head_dim = n * the entry's head_dim): entries are whole blocks, stored back to back.
void kv_decode(KvType type, const uint8_t* src, float* dst, int head_dim);

}  // namespace pareto::kv
