#include "tokenizer/tokenizer_impl.h"

#include <cctype>
#include <cstdio>
#include <utility>

#include "tokenizer/unicode.h"

namespace pareto::tokenizer {
namespace {

constexpr std::string_view kSpmSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos)).append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

// The byte a <0xXX> token stands for (llama.cpp reads the two hex digits at offset 3).
char byte_token_value(const std::string& text) {
  if (text.size() < 5) return 0;
  return static_cast<char>(std::strtol(text.substr(3, 2).c_str(), nullptr, 16));
}

// Byte-level BPE token text -> bytes. Characters outside the byte table are kept visible the way
// llama.cpp's llama_decode_text marks them.
std::string decode_byte_level(const std::string& text) {
  std::string out;
  for (const uint32_t cpt : decode_utf8_lenient(text)) {
    const int byte = unicode_to_byte(cpt);
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
      continue;
    }
    std::string utf8;
    append_utf8(utf8, cpt);
    out += "[UNK_BYTE_0x";
    for (const char c : utf8) {
      char hex[3];
      std::snprintf(hex, sizeof(hex), "%02x", static_cast<unsigned>(static_cast<uint8_t>(c)));
      out += hex;
    }
    out += text + "]";
  }
  return out;
}

// llama.cpp's clean_up_tokenization_spaces passes, index for index (they edit in place, and a
// later pass reads what an earlier step wrote).
void clean_spaces(std::string& text) {
  int32_t total = static_cast<int32_t>(text.size());
  // 1: " ?", " !", " .", " ," lose the space.
  {
    const int32_t n = total;
    total = n ? 1 : 0;
    for (int32_t i = 1; i < n; ++i) {
      const char x = text[i];
      if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) total--;
      text[total++] = x;
    }
  }
  // 2: " ' " becomes "'".
  {
    const int32_t n = total;
    total = n ? 1 : 0;
    for (int32_t i = 1; i < n; ++i) {
      const char x = text[i];
      if (x == '\'' && i + 1 < n && text[i - 1] == ' ' && text[i + 1] == ' ') {
        total--;
        text[++i] = '\0';
      }
      text[total++] = x;
    }
  }
  // 3: " 's", " 'm", " 're", " 've" lose the space.
  {
    const int32_t n = total;
    total = n ? 1 : 0;
    for (int32_t i = 1; i < n; ++i) {
      const char x = text[i];
      if (text[i - 1] == ' ' && x == '\'' && i + 1 < n) {
        const char x1 = text[i + 1];
        if (x1 == 's' || x1 == 'm') {
          total--;
        } else if (i + 2 < n) {
          const char x2 = text[i + 2];
          if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) total--;
        }
      }
      text[total++] = x;
    }
  }
  text.resize(static_cast<size_t>(total));
}

}  // namespace

Result<TokenizerImpl> TokenizerImpl::create(const formats::Metadata& metadata) {
  TokenizerImpl impl;
  PARETO_TRY(impl.vocab_, load_vocab(metadata, PreTokenizer::flags_for));
  if (impl.vocab_.kind == VocabKind::kBpe) {
    PARETO_TRY(impl.merges_, BpeMerges::load(metadata, impl.vocab_));
    PARETO_TRY(impl.pre_, PreTokenizer::create(impl.vocab_.pre_name));
  }
  impl.piece_cache_.reserve(impl.vocab_.text.size());
  for (int32_t id = 0; id < impl.vocab_.n_vocab(); ++id) {
    impl.piece_cache_.push_back(impl.render_piece(id));
  }
  return impl;
}

std::vector<TokenizerImpl::Fragment> TokenizerImpl::partition(std::string_view text,
                                                              bool parse_special) const {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (const int32_t special : vocab_.special_tokens) {
    const uint32_t attr = vocab_.attr[special];
    // User-defined tokens are always cut out; control and unknown ones only when asked.
    if (!parse_special && (attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string& token = vocab_.text[special];
    next.clear();
    for (const Fragment& fragment : fragments) {
      if (fragment.token >= 0) {
        next.push_back(fragment);
        continue;
      }
      size_t offset = fragment.offset;
      size_t length = fragment.length;
      while (length > 0) {
        const size_t match = text.substr(0, offset + length).find(token, offset);
        if (match == std::string_view::npos) {
          next.push_back({-1, offset, length});
          break;
        }
        size_t left_length = match - offset;
        if (attr & kAttrLstrip) {
          while (left_length > 0 && is_space(text[offset + left_length - 1])) --left_length;
        }
        if (left_length > 0) next.push_back({-1, offset, left_length});
        next.push_back({special, 0, 0});
        size_t right_offset = match + token.size();
        size_t right_length = offset + length - right_offset;
        if (attr & kAttrRstrip) {
          while (right_length > 0 && is_space(text[right_offset])) {
            ++right_offset;
            --right_length;
          }
        }
        offset = right_offset;
        length = right_length;
      }
    }
    fragments.swap(next);
  }
  return fragments;
}

void TokenizerImpl::encode_raw(std::string_view text, bool prefix_space,
                               std::vector<int32_t>& out) const {
  if (vocab_.kind == VocabKind::kSpm) {
    std::string escaped;
    escaped.reserve(text.size() + kSpmSpace.size());
    if (prefix_space) escaped.append(kSpmSpace);
    escaped.append(replace_all(text, " ", kSpmSpace));
    spm_tokenize(vocab_, escaped, out);
    return;
  }
  for (const std::string& word : pre_->split(text)) {
    bpe_tokenize_word(vocab_, *merges_, word, out);
  }
}

std::vector<int32_t> TokenizerImpl::encode(std::string_view text, bool add_bos,
                                           bool parse_special) const {
  std::vector<int32_t> out;
  if (add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  // SPM: every raw fragment that starts the text or follows a special token gets the prefix.
  bool prev_special = true;
  for (const Fragment& fragment : partition(text, parse_special)) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      prev_special = true;
      continue;
    }
    encode_raw(text.substr(fragment.offset, fragment.length),
               vocab_.add_space_prefix && prev_special, out);
    prev_special = false;
  }
  return out;
}

std::string TokenizerImpl::render_piece(int32_t id) const {
  const uint32_t attr = vocab_.attr[id];
  const std::string& text = vocab_.text[id];
  if (attr & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return text;
  if (attr & kAttrNormal) {
    return vocab_.kind == VocabKind::kSpm ? replace_all(text, kSpmSpace, " ")
                                          : decode_byte_level(text);
  }
  if (attr & kAttrByte) return std::string(1, byte_token_value(text));
  return {};  // unused / undefined tokens render as nothing
}

std::string TokenizerImpl::token_to_piece(int32_t id, bool special) const {
  if (id < 0 || id >= vocab_.n_vocab()) return {};
  if (!special && (vocab_.attr[id] & (kAttrUnknown | kAttrControl))) return {};
  return piece_cache_[id];
}

std::string TokenizerImpl::decode(const int32_t* ids, size_t n) const {
  std::string text;
  // The first token loses one leading space: the one the SPM space prefix put there.
  bool remove_space = vocab_.add_space_prefix;
  for (size_t i = 0; i < n; ++i) {
    const std::string piece = token_to_piece(ids[i], /*special=*/false);
    const bool strip = remove_space && !piece.empty() && piece[0] == ' ';
    text.append(piece, strip ? 1 : 0);
    remove_space = false;
  }
  if (vocab_.clean_spaces) clean_spaces(text);
  return text;
}

}  // namespace pareto::tokenizer
