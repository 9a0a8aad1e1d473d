#include "tokenizer/jinja_lexer.h"

#include <charconv>
#include <limits>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {

std::string normalize_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string describe_pos(const std::string& source, uint32_t pos) {
  size_t line = 1;
  size_t line_start = 0;
  const size_t end = std::min<size_t>(pos, source.size());
  for (size_t i = 0; i < end; ++i) {
    if (source[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  const size_t col = utf8_length(std::string_view(source).substr(line_start, end - line_start)) + 1;
  return cat("line ", std::to_string(line), ":", std::to_string(col));
}

namespace {

bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '_' ||
         u >= 0x80;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  Result<std::vector<Token>> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      const size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        push_data(pos, std::string_view(src_).substr(pos));
        break;
      }
      const char kind = src_[tag + 1];
      size_t inner = tag + 2;
      char sign = 0;
      if (inner < src_.size() && (src_[inner] == '-' || src_[inner] == '+')) sign = src_[inner++];
      size_t raw_end = 0;
      const bool raw = kind == '%' && match_raw_open(inner, &raw_end);
      push_data(pos, strip_text(std::string_view(src_).substr(pos, tag - pos), sign, kind == '{'));
      if (raw) {
        line_starting_ = src_[raw_end - 1] == '\n';
        PARETO_TRY(pos, lex_raw(tag, raw_end));
        continue;
      }
      line_starting_ = false;
      if (kind == '#') {
        PARETO_TRY(pos, lex_comment(tag, inner));
      } else {
        PARETO_TRY(pos, lex_tag(tag, inner, kind));
      }
    }
    Token eof;
    eof.type = Tok::kEof;
    eof.pos = static_cast<uint32_t>(src_.size());
    out_.push_back(std::move(eof));
    return std::move(out_);
  }

 private:
  tl::unexpected<Error> fail(size_t pos, const std::string& what) const {
    return make_error("chat template: syntax error at ",
                      describe_pos(src_, static_cast<uint32_t>(pos)), ": ", what);
  }

  bool at(size_t pos, std::string_view s) const { return src_.compare(pos, s.size(), s) == 0; }

  size_t skip_space(size_t pos) const {
    return pos + leading_space(std::string_view(src_).substr(pos));
  }

  size_t find_tag(size_t pos) const {
    for (size_t i = src_.find('{', pos); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string::npos;
  }

  // Whitespace control of the text before a tag whose opener has `sign` (jinja2's OptionalLStrip).
  std::string_view strip_text(std::string_view text, char sign, bool variable) const {
    if (sign == '-') return text.substr(0, text.size() - trailing_space(text));
    if (sign == '+' || variable) return text;
    const size_t nl = text.rfind('\n');
    const size_t line = nl == std::string_view::npos ? 0 : nl + 1;
    if ((line > 0 || line_starting_) && line < text.size() &&
        leading_space(text.substr(line)) == text.size() - line) {
      return text.substr(0, line);
    }
    return text;
  }

  void push_data(size_t pos, std::string_view text) {
    if (text.empty()) return;
    Token t;
    t.type = Tok::kData;
    t.pos = static_cast<uint32_t>(pos);
    t.text = std::string(text);
    out_.push_back(std::move(t));
  }

  void push(Tok type, size_t pos, std::string text = {}) {
    Token t;
    t.type = type;
    t.pos = static_cast<uint32_t>(pos);
    t.text = std::move(text);
    out_.push_back(std::move(t));
  }

  // The end of a block-like tag at `pos` ("+%}", "-%}" + whitespace, "%}" + one newline), or 0.
  size_t match_block_end(size_t pos, char close) const {
    const std::string end{close, '}'};
    if (at(pos, "+" + end)) return pos + 3;
    if (at(pos, "-" + end)) return skip_space(pos + 3);
    if (at(pos, end)) return pos + 2 + ((pos + 2 < src_.size() && src_[pos + 2] == '\n') ? 1 : 0);
    return 0;
  }

  bool match_raw_open(size_t pos, size_t* end) const {
    pos = skip_space(pos);
    if (!at(pos, "raw")) return false;
    pos = skip_space(pos + 3);
    if (at(pos, "-%}")) {
      *end = skip_space(pos + 3);
      return true;
    }
    if (at(pos, "%}")) {
      *end = pos + 2;
      return true;
    }
    return false;
  }

  Result<size_t> lex_raw(size_t tag, size_t start) {
    for (size_t p = src_.find("{%", start); p != std::string::npos; p = src_.find("{%", p + 1)) {
      size_t q = p + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      q = skip_space(q);
      if (!at(q, "endraw")) continue;
      const size_t end = match_block_end(skip_space(q + 6), '%');
      if (end == 0) continue;
      push_data(start, strip_text(std::string_view(src_).substr(start, p - start), sign, false));
      line_starting_ = src_[end - 1] == '\n';
      return end;
    }
    return fail(tag, "missing end of raw directive ({% endraw %})");
  }

  Result<size_t> lex_comment(size_t tag, size_t start) {
    const size_t close = src_.find("#}", start);
    if (close == std::string::npos) return fail(tag, "missing end of comment tag ('#}')");
    size_t end = close + 2;
    if (close > start && src_[close - 1] == '-') {
      end = skip_space(end);
    } else if (!(close > start && src_[close - 1] == '+') && end < src_.size() &&
               src_[end] == '\n') {
      ++end;
    }
    line_starting_ = src_[end - 1] == '\n';
    return end;
  }

  Result<size_t> lex_tag(size_t tag, size_t pos, char kind) {
    push(kind == '%' ? Tok::kBlockBegin : Tok::kVarBegin, tag);
    std::string balance;
    while (pos < src_.size()) {
      if (balance.empty()) {
        size_t end = 0;
        if (kind == '%') {
          end = match_block_end(pos, '%');
        } else if (at(pos, "-}}")) {
          end = skip_space(pos + 3);
        } else if (at(pos, "}}")) {
          end = pos + 2;
        }
        if (end != 0) {
          push(kind == '%' ? Tok::kBlockEnd : Tok::kVarEnd, pos);
          line_starting_ = src_[end - 1] == '\n';
          return end;
        }
      }
      const size_t after_space = skip_space(pos);
      if (after_space != pos) {
        pos = after_space;
        continue;
      }
      const char c = src_[pos];
      if (c >= '0' && c <= '9') {
        PARETO_TRY(pos, lex_number(pos));
      } else if (is_word_byte(c)) {
        size_t end = pos;
        while (end < src_.size() && is_word_byte(src_[end])) {
          size_t len = 0;
          if (is_space(utf8_at(src_, end, &len))) break;
          end += len;
        }
        push(Tok::kName, pos, src_.substr(pos, end - pos));
        pos = end;
      } else if (c == '"' || c == '\'') {
        PARETO_TRY(pos, lex_string(pos));
      } else {
        PARETO_TRY(pos, lex_operator(pos, &balance));
      }
    }
    return pos;  // end of input inside a tag: the parser reports it
  }

  Result<size_t> lex_operator(size_t pos, std::string* balance) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (at(pos, op)) {
        push(Tok::kOp, pos, std::string(op));
        return pos + 2;
      }
    }
    const char c = src_[pos];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      size_t len = 0;
      utf8_at(src_, pos, &len);
      return fail(pos, cat("unexpected char '", std::string_view(src_).substr(pos, len), "'"));
    }
    if (c == '(' || c == '[' || c == '{') balance->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    if (c == ')' || c == ']' || c == '}') {
      if (balance->empty()) return fail(pos, std::string("unexpected '") + c + "'");
      if (balance->back() != c) {
        return fail(pos, std::string("unexpected '") + c + "', expected '" + balance->back() + "'");
      }
      balance->pop_back();
    }
    push(Tok::kOp, pos, std::string(1, c));
    return pos + 1;
  }

  // (\d+_)*\d+ at pos: its end, or pos if none.
  size_t digits(size_t pos) const {
    size_t end = pos;
    while (end < src_.size() && src_[end] >= '0' && src_[end] <= '9') {
      ++end;
      if (end + 1 < src_.size() && src_[end] == '_' && src_[end + 1] >= '0' && src_[end + 1] <= '9')
        ++end;
    }
    return end;
  }

  Result<size_t> lex_number(size_t pos) {
    // Float: digits then (.digits)? e[+-]?digits, or digits .digits (not right after a '.').
    if (pos == 0 || src_[pos - 1] != '.') {
      const size_t int_end = digits(pos);
      size_t end = int_end;
      if (end < src_.size() && src_[end] == '.' && digits(end + 1) > end + 1) end = digits(end + 1);
      size_t exp_end = 0;
      if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
        size_t e = end + 1;
        if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
        if (digits(e) > e) exp_end = digits(e);
      }
      if (exp_end == 0 && end == int_end) {
        // not a float
      } else {
        if (exp_end != 0) end = exp_end;
        std::string text;
        for (size_t i = pos; i < end; ++i) {
          if (src_[i] != '_') text.push_back(src_[i]);
        }
        Token t;
        t.type = Tok::kFloat;
        t.pos = static_cast<uint32_t>(pos);
        const auto res = std::from_chars(text.data(), text.data() + text.size(), t.fval);
        if (res.ec == std::errc::result_out_of_range) {  // Python reads 1e999 as inf, 1e-999 as 0
          const size_t e = text.find_first_of("eE");
          const bool tiny = e != std::string::npos && e + 1 < text.size() && text[e + 1] == '-';
          t.fval = tiny ? 0.0 : std::numeric_limits<double>::infinity();
        }
        out_.push_back(std::move(t));
        return end;
      }
    }
    int base = 10;
    size_t start = pos;
    size_t end = pos;
    auto digit_ok = [&](char ch) {
      if (base == 2) return ch == '0' || ch == '1';
      if (base == 8) return ch >= '0' && ch <= '7';
      if (base == 16) return is_hex(ch);
      return ch >= '0' && ch <= '9';
    };
    if (src_[pos] == '0' && pos + 1 < src_.size()) {
      const char p = static_cast<char>(src_[pos + 1] | 0x20);
      base = p == 'b' ? 2 : p == 'o' ? 8 : p == 'x' ? 16 : 10;
      if (base != 10) {
        start = end = pos + 2;
        while (end < src_.size() &&
               (digit_ok(src_[end]) ||
                (src_[end] == '_' && end + 1 < src_.size() && digit_ok(src_[end + 1])))) {
          ++end;
        }
        if (end == start) base = 10;  // "0x" alone: the integer 0, then a name
      }
    }
    if (base == 10) {
      start = pos;
      end = pos + 1;
      const bool zero = src_[pos] == '0';
      while (end < src_.size()) {
        const size_t d = src_[end] == '_' ? end + 1 : end;
        if (d >= src_.size() || !(zero ? src_[d] == '0' : (src_[d] >= '0' && src_[d] <= '9')))
          break;
        end = d + 1;
      }
    }
    uint64_t value = 0;
    for (size_t i = start; i < end; ++i) {
      if (src_[i] == '_') continue;
      const char ch = static_cast<char>(src_[i] | 0x20);
      const uint64_t d =
          ch <= '9' ? static_cast<uint64_t>(ch - '0') : static_cast<uint64_t>(ch - 'a' + 10);
      if (value > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - d) / base) {
        return make_error_code(ErrorCode::kUnsupported,
                               "chat template: ", describe_pos(src_, static_cast<uint32_t>(pos)),
                               ": integer literal beyond 64 bits");
      }
      value = value * base + d;
    }
    Token t;
    t.type = Tok::kInt;
    t.pos = static_cast<uint32_t>(pos);
    t.ival = static_cast<int64_t>(value);
    out_.push_back(std::move(t));
    return end;
  }

  Result<size_t> lex_string(size_t pos) {
    const char quote = src_[pos];
    size_t end = pos + 1;
    while (end < src_.size() && src_[end] != quote) {
      if (src_[end] == '\\' && end + 1 < src_.size()) {
        size_t len = 0;
        utf8_at(src_, end + 1, &len);
        end += 1 + len;
      } else {
        ++end;
      }
    }
    if (end >= src_.size()) return fail(pos, std::string("unexpected char '") + quote + "'");
    Token t;
    t.type = Tok::kString;
    t.pos = static_cast<uint32_t>(pos);
    PARETO_TRY(t.text, unescape(pos, std::string_view(src_).substr(pos + 1, end - pos - 1)));
    out_.push_back(std::move(t));
    return end + 1;
  }

  // Python's .encode("ascii", "backslashreplace").decode("unicode-escape"), which jinja2 applies
  // to string literals.
  Result<std::string> unescape(size_t pos, std::string_view s) const {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      if (s[i] != '\\') {
        size_t len = 0;
        utf8_at(s, i, &len);
        out.append(s.substr(i, len));
        i += len;
        continue;
      }
      const char c = s[i + 1];  // the lexer guarantees a character after a backslash
      i += 2;
      switch (c) {
        case '\n':
          break;
        case '\\':
        case '\'':
        case '"':
          out.push_back(c);
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = c == 'x' ? 2 : c == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            if (i + k >= s.size() || !is_hex(s[i + k])) {
              return fail(pos, std::string("truncated \\") + c + " escape in a string literal");
            }
            const char h = static_cast<char>(s[i + k] | 0x20);
            cp = cp * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : h - 'a' + 10);
          }
          if (cp > 0x10FFFF) return fail(pos, "illegal Unicode character in a string literal");
          i += n;
          utf8_append(out, cp);
          break;
        }
        case 'N':
          return make_error_code(ErrorCode::kUnsupported,
                                 "chat template: ", describe_pos(src_, static_cast<uint32_t>(pos)),
                                 ": \\N{...} escapes are not supported");
        default:
          if (c >= '0' && c <= '7') {
            uint32_t cp = static_cast<uint32_t>(c - '0');
            for (int k = 0; k < 2 && i < s.size() && s[i] >= '0' && s[i] <= '7'; ++k, ++i) {
              cp = cp * 8 + static_cast<uint32_t>(s[i] - '0');
            }
            utf8_append(out, cp);
          } else if (static_cast<unsigned char>(c) >= 0x80) {
            // backslashreplace turned the character into \xNN / \uNNNN / \UNNNNNNNN, whose
            // backslash the one before it escapes: the escape's text remains.
            size_t len = 0;
            const char32_t cp = utf8_at(s, i - 1, &len);
            char buf[16];
            if (cp <= 0xFF || (cp >= 0xDC80 && cp <= 0xDCFF)) {
              std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp & 0xFF));
            } else if (cp <= 0xFFFF) {
              std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
            } else {
              std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(cp));
            }
            out += buf;
            i = i - 1 + len;
          } else {
            out.push_back('\\');
            out.push_back(c);
          }
      }
    }
    return out;
  }

  const std::string& src_;
  std::vector<Token> out_;
  bool line_starting_ = true;
};

}  // namespace

Result<std::vector<Token>> tokenize(const std::string& source) {
  return Lexer(source).run();
}

}  // namespace pareto::tokenizer::jinja
