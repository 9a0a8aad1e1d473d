// libFuzzer target for the llama2.c reader (checkpoint and tokenizer.bin): any input must parse or
// fail with an error, never crash, read out of bounds (ASan) or allocate without bound
// (-rss_limit_mb), and the vocabulary must build a tokenizer (vocab_check.h). Input: a
// little-endian uint32 n, then the checkpoint (the next n % (rest + 1) bytes), then the tokenizer
// (the remaining bytes).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "formats/model_file.h"
#include "vocab_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t n;
  std::memcpy(&n, data, 4);
  const std::span<const uint8_t> rest(data + 4, size - 4);
  const size_t split = n % (rest.size() + 1);
  auto file = pareto::formats::read_llama2c_from_memory(rest.first(split), "fuzz.bin",
                                                        rest.subspan(split), "fuzz.tok.bin");
  if (!file) return 0;
  // Touch the first and last byte of every tensor view; the vocabulary builds a tokenizer.
  volatile uint8_t sink = 0;
  for (const auto& t : file->tensors()) {
    if (t.nbytes > 0) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
  }
  fuzz_vocabulary(file->metadata());
  return 0;
}
