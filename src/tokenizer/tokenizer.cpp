#include "tokenizer/tokenizer.h"

#include <utility>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace pareto::tokenizer {

Result<Tokenizer> Tokenizer::from_metadata(const formats::Metadata& metadata) {
  PARETO_TRY(TokenizerImpl impl, TokenizerImpl::create(metadata));
  return Tokenizer(std::make_unique<TokenizerImpl>(std::move(impl)));
}

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  return impl_->encode(text, add_bos, parse_special);
}

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
  return impl_->token_to_piece(id, special);
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  return impl_->decode(ids.data(), ids.size());
}

int32_t Tokenizer::n_vocab() const {
  return impl_->vocab().n_vocab();
}
int32_t Tokenizer::bos_id() const {
  return impl_->vocab().bos_id;
}
int32_t Tokenizer::eos_id() const {
  return impl_->vocab().eos_id;
}
int32_t Tokenizer::eot_id() const {
  return impl_->vocab().eot_id;
}
int32_t Tokenizer::unk_id() const {
  return impl_->vocab().unk_id;
}
bool Tokenizer::add_bos_default() const {
  return impl_->vocab().add_bos;
}
bool Tokenizer::add_eos_default() const {
  return impl_->vocab().add_eos;
}
bool Tokenizer::add_space_prefix() const {
  return impl_->vocab().add_space_prefix;
}
std::string_view Tokenizer::pre_type() const {
  return impl_->vocab().pre_name;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  const Vocab& v = impl_->vocab();
  return id >= 0 && id < v.n_vocab() && v.end_of_generation[id];
}

std::string_view Tokenizer::kind() const {
  return impl_->vocab().kind == VocabKind::kSpm ? "spm" : "bpe";
}

int32_t Tokenizer::token_id(std::string_view text) const {
  return impl_->vocab().find(text);
}

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string kNone;
  const Vocab& v = impl_->vocab();
  return id >= 0 && id < v.n_vocab() ? v.text[id] : kNone;
}

namespace {
constexpr std::string_view kReplacementUtf8 = "\xef\xbf\xbd";
}  // namespace

std::string IncrementalDecoder::push(int32_t id) {
  std::string piece = tokenizer_->token_to_piece(id);
  if (first_) {
    // Same rule as decode(): only the very first token may lose the prefix space.
    if (tokenizer_->add_space_prefix() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    first_ = false;
  }
  pending_ += piece;
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const int len = utf8_valid_sequence_at(pending_, pos);
    if (len == 0) break;  // an incomplete character: wait for the next token
    if (len < 0) {        // can never become valid
      out += kReplacementUtf8;
      ++pos;
      continue;
    }
    out.append(pending_, pos, static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
  }
  pending_.erase(0, pos);
  return out;
}

std::string IncrementalDecoder::flush() {
  // What is left is a truncated sequence (push emits everything else): one replacement for it.
  std::string out = pending_.empty() ? std::string() : std::string(kReplacementUtf8);
  pending_.clear();
  return out;
}

}  // namespace pareto::tokenizer
