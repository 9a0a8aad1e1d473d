#include "tokenizer/unicode.h"

#include <array>

namespace pareto::tokenizer {
namespace {

// Decodes one code point at text[offset] with llama.cpp's rules; false if undecodable.
bool decode_one_lenient(std::string_view text, size_t& offset, uint32_t& cpt) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[offset + i]); };
  const auto is_cont = [&](size_t i) {
    return offset + i < text.size() && (byte(i) & 0xC0) == 0x80;
  };
  const uint8_t b0 = byte(0);
  if (!(b0 & 0x80)) {
    cpt = b0;
    offset += 1;
    return true;
  }
  if (!(b0 & 0x40)) return false;  // continuation byte as lead
  if (!(b0 & 0x20)) {
    if (!is_cont(1)) return false;
    cpt = ((b0 & 0x1Fu) << 6) | (byte(1) & 0x3Fu);
    offset += 2;
    return true;
  }
  if (!(b0 & 0x10)) {
    if (!is_cont(1) || !is_cont(2)) return false;
    cpt = ((b0 & 0x0Fu) << 12) | ((byte(1) & 0x3Fu) << 6) | (byte(2) & 0x3Fu);
    offset += 3;
    return true;
  }
  if (!(b0 & 0x08)) {
    if (!is_cont(1) || !is_cont(2) || !is_cont(3)) return false;
    cpt = ((b0 & 0x07u) << 18) | ((byte(1) & 0x3Fu) << 12) | ((byte(2) & 0x3Fu) << 6) |
          (byte(3) & 0x3Fu);
    offset += 4;
    return true;
  }
  return false;
}

// GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order.
struct ByteTables {
  std::array<uint32_t, 256> byte_to_cpt{};
  std::array<std::string, 256> byte_to_utf8{};
  std::array<int16_t, 512> cpt_to_byte{};  // all mapped code points are below U+0144

  ByteTables() {
    cpt_to_byte.fill(-1);
    uint32_t next_extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      byte_to_cpt[b] = printable ? b : next_extra++;
      append_utf8(byte_to_utf8[b], byte_to_cpt[b]);
      cpt_to_byte[byte_to_cpt[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& byte_tables() {
  static const ByteTables tables;  // immutable after construction
  return tables;
}

}  // namespace

std::vector<uint32_t> decode_utf8_lenient(std::string_view text) {
  std::vector<uint32_t> cpts;
  cpts.reserve(text.size());
  size_t offset = 0;
  while (offset < text.size()) {
    uint32_t cpt = 0;
    if (decode_one_lenient(text, offset, cpt)) {
      cpts.push_back(cpt);
    } else {
      cpts.push_back(kReplacementChar);
      ++offset;
    }
  }
  return cpts;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt > 0x10FFFF) cpt = kReplacementChar;
  if (cpt <= 0x7F) {
    out.push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  }
}

int utf8_valid_sequence_at(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[pos + i]); };
  const uint8_t b0 = byte(0);
  if (b0 < 0x80) return 1;
  int len = 0;
  // Allowed range of the second byte (RFC 3629 table), which excludes overlong forms,
  // surrogates and code points above U+10FFFF.
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int i = 1; i < len; ++i) {
    if (pos + i >= text.size()) return 0;  // so far valid, waiting for more bytes
    const uint8_t b = byte(i);
    const uint8_t allowed_lo = i == 1 ? lo : 0x80;
    const uint8_t allowed_hi = i == 1 ? hi : 0xBF;
    if (b < allowed_lo || b > allowed_hi) return -1;
  }
  return len;
}

bool is_valid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const int len = utf8_valid_sequence_at(text, pos);
    if (len <= 0) return false;
    pos += static_cast<size_t>(len);
  }
  return true;
}

const std::string& byte_to_unicode_utf8(uint8_t byte) {
  return byte_tables().byte_to_utf8[byte];
}

int unicode_to_byte(uint32_t cpt) {
  if (cpt >= byte_tables().cpt_to_byte.size()) return -1;
  return byte_tables().cpt_to_byte[cpt];
}

}  // namespace pareto::tokenizer
