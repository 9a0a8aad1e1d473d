#include "tokenizer/encoders.h"

#include <algorithm>
#include <queue>
#include <string>

#include "tokenizer/unicode.h"

namespace pareto::tokenizer {
namespace {

// A run of the input, linked to its neighbours; merged symbols keep the left one's slot and the
// right one's length drops to 0.
struct Symbol {
  int32_t prev = -1;
  int32_t next = -1;
  size_t begin = 0;  // byte offset into the text
  size_t length = 0;
  int32_t id = -1;  // BPE only: the token whose text this symbol is, or -1
};

// Splits `text` into UTF-8 characters (by lead byte, as llama.cpp does, so invalid bytes become
// one-byte symbols).
std::vector<Symbol> split_chars(std::string_view text) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  size_t offset = 0;
  while (offset < text.size()) {
    Symbol s;
    s.begin = offset;
    s.length =
        std::min(utf8_sequence_length(static_cast<uint8_t>(text[offset])), text.size() - offset);
    offset += s.length;
    s.prev = static_cast<int32_t>(symbols.size()) - 1;
    s.next = offset == text.size() ? -1 : static_cast<int32_t>(symbols.size()) + 1;
    symbols.push_back(s);
  }
  return symbols;
}

std::string_view symbol_text(std::string_view text, const Symbol& s) {
  return text.substr(s.begin, s.length);
}

struct SpmBigram {
  int32_t left;
  int32_t right;
  float score;
  size_t size;
};
// Highest score first; on ties the leftmost pair.
struct SpmBigramOrder {
  bool operator()(const SpmBigram& a, const SpmBigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

struct BpeBigram {
  int32_t left;
  int32_t right;
  int32_t rank;
  size_t size;
};
// Lowest rank first; on ties the leftmost pair.
struct BpeBigramOrder {
  bool operator()(const BpeBigram& a, const BpeBigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void spm_tokenize(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  std::vector<Symbol> symbols = split_chars(text);
  if (symbols.empty()) return;
  std::priority_queue<SpmBigram, std::vector<SpmBigram>, SpmBigramOrder> queue;
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left == -1 || right == -1) return;
    const size_t size = symbols[left].length + symbols[right].length;
    const int32_t id = vocab.find(text.substr(symbols[left].begin, size));
    if (id < 0) return;
    queue.push({left, right, vocab.score[id], size});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const SpmBigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    // Stale: one side was merged away or grew since this pair was queued.
    if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.size) {
      continue;
    }
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  // Every merged symbol is a token; a single character that is not falls back to byte tokens.
  // (llama.cpp's rev_merge re-segmentation can never trigger: its keys are all tokens.)
  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = symbol_text(text, symbols[i]);
    const int32_t id = vocab.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (const char c : piece) {
      const int32_t byte_id = vocab.spm_byte_token(static_cast<uint8_t>(c));
      if (byte_id >= 0) out.push_back(byte_id);
    }
  }
}

Result<BpeMerges> BpeMerges::load(const formats::Metadata& metadata, const Vocab& vocab) {
  const std::string src =
      metadata.source().empty() ? "tokenizer" : "tokenizer: " + metadata.source();
  if (!metadata.contains("tokenizer.ggml.merges")) {
    return make_error(src, ": missing tokenizer.ggml.merges (required by tokenizer.ggml.model '",
                      vocab.model_name, "')");
  }
  PARETO_TRY(const std::vector<std::string> lines,
             metadata.get_string_array("tokenizer.ggml.merges"));
  BpeMerges merges;
  merges.n_merges_ = lines.size();
  merges.rank_by_ids_.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const size_t space = line.find(' ', 1);
    if (space == std::string_view::npos) continue;  // no pair: can never match
    const std::string_view left = line.substr(0, space);
    const std::string_view right = line.substr(space + 1);
    const int32_t left_id = vocab.find(left);
    const int32_t right_id = vocab.find(right);
    const auto rank = static_cast<int32_t>(i);
    if (left_id >= 0 && right_id >= 0) {
      merges.rank_by_ids_.emplace(key(left_id, right_id), rank);
    } else {
      merges.rank_by_text_.emplace(std::string(line), rank);
    }
  }
  return merges;
}

int32_t BpeMerges::rank(int32_t left_id, int32_t right_id, std::string_view left,
                        std::string_view right) const {
  if (left_id >= 0 && right_id >= 0) {
    const auto it = rank_by_ids_.find(key(left_id, right_id));
    return it == rank_by_ids_.end() ? -1 : it->second;
  }
  if (rank_by_text_.empty()) return -1;
  std::string joined;
  joined.reserve(left.size() + 1 + right.size());
  joined.append(left).append(1, ' ').append(right);
  const auto it = rank_by_text_.find(joined);
  return it == rank_by_text_.end() ? -1 : it->second;
}

void bpe_tokenize_word(const Vocab& vocab, const BpeMerges& merges, std::string_view word,
                       std::vector<int32_t>& out) {
  if (word.empty()) return;
  if (vocab.ignore_merges) {
    const int32_t id = vocab.find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols = split_chars(word);
  for (Symbol& s : symbols) s.id = vocab.find(symbol_text(word, s));

  std::priority_queue<BpeBigram, std::vector<BpeBigram>, BpeBigramOrder> queue;
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left == -1 || right == -1) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    const int32_t rank = merges.rank(l.id, r.id, symbol_text(word, l), symbol_text(word, r));
    if (rank < 0) return;
    queue.push({left, right, rank, l.length + r.length});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const BpeBigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    // Stale: same test as llama.cpp's text comparison, since symbols only ever grow rightwards.
    if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.size) {
      continue;
    }
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    left.id = vocab.find(symbol_text(word, left));
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    // As llama.cpp: try each byte of the encoded text as a token, dropping those that are not.
    for (const char c : symbol_text(word, s)) {
      const int32_t id = vocab.find(std::string_view(&c, 1));
      if (id >= 0) out.push_back(id);
    }
  }
}

}  // namespace pareto::tokenizer
