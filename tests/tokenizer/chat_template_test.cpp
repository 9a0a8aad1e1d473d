// The Jinja chat-template interpreter against Python's jinja2: the fixtures in
// data/chat_templates/ (scripts/gen-chat-template-fixtures.py) hold jinja2's rendering of the six
// real chat templates in ../shared/templates over several conversations each, and of one small
// template per construct (snippets.json). Then errors, limits and the API.
#include "tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace pareto::tokenizer {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

fs::path fixture_dir() {
  return fs::path(__FILE__).parent_path() / "data" / "chat_templates";
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json load_fixture(const std::string& name) {
  return Json::parse(read_file(fixture_dir() / name));
}

const char* const kTemplates[] = {
    "meta-llama-Llama-3.1-8B-Instruct", "Qwen-Qwen2.5-7B-Instruct",
    "microsoft-Phi-3.5-mini-instruct",  "google-gemma-2-2b-it",
    "HuggingFaceTB-SmolLM3-3B",         "mistralai-Mistral-Nemo-Instruct-2407",
};

// One fixture case: jinja2's text, or its error; raise_exception's message (no error_type) is
// reproduced exactly.
void check_case(const ChatTemplate& tmpl, const Json& c, const std::string& where) {
  SCOPED_TRACE(where + " case " + c["name"].get<std::string>());
  auto out = tmpl.render(c["context"]);
  if (c.contains("expected")) {
    ASSERT_TRUE(out.has_value()) << out.error().message;
    EXPECT_EQ(*out, c["expected"].get<std::string>());
    return;
  }
  ASSERT_FALSE(out.has_value()) << "rendered " << *out << " where jinja2 fails with "
                                << c["error"].get<std::string>();
  if (!c.contains("error_type")) {
    EXPECT_EQ(out.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(out.error().message, "chat template: " + c["error"].get<std::string>());
  }
}

class ChatTemplateFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(ChatTemplateFixture, RendersAsJinja2) {
  const Json fixture = load_fixture(std::string(GetParam()) + ".json");
  auto tmpl = ChatTemplate::parse(fixture["source"].get<std::string>());
  ASSERT_TRUE(tmpl.has_value()) << tmpl.error().message;
  ASSERT_GE(fixture["cases"].size(), 8u);
  for (const Json& c : fixture["cases"]) check_case(*tmpl, c, GetParam());
}

// The fixture's copy of the template is the one in ../shared/templates: a changed template needs
// new fixtures (scripts/gen-chat-template-fixtures.py).
TEST_P(ChatTemplateFixture, SharedTemplateIsTheFixturesCopy) {
  const Json fixture = load_fixture(std::string(GetParam()) + ".json");
  const std::string shared =
      read_file(test::shared_path("templates/" + fixture["template"].get<std::string>()));
  ASSERT_EQ(shared, fixture["source"].get<std::string>())
      << "re-run scripts/gen-chat-template-fixtures.py";
  auto tmpl = ChatTemplate::parse(shared);
  ASSERT_TRUE(tmpl.has_value()) << tmpl.error().message;
  check_case(*tmpl, fixture["cases"][0], GetParam());
}

std::string test_name(const ::testing::TestParamInfo<const char*>& p) {
  std::string name = p.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, ChatTemplateFixture, ::testing::ValuesIn(kTemplates),
                         test_name);

TEST(ChatTemplateFixtureSet, CoversToolsNonAsciiAndErrors) {
  int tools = 0, errors = 0, non_ascii = 0;
  for (const char* name : kTemplates) {
    const Json fixture = load_fixture(std::string(name) + ".json");
    for (const Json& c : fixture["cases"]) {
      const std::string n = c["name"].get<std::string>();
      tools += n.find("tool") != std::string::npos;
      errors += c.contains("error");
      non_ascii += n == "non_ascii";
    }
  }
  EXPECT_GE(tools, 10);
  EXPECT_GE(errors, 8);
  EXPECT_EQ(non_ascii, 6);
}

// --- one construct per template, against jinja2 ------------------------------------------------

TEST(JinjaSnippets, RenderAsJinja2) {
  const Json fixture = load_fixture("snippets.json");
  ASSERT_GE(fixture["cases"].size(), 80u);
  for (const Json& c : fixture["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>() + ": " + c["template"].get<std::string>());
    auto tmpl = ChatTemplate::parse(c["template"].get<std::string>());
    ASSERT_TRUE(tmpl.has_value()) << tmpl.error().message;
    check_case(*tmpl, c, "snippets");
  }
}

// --- errors -----------------------------------------------------------------------------------

Error parse_error(const std::string& source) {
  auto t = ChatTemplate::parse(source);
  EXPECT_FALSE(t.has_value()) << "parsed: " << source;
  return t ? Error{} : t.error();
}

Error render_error(const std::string& source, const Json& context = Json::object(),
                   const ChatTemplateLimits& limits = {}) {
  auto t = ChatTemplate::parse(source);
  EXPECT_TRUE(t.has_value()) << t.error().message;
  if (!t) return {};
  auto out = t->render(context, limits);
  EXPECT_FALSE(out.has_value()) << "rendered: " << source;
  return out ? Error{} : out.error();
}

std::string render(const std::string& source, const Json& context = Json::object()) {
  auto t = ChatTemplate::parse(source);
  EXPECT_TRUE(t.has_value()) << t.error().message;
  if (!t) return {};
  auto out = t->render(context);
  EXPECT_TRUE(out.has_value()) << out.error().message;
  return out ? *out : std::string();
}

TEST(JinjaErrors, UnsupportedConstructsNameThemAndTheirLine) {
  struct Case {
    const char* source;
    const char* names;
    const char* where;
  };
  const Case cases[] = {
      {"x\n{% extends 'base.jinja' %}", "{% extends %}", "line 2:4"},
      {"{% include 'a' %}", "{% include %}", "line 1:4"},
      {"\n\n  {% import 'm' as m %}", "{% import %}", "line 3:6"},
      {"{% call m() %}x{% endcall %}", "{% call %}", "line 1:4"},
      {"{% block b %}{% endblock %}", "{% block %}", "line 1:4"},
      {"{{ x|groupby('a') }}", "filter 'groupby' is not supported", "line 1:6"},
      {"a\n{{ x | nosuchfilter }}", "unknown filter 'nosuchfilter'", "line 2:8"},
      {"{{ x is nosuchtest }}", "unknown test 'nosuchtest'", "line 1:9"},
      {"{% for x in y recursive %}{% endfor %}", "recursive", "line 1:15"},
      {"{{ f(*args) }}", "*args", "line 1:6"},
      {"{% do x.append(1) %}", "{% do %}", "line 1:4"},
  };
  for (const Case& c : cases) {
    const Error e = parse_error(c.source);
    EXPECT_EQ(e.code, ErrorCode::kUnsupported) << c.source << ": " << e.message;
    EXPECT_NE(e.message.find(c.names), std::string::npos) << c.source << ": " << e.message;
    EXPECT_NE(e.message.find(c.where), std::string::npos) << c.source << ": " << e.message;
  }
}

TEST(JinjaErrors, SyntaxErrorsSayWhatWasExpected) {
  struct Case {
    const char* source;
    const char* says;
  };
  const Case cases[] = {
      {"{% if x %}yes", "expected 'elif' or 'else' or 'endif'"},
      {"{% for x in y %}{% endif %}", "unknown tag 'endif' (expected 'endfor' or 'else')"},
      {"{{ 1 + }}", "unexpected end of print statement"},
      {"{% for in x %}{% endfor %}", "expected 'in', found 'x'"},
      {"{% for 1 in x %}{% endfor %}", "expected a name to assign to"},
      {"{% foo %}", "unknown tag 'foo'"},
      {"{# never closed", "missing end of comment tag"},
      {"{{ 'open }}", "unexpected char '''"},
      {"{{ (1 }}", "expected ')'"},
      {"{{ [1, 2) }}", "unexpected ')', expected ']'"},
      {"{% break %}", "'break' outside loop"},
      {"{{ x.}}", "expected a name or number after '.'"},
      {"{% macro m(a=1, b) %}{% endmacro %}", "non-default argument follows default argument"},
      {"{{ 1 ! 2 }}", "unexpected char '!'"},
      {"{% raw %}abc", "missing end of raw directive"},
      {"{% set x = 1", "expected end of statement block"},
  };
  for (const Case& c : cases) {
    const Error e = parse_error(c.source);
    EXPECT_EQ(e.code, ErrorCode::kInvalidArgument) << c.source << ": " << e.message;
    EXPECT_NE(e.message.find(c.says), std::string::npos) << c.source << ": " << e.message;
    EXPECT_NE(e.message.find("line 1:"), std::string::npos) << c.source << ": " << e.message;
  }
}

TEST(JinjaErrors, RuntimeErrorsCarryCodeAndPosition) {
  Error e = render_error("{{ raise_exception('Roles must alternate') }}");
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message, "chat template: Roles must alternate");

  e = render_error("\n  {{ 'a' + 1 }}");
  EXPECT_EQ(e.code, ErrorCode::kUnsupported);
  EXPECT_NE(e.message.find("line 2:"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("can only concatenate str"), std::string::npos) << e.message;

  e = render_error("{{ 'x'.casefold() }}");
  EXPECT_EQ(e.code, ErrorCode::kUnsupported);
  EXPECT_NE(e.message.find("str.casefold() is not supported"), std::string::npos) << e.message;

  e = render_error("{{ cycler(1, 2) }}");
  EXPECT_EQ(e.code, ErrorCode::kUnsupported);
  EXPECT_NE(e.message.find("cycler() is not supported"), std::string::npos) << e.message;

  e = render_error("{{ nosuchfunction() }}");
  EXPECT_EQ(e.code, ErrorCode::kUnsupported);
  EXPECT_NE(e.message.find("'nosuchfunction' is undefined"), std::string::npos) << e.message;

  e = render_error("{% if true %}{{ x|nosuchfilter }}{% endif %}");
  EXPECT_EQ(e.code, ErrorCode::kUnsupported);
  EXPECT_NE(e.message.find("unknown filter 'nosuchfilter'"), std::string::npos) << e.message;

  e = render_error("{{ message.content.strip() }}", Json{{"message", Json::object()}});
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(e.message.find("'dict object' has no attribute 'content'"), std::string::npos)
      << e.message;

  e = render_error("{{ 9223372036854775807 + 1 }}");
  EXPECT_NE(e.message.find("integer overflow"), std::string::npos) << e.message;
}

// --- limits: untrusted templates neither crash nor hang -----------------------------------------

TEST(JinjaLimits, DeepNestingIsAnErrorNotACrash) {
  const int n = 5000;
  const std::string deep[] = {
      "{{ " + std::string(n, '(') + "1" + std::string(n, ')') + " }}",
      "{{ " + std::string(n, '[') + std::string(n, ']') + " }}",
      "{{ " + std::string(n, '-') + "1 }}",
      [&] {
        std::string s = "{{ ";
        for (int i = 0; i < n; ++i) s += "not ";
        return s + "1 }}";
      }(),
      [&] {
        std::string s;
        for (int i = 0; i < n; ++i) s += "{% if true %}";
        return s;
      }(),
      [&] {
        std::string s = "{{ 'x'";
        for (int i = 0; i < n; ++i) s += "|lower";
        return s + " }}";
      }(),
      [&] {
        std::string s = "{{ 1";
        for (int i = 0; i < n; ++i) s += " + 1";
        return s + " }}";
      }(),
      [&] {
        std::string s = "{{ x";
        for (int i = 0; i < n; ++i) s += ".a";
        return s + " }}";
      }(),
  };
  for (const std::string& source : deep) {
    const Error e = parse_error(source);
    EXPECT_EQ(e.code, ErrorCode::kInvalidArgument) << source.substr(0, 40);
    EXPECT_NE(e.message.find("deeper than 256"), std::string::npos) << e.message;
  }
  // Just inside the limit parses and renders.
  EXPECT_EQ(render("{{ " + std::string(250, '(') + "7" + std::string(250, ')') + " }}"), "7");
  std::string ifs;
  for (int i = 0; i < 120; ++i) ifs += "{% if true %}";
  ifs += "{{ " + std::string(120, '[') + "7" + std::string(120, ']') + "|length }}";
  for (int i = 0; i < 120; ++i) ifs += "{% endif %}";
  EXPECT_EQ(render(ifs), "1");
  std::string sum = "{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{% else %}{{ 0";
  for (int i = 0; i < 250; ++i) sum += " + 1";
  EXPECT_EQ(render(sum + " }}{% endif %}{% endmacro %}{{ m(40) }}"), "250");
}

TEST(JinjaLimits, RecursionAndLoopsAreBounded) {
  Error e = render_error("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}");
  EXPECT_NE(e.message.find("nested deeper than"), std::string::npos) << e.message;

  ChatTemplateLimits small;
  small.max_steps = 200000;
  e = render_error(
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
      Json::object(), small);
  EXPECT_NE(e.message.find("steps"), std::string::npos) << e.message;

  small.max_output_bytes = 1 << 20;
  e = render_error("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", Json::object(),
                   small);
  EXPECT_NE(e.message.find("longer than"), std::string::npos) << e.message;

  e = render_error(
      "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
      "{% endfor %}",
      Json::object(), small);
  EXPECT_NE(e.message.find("longer than"), std::string::npos) << e.message;

  e = render_error("{{ 'x' * 9223372036854775807 }}");
  EXPECT_NE(e.message.find("longer than"), std::string::npos) << e.message;

  e = render_error(
      "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = [ns.l, ns.l] %}"
      "{% endfor %}{{ ns.l == ns.l }}");
  EXPECT_NE(e.message.find("items"), std::string::npos) << e.message;

  e = render_error("{{ [0] * 9223372036854775807 }}");
  EXPECT_NE(e.message.find("items"), std::string::npos) << e.message;

  // jinja2's sandbox refuses ranges over 100000 items; so does the interpreter.
  e = render_error("{% for i in range(10 ** 9) %}{% endfor %}");
  EXPECT_NE(e.message.find("range too big"), std::string::npos) << e.message;

  e = render_error("{{ '%99999999d' % 1 }}{{ '{:99999999}'.format(1) }}");
  EXPECT_NE(e.message.find("format width"), std::string::npos) << e.message;

  e = render_error(
      "{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}"
      "{% endfor %}{{ ns.l }}");
  EXPECT_NE(e.message.find("nested deeper"), std::string::npos) << e.message;

  // A namespace holding itself prints (cut off) instead of recursing forever.
  auto t = ChatTemplate::parse("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|length }}");
  ASSERT_TRUE(t.has_value());
  (void)t->render(Json::object());
  t = ChatTemplate::parse("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}");
  ASSERT_TRUE(t.has_value());
  (void)t->render(Json::object());
}

TEST(JinjaLimits, HugeInputs) {
  const std::string text(4 << 20, 'a');
  EXPECT_EQ(render(text).size(), text.size());
  std::string many;
  for (int i = 0; i < 100000; ++i) many += "{{ i }}{% if true %}.{% endif %}";
  EXPECT_EQ(render(many, Json{{"i", 1}}).size(), 200000u);
  const Json big{{"s", std::string(8 << 20, 'b')}};
  EXPECT_EQ(render("{{ s }}{{ s|length }}", big).size(), (8u << 20) + 7);
}

// --- API --------------------------------------------------------------------------------------

TEST(ChatTemplateApi, ContextKeyOrderFollowsTheJsonType) {
  auto t = ChatTemplate::parse("{{ tool|tojson }}");
  ASSERT_TRUE(t.has_value());
  const char* text = R"({"tool": {"type": "function", "name": "f", "args": {"b": 1, "a": 2}}})";
  auto ordered = t->render(Json::parse(text));
  ASSERT_TRUE(ordered.has_value());
  EXPECT_EQ(*ordered, R"({"type": "function", "name": "f", "args": {"b": 1, "a": 2}})");
  auto sorted = t->render(nlohmann::json::parse(text));
  ASSERT_TRUE(sorted.has_value());
  EXPECT_EQ(*sorted, R"({"args": {"a": 2, "b": 1}, "name": "f", "type": "function"})");
}

TEST(ChatTemplateApi, ContextMustBeAnObject) {
  auto t = ChatTemplate::parse("x");
  ASSERT_TRUE(t.has_value());
  auto out = t->render(Json::array());
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidArgument);
}

TEST(ChatTemplateApi, RendersConcurrently) {
  const Json fixture = load_fixture("Qwen-Qwen2.5-7B-Instruct.json");
  auto t = ChatTemplate::parse(fixture["source"].get<std::string>());
  ASSERT_TRUE(t.has_value());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 20; ++rep) {
        for (const Json& c : fixture["cases"]) {
          auto out = t->render(c["context"]);
          if (!out || *out != c["expected"].get<std::string>()) ++mismatches[k];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(ChatTemplateApi, StrftimeNowAndBytesThatAreNotUtf8) {
  const std::string year = render("{{ strftime_now('%Y') }}");
  ASSERT_EQ(year.size(), 4u);
  EXPECT_GE(year, "2024");
  // Invalid UTF-8 in the template or the context passes through unchanged.
  EXPECT_EQ(render("\xff{{ '\xfe' }}{{ s }}{{ s|length }}{{ s[0] }}", Json{{"s", "\xc3\xa9"}}),
            "\xff\xfe\xc3\xa9"
            "1\xc3\xa9");
  EXPECT_EQ(render("{{ 'a\xff' + 'b' }}{{ ('a\xff"
                   "b')[::-1] }}"),
            "a\xff"
            "bb\xff"
            "a");
}

}  // namespace
}  // namespace pareto::tokenizer
