// libFuzzer entry for the GGUF reader: any input must parse or fail with an error, never crash,
// read out of bounds (ASan) or allocate without bound (-rss_limit_mb); a vocabulary it holds
// must build a tokenizer or fail with an error (vocab_check.h).
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/model_file.h"
#include "vocab_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pareto::formats;
  auto file = read_gguf_from_memory(data, size, "fuzz.gguf");
  if (!file) return 0;
  // Touch the first and last byte of every tensor and exercise the typed getters, so a view
  // that escapes the input or a getter that mishandles a type is caught.
  volatile uint8_t sink = 0;
  for (const auto& t : file->tensors()) {
    if (t.nbytes > 0) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
    (void)t.n_elements();
  }
  const Metadata& md = file->metadata();
  for (const auto& [key, value] : md.entries()) {
    (void)value;
    (void)md.get_uint(key);
    (void)md.get_int(key);
    (void)md.get_float(key);
    (void)md.get_bool(key);
    (void)md.get_string(key);
    (void)md.get_string_array(key);
    (void)md.get_float_array(key);
    (void)md.get_int_array(key);
  }
  fuzz_vocabulary(md);
  return 0;
}
