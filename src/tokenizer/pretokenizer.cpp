#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <utility>

#include "base/check.h"
#include "tokenizer/unicode.h"

namespace pareto::tokenizer {
namespace {

// Regexes as llama.cpp's llm_tokenizer_bpe has them for each pre-type (its "adapted" forms where
// it rewrote the Hugging Face ones, e.g. (?i:'s) spelled '[sS]). Applied in sequence: each regex
// splits every piece the previous ones produced; text no match covers stays a piece of its own.
constexpr const char* kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr const char* kLlama3Regex =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// CJK ideographs, U+0800..U+4E00 and Hangul, as deepseek's tokenizer.json lists them.
constexpr const char* kDeepseekCjkRegex =
    "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+";
constexpr const char* kBloomRegex =
    " ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+";

struct PreType {
  std::vector<std::string_view> names;
  std::vector<const char*> regexes;
  PreTypeFlags flags;
};

// Flags: {add_bos, clean_spaces, ignore_merges, has_bos}.
const std::vector<PreType>& pre_types() {
  static const std::vector<PreType> types = {
      {{"default", ""},
       {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2Regex, "\\p{N}+", "[0-9][0-9][0-9]"},
       {false, true, false, true}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
       {kLlama3Regex},
       {true, true, true, true}},
      {{"dbrx", "smaug-bpe"}, {kLlama3Regex}, {false, true, false, true}},
      {{"glm4", "chatglm-bpe"}, {kLlama3Regex}, {false, true, false, false}},
      {{"deepseek-coder"},
       {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjkRegex, "\\p{N}"},
       {false, false, false, true}},
      {{"falcon"},
       {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2Regex, "[0-9][0-9][0-9]"},
       {false, true, false, true}},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
        "mellum", "modern-bert", "exaone4", "mpt", "olmo"},
       {kGpt2Regex},
       {false, true, false, true}},
      {{"starcoder", "refact", "codeshell", "exaone", "minerva-7b"},
       {"\\p{N}", kGpt2Regex},
       {false, true, false, true}},
      {{"command-r", "smollm"}, {"\\p{N}", kGpt2Regex}, {false, false, false, true}},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2"},
       {kQwen2Regex},
       {false, false, false, true}},
      {{"stablelm2", "megrez"}, {kQwen2Regex}, {false, true, false, true}},
      {{"poro-chat"}, {kBloomRegex}, {false, false, false, true}},
      {{"bloom", "gpt3-finnish"}, {kBloomRegex}, {false, true, false, true}},
      {{"viking"}, {kBloomRegex, "\\p{N}"}, {false, false, false, true}},
  };
  return types;
}

const PreType* find_pre_type(const std::string& name) {
  for (const PreType& type : pre_types()) {
    for (std::string_view n : type.names) {
      if (n == name) return &type;
    }
  }
  return nullptr;
}

Error unknown_pre_type(const std::string& name) {
  return Error{str_cat("tokenizer: unknown tokenizer.ggml.pre '", name,
                       "' (supported: ", PreTokenizer::supported_names(), ")")};
}

// Next UTF-8 character boundary after `pos` in valid UTF-8.
size_t next_char(std::string_view text, size_t pos) {
  return pos + utf8_sequence_length(static_cast<uint8_t>(text[pos]));
}

}  // namespace

struct PreTokenizer::Regexes {
  std::vector<pcre2_code*> codes;
  Regexes() = default;
  Regexes(const Regexes&) = delete;
  Regexes& operator=(const Regexes&) = delete;
  ~Regexes() {
    for (pcre2_code* code : codes) pcre2_code_free(code);
  }
};

PreTokenizer::PreTokenizer(std::unique_ptr<Regexes> regexes) : regexes_(std::move(regexes)) {}
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

std::string PreTokenizer::supported_names() {
  std::string out;
  for (const PreType& type : pre_types()) {
    for (std::string_view n : type.names) {
      if (n.empty()) continue;
      if (!out.empty()) out += ", ";
      out += n;
    }
  }
  return out;
}

Result<PreTypeFlags> PreTokenizer::flags_for(const std::string& pre_name) {
  const PreType* type = find_pre_type(pre_name);
  if (!type) return tl::unexpected(unknown_pre_type(pre_name));
  return type->flags;
}

Result<PreTokenizer> PreTokenizer::create(const std::string& pre_name) {
  const PreType* type = find_pre_type(pre_name);
  if (!type) return tl::unexpected(unknown_pre_type(pre_name));
  auto regexes = std::make_unique<Regexes>();
  for (const char* pattern : type->regexes) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
    if (!code) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(error_code, message.data(), message.size());
      return make_error("tokenizer: pre-tokenizer '", pre_name, "': regex '", pattern,
                        "' does not compile at offset ", error_offset, ": ",
                        reinterpret_cast<const char*>(message.data()));
    }
    regexes->codes.push_back(code);
    // JIT is an optimisation only: without it pcre2_match interprets the same pattern.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  return PreTokenizer(std::move(regexes));
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  // `canonical` holds the text as llama.cpp re-encodes its code points; `matchable` is the same
  // with surrogates (which llama.cpp's decoder lets through but PCRE2 rejects) replaced by
  // U+FFFD, whose encoding has the same length, so byte offsets agree between the two.
  std::string canonical, matchable;
  if (is_valid_utf8(text)) {
    canonical = matchable = std::string(text);
  } else {
    for (const uint32_t cpt : decode_utf8_lenient(text)) {
      append_utf8(canonical, cpt);
      append_utf8(matchable, cpt >= 0xD800 && cpt <= 0xDFFF ? kReplacementChar : cpt);
    }
  }

  using Piece = std::pair<size_t, size_t>;  // [begin, end) byte offsets
  std::vector<Piece> pieces;
  if (!matchable.empty()) pieces.emplace_back(0, matchable.size());

  pcre2_match_data* match = pcre2_match_data_create(1, nullptr);
  PARETO_CHECK(match != nullptr);
  for (pcre2_code* code : regexes_->codes) {
    std::vector<Piece> next;
    next.reserve(pieces.size() * 2);
    for (const auto& [begin, end] : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(matchable.data() + begin);
      const size_t length = end - begin;
      size_t offset = 0, covered = 0;
      while (offset < length) {
        int rc = pcre2_match(code, subject, length, offset, PCRE2_NO_UTF_CHECK, match, nullptr);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {  // e.g. JIT stack exhausted: interpret
          rc = pcre2_match(code, subject, length, offset, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, match,
                           nullptr);
        }
        if (rc < 0) break;  // no (further) match: the rest stays one piece
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
        const size_t match_begin = ovector[0], match_end = ovector[1];
        if (match_end <= match_begin) {  // empty match: try again one character later
          offset = next_char(matchable, begin + match_begin) - begin;
          continue;
        }
        if (match_begin > covered) next.emplace_back(begin + covered, begin + match_begin);
        next.emplace_back(begin + match_begin, begin + match_end);
        covered = offset = match_end;
      }
      if (covered < length) next.emplace_back(begin + covered, end);
    }
    pieces = std::move(next);
  }
  pcre2_match_data_free(match);

  std::vector<std::string> words;
  words.reserve(pieces.size());
  for (const auto& [begin, end] : pieces) {
    std::string word;
    word.reserve((end - begin) * 2);
    for (size_t i = begin; i < end; ++i) {
      word += byte_to_unicode_utf8(static_cast<uint8_t>(canonical[i]));
    }
    words.push_back(std::move(word));
  }
  return words;
}

}  // namespace pareto::tokenizer
