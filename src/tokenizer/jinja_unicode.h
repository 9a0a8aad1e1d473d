// Python str semantics on UTF-8 text for the Jinja interpreter: strings are indexed, sliced and
// counted by code point; whitespace is str.isspace(); case mapping covers ASCII, Latin-1, Latin
// Extended-A, Greek and Cyrillic (other scripts are left unchanged, where Python would map them).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pareto::tokenizer::jinja {

// Code points of `text`. Bytes that are not valid UTF-8 decode as U+DC80..U+DCFF (Python's
// surrogateescape) and encode back to the same byte, so every byte string round-trips.
std::u32string utf8_decode(std::string_view text);
std::string utf8_encode(std::u32string_view cps);
void utf8_append(std::string& out, char32_t cp);
size_t utf8_length(std::string_view text);  // in code points

// The code point at text[pos] and its length in bytes (lenient, as utf8_decode).
char32_t utf8_at(std::string_view text, size_t pos, size_t* len);

bool is_space(char32_t c);  // str.isspace() (also Python's re \s)
bool is_digit(char32_t c);  // ASCII digits (str.isdigit beyond ASCII is not modelled)
bool is_alpha(char32_t c);  // letters with a case mapping, plus any non-ASCII above U+00FF
bool is_cased(char32_t c);
bool is_upper(char32_t c);
bool is_lower(char32_t c);
bool is_printable(char32_t c);  // for repr(): str.isprintable(), approximated
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);

std::string str_upper(std::string_view s);  // str.upper() (ß -> SS)
std::string str_lower(std::string_view s);
std::string str_title(std::string_view s);       // str.title()
std::string str_capitalize(std::string_view s);  // str.capitalize()

// Whitespace (is_space) at the start / end of `s`, in bytes.
size_t leading_space(std::string_view s);
size_t trailing_space(std::string_view s);

}  // namespace pareto::tokenizer::jinja
