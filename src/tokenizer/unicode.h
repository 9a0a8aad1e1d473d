// UTF-8 and GPT-2 byte-level helpers shared by the tokenizers. The lenient decoder reproduces
// llama.cpp's unicode_cpts_from_utf8 (so invalid input tokenizes the way llama.cpp tokenizes it);
// the strict checks are for emitting text (IncrementalDecoder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pareto::tokenizer {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Length of the UTF-8 sequence a lead byte announces, by its high 4 bits, as llama.cpp's
// unicode_len_utf8: continuation and invalid lead bytes count as 1.
inline size_t utf8_sequence_length(uint8_t lead) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

// Code points of `text`, decoding as llama.cpp does: only the lead byte pattern and the
// continuation bits are checked (overlong forms and surrogates are accepted); an undecodable
// byte becomes U+FFFD and decoding resumes at the next byte.
std::vector<uint32_t> decode_utf8_lenient(std::string_view text);

// Appends the UTF-8 form of `cpt` (surrogates encoded like any other code point, as llama.cpp
// does; values above U+10FFFF, which llama.cpp rejects with an exception, become U+FFFD).
void append_utf8(std::string& out, uint32_t cpt);

// Length of the valid UTF-8 sequence at text[pos] (1..4), 0 if the bytes there can still become
// valid when more bytes arrive (a truncated but so far valid sequence at the end of `text`), or
// -1 if the byte at `pos` can never start a valid sequence here. Strict (RFC 3629): no overlong
// forms, no surrogates, nothing above U+10FFFF.
int utf8_valid_sequence_at(std::string_view text, size_t pos);

// True if `text` is entirely valid UTF-8 (strict, as above).
bool is_valid_utf8(std::string_view text);

// GPT-2's bytes_to_unicode: every byte maps to one printable code point, whose UTF-8 form is
// what byte-level BPE vocabularies store.
const std::string& byte_to_unicode_utf8(uint8_t byte);
// Inverse of the above on code points: the byte, or -1 when `cpt` is not one of the 256.
int unicode_to_byte(uint32_t cpt);

}  // namespace pareto::tokenizer
