#!/usr/bin/python3
"""Generates the chat-template fixtures of tests/tokenizer/chat_template_test.cpp.

Renders the real chat templates in $PARETO_SHARED/templates/*.jinja (default: ../shared beside
the repository) with Debian's python3-jinja2 set up as HF transformers' apply_chat_template sets
it up (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols; globals
raise_exception and strftime_now; tojson = json.dumps with ensure_ascii=False), over several
conversations per template, and writes one JSON file per template into
tests/tokenizer/data/chat_templates/: {"template": file name, "source": its text, "cases":
[{"name", "context", "expected"} or {"name", "context", "error"}]}. It also renders the small
templates of SNIPPETS (one construct each) into snippets.json, which the unit tests of the
interpreter compare against.

Run from anywhere: scripts/gen-chat-template-fixtures.py (needs python3-jinja2).
"""
import copy
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("PARETO_SHARED") or os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "tokenizer", "data", "chat_templates")


class AssistantTracker(jinja2.ext.Extension):
    """HF's {% generation %} extension, less its tracking of the assistant's character spans
    (return_assistant_tokens_mask): the body renders as it is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_render_assistant")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _render_assistant(self, context, caller):
        return caller()


def make_env():
    # transformers.utils.chat_template_utils._compile_jinja_template.
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(source, context):
    context = copy.deepcopy(context)  # a template may change it (jinja2's indent filter on a list)
    try:
        return {"expected": ENV.from_string(source).render(**context)}
    except jinja2.exceptions.TemplateError as e:
        if type(e) is jinja2.exceptions.TemplateError:  # raise_exception
            return {"error": str(e)}
        return {"error": str(e), "error_type": type(e).__name__}
    except Exception as e:  # a Python TypeError etc. inside the template
        return {"error": str(e), "error_type": type(e).__name__}


# --- conversations --------------------------------------------------------------------------

SYSTEM = {"role": "system", "content": "You are a concise assistant."}
USER = {"role": "user", "content": "What is the capital of France?"}
ASSISTANT = {"role": "assistant", "content": "Paris."}
USER2 = {"role": "user", "content": "And of Germany?"}
UNICODE_USER = {"role": "user", "content": "Café, naïve — 中文 and emoji 😀🎉\ttab"}
UNICODE_ASSISTANT = {"role": "assistant", "content": "  Ça va! 日本語 ✓  \n"}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city (°C).",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
        "return": {"type": "number"},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time.",
        "parameters": {"type": "object", "properties": {}},
    },
}
TOOL_USER = {"role": "user", "content": "What's the weather in Zürich?"}


def tool_call_message(call_id="call12345"):
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{
            "id": call_id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}},
        }],
    }


TOOL_RESULT = {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
               "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"}
TOOL_ANSWER = {"role": "assistant", "content": "It is 21.5 °C and clear in Zürich."}


def ctx(messages, add_generation_prompt=True, **extra):
    c = {"messages": messages, "add_generation_prompt": add_generation_prompt}
    c.update(extra)
    return c


def common_cases(tokens):
    return [
        ("system_user", ctx([SYSTEM, USER], **tokens)),
        ("user_only", ctx([USER], **tokens)),
        ("user_only_no_generation_prompt", ctx([USER], False, **tokens)),
        ("multi_turn", ctx([SYSTEM, USER, ASSISTANT, USER2], **tokens)),
        ("multi_turn_no_system", ctx([USER, ASSISTANT, USER2], **tokens)),
        ("ends_with_assistant", ctx([USER, ASSISTANT], False, **tokens)),
        ("non_ascii", ctx([SYSTEM, UNICODE_USER, UNICODE_ASSISTANT, USER2], **tokens)),
        ("hf_null_tools", ctx([USER], tools=None, documents=None, **tokens)),
    ]


def llama_cases():
    t = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
         "date_string": "05 Mar 2025"}
    cases = common_cases(t)
    tools = [WEATHER_TOOL, TIME_TOOL]
    conversation = [SYSTEM, TOOL_USER, tool_call_message(), TOOL_RESULT, TOOL_ANSWER]
    cases += [
        ("default_date", ctx([USER], bos_token="<|begin_of_text|>")),
        ("tools_in_user_message", ctx(conversation, tools=tools, **t)),
        ("tools_in_system_message", ctx(conversation, tools=tools, tools_in_user_message=False, **t)),
        ("tool_result_mapping", ctx([TOOL_USER, tool_call_message(),
                                     dict(TOOL_RESULT, content={"temperature": 21.5, "sky": "clear"})],
                                    tools=tools, **t)),
        ("builtin_tools", ctx([SYSTEM, TOOL_USER, {
            "role": "assistant", "content": "",
            "tool_calls": [{"type": "function", "function": {
                "name": "brave_search", "arguments": {"query": "weather Zürich", "count": "3"}}}]},
            {"role": "ipython", "content": "sunny"}],
            builtin_tools=["brave_search", "code_interpreter", "wolfram_alpha"], **t)),
        ("error_two_tool_calls", ctx([TOOL_USER, dict(tool_call_message(), tool_calls=[
            tool_call_message()["tool_calls"][0], tool_call_message()["tool_calls"][0]])], **t)),
        ("error_tools_without_user_message", ctx([SYSTEM], tools=tools, **t)),
    ]
    return cases


def qwen_cases():
    t = {"bos_token": None, "eos_token": "<|im_end|>"}
    cases = common_cases(t)
    tools = [WEATHER_TOOL, TIME_TOOL]
    second_result = dict(TOOL_RESULT, content="{\"time\": \"12:00\"}")
    cases += [
        ("tools", ctx([TOOL_USER], tools=tools, **t)),
        ("tools_with_system", ctx([SYSTEM, TOOL_USER], tools=tools, **t)),
        ("tool_call_round_trip", ctx([SYSTEM, TOOL_USER, tool_call_message(), TOOL_RESULT,
                                      second_result, TOOL_ANSWER], tools=tools, **t)),
        ("tool_call_with_content", ctx([TOOL_USER, dict(tool_call_message(), content="Checking."),
                                        TOOL_RESULT], False, tools=tools, **t)),
        ("tool_call_without_function_wrapper", ctx([TOOL_USER, {
            "role": "assistant", "content": None,
            "tool_calls": [{"name": "get_time", "arguments": "{}"}]}], tools=tools, **t)),
        ("system_later", ctx([USER, ASSISTANT, SYSTEM, USER2], **t)),
    ]
    return cases


def phi_cases():
    t = {"bos_token": "<s>", "eos_token": "<|endoftext|>"}
    cases = common_cases(t)
    cases += [
        ("empty_system", ctx([{"role": "system", "content": ""}, USER], **t)),
        ("unknown_role_skipped", ctx([USER, {"role": "tool", "content": "x"}, ASSISTANT], False, **t)),
    ]
    return cases


def gemma_cases():
    t = {"bos_token": "<bos>", "eos_token": "<eos>"}
    cases = [c for c in common_cases(t) if c[0] not in ("system_user", "multi_turn", "non_ascii")]
    cases += [
        ("non_ascii", ctx([UNICODE_USER, UNICODE_ASSISTANT, USER2], **t)),
        ("trimmed_content", ctx([{"role": "user", "content": "\n  padded question  \n"}], **t)),
        ("error_system_role", ctx([SYSTEM, USER], **t)),
        ("error_not_alternating", ctx([USER, USER2], **t)),
        ("error_starts_with_assistant", ctx([ASSISTANT, USER], **t)),
    ]
    return cases


def smollm_cases():
    t = {"bos_token": None, "eos_token": "<|im_end|>"}
    cases = common_cases(t)
    cases += [
        ("no_thinking", ctx([USER, ASSISTANT, USER2], enable_thinking=False, **t)),
        ("system_no_think", ctx([{"role": "system", "content": "Be brief. /no_think"}, USER,
                                 {"role": "assistant", "content": "\n\nParis."}, USER2], **t)),
        ("system_think", ctx([{"role": "system", "content": "/think Reason first.  "}, USER], **t)),
        ("tool_message", ctx([USER, {"role": "tool", "content": "tool output"}], **t)),
        ("non_string_content", ctx([{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                                   **t)),
    ]
    return cases


def mistral_cases():
    t = {"bos_token": "<s>", "eos_token": "</s>"}
    cases = common_cases(t)
    tools = [WEATHER_TOOL, TIME_TOOL]
    cases += [
        ("tools", ctx([USER, ASSISTANT, TOOL_USER], tools=tools, **t)),
        ("tool_call_round_trip", ctx([SYSTEM, TOOL_USER, tool_call_message("abcDEF123"),
                                      dict(TOOL_RESULT, tool_call_id="abcDEF123"), TOOL_ANSWER,
                                      USER2], tools=tools, **t)),
        ("tool_result_dict_content", ctx([TOOL_USER, tool_call_message("abcDEF123"), dict(
            TOOL_RESULT, tool_call_id="abcDEF123",
            content={"content": {"temperature": 21.5, "sky": "clear", "ok": True, "x": None}})],
            **t)),
        ("error_not_alternating", ctx([USER, USER2], **t)),
        ("error_system_twice", ctx([SYSTEM, USER, SYSTEM], **t)),
        ("error_bad_tool_call_id", ctx([TOOL_USER, tool_call_message("short")], **t)),
    ]
    return cases


TEMPLATES = {
    "meta-llama-Llama-3.1-8B-Instruct.jinja": llama_cases,
    "Qwen-Qwen2.5-7B-Instruct.jinja": qwen_cases,
    "microsoft-Phi-3.5-mini-instruct.jinja": phi_cases,
    "google-gemma-2-2b-it.jinja": gemma_cases,
    "HuggingFaceTB-SmolLM3-3B.jinja": smollm_cases,
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": mistral_cases,
}

# --- snippets: one construct each -----------------------------------------------------------

DATA = {"d": {"b": 1, "a": [1, 2], "s": "x"}, "l": [3, 1, 2], "s": "héllo wörld", "n": None,
        "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                 {"role": "user"}], "f": 2.5, "t": True, "e": ""}

SNIPPETS = [
    # whitespace control, trim_blocks, lstrip_blocks
    ("ws_trim_lstrip", "a\n  {% if true %}\n  b\n  {% endif %}\nc"),
    ("ws_inline_block", "a  {% if true %}x{% endif %}  \n"),
    ("ws_comment_line", "  {# c #}\nx\n{#- c -#}  \n y"),
    ("ws_plus", "  {%+ if true %}\nx{% endif +%}\ny"),
    ("ws_minus_var", "x {{- 1 -}} \n y"),
    ("ws_var_no_lstrip", "  {{ 1 }}  {% if 1 %}z{% endif %}\n  {{ 2 }}"),
    ("ws_after_var_line", "{{ 1 }}\n  {% if 1 %}y{% endif %}"),
    ("ws_unicode_space_minus", "\u3000\u00a0{%- if 1 %}y{% endif %}"),
    ("ws_trailing_newline", "ab\n\n"),
    ("ws_crlf", "x\r\ny\rz{% if true %}\r\nq{% endif %}"),
    ("ws_tab_line", "{% if true %}\t \n{% endif %}"),
    ("ws_raw", "{% raw %}\n{{ x }}{% endraw %}\nz{%- raw -%}  a {% endraw %}"),
    ("ws_minus_both", "a\n\n  {%- if true -%}  \n\n b \n {%- endif -%}\n\nc"),
    ("ws_for_lines", "{% for x in l %}\n  - {{ x }}\n{% endfor %}\nend"),
    # literals and operators
    ("lit_strings", "{{ 'a\\tb\\x41\\u00e9\\U0001F600\\d\\'' ~ \"q\\\"\" ~ 'adj' 'acent' }}"),
    ("lit_numbers", "{{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1.5e3 }} {{ 2.50 }} {{ 1e-7 }}"),
    ("lit_containers", "{{ [1, 'a', none, true, 1.5, \"it's\"] }} {{ (1,) }} {{ () }} {{ {'k': [1, {'z': 2}]} }}"),
    ("ops_arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ 6 / 2 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ -7.5 % 2 }} {{ 1 + true }}"),
    ("ops_floats", "{{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 1 / 3 }} {{ -0.0 }} {{ 100.0 }} {{ 3.0 * 2 }}"),
    ("ops_strings", "{{ 'ab' + 'c' }} {{ 'x' * 3 }} {{ 3 * 'y' }} {{ [1] * 2 }} {{ [1] + [2] }} {{ (1,) + (2,) }} {{ 1 ~ 'a' ~ none ~ u }}"),
    ("ops_compare", "{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ (1, 2) == [1, 2] }} {{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }} {{ u == u }} {{ u != 1 }}"),
    ("ops_in", "{{ 'a' in ['a'] }} {{ 'ell' in s }} {{ 'b' in d }} {{ 'z' not in d }} {{ 1 in {1.0: 2} }} {{ 'x' in u }}"),
    ("ops_logic", "{{ 0 or 'b' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ not [] }} {{ none or [] }} {{ 'a' if l else 'b' }} {{ 'x' if false }}|"),
    ("ops_precedence", "{{ 1 + 2 * 3 ** 2 }} {{ -2 ** 2 }} {{ not 1 == 2 }} {{ 'a' ~ (1 + 2) }} {{ -(l|length) }} {{ -1|abs }} {{ 2 * 3 ~ 4 }}"),
    ("ops_percent", "{{ '%5.2f|%-4d|%s|%r|%x|%%|%c|%05d|%+d' % (3.14159, 42, 'hi', 'hi', 255, 65, 42, 7) }} {{ '%(a)s-%(b)d' % {'a': 'x', 'b': 2} }} {{ '%s' % 'one' }}"),
    ("ops_format_method", "{{ '{}-{}'.format(1, 'b') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{x}!'.format(x=3) }} {{ '{:>5}|{:<4}|{:^5}|{:05d}|{:.2f}'.format('a', 'b', 'c', 42, 3.14159) }} {{ '{{}}'.format() }}"),
    # variables, scoping, namespace
    ("scope_loop_set", "{% set count = 0 %}{% for i in l %}{% set count = count + 1 %}{{ count }}{% endfor %}{{ count }}"),
    ("scope_iteration_reset", "{% for i in range(3) %}{% if i == 0 %}{% set x = 5 %}{% endif %}[{{ x }}]{% endfor %}"),
    ("scope_read_outer", "{% set x = 1 %}{% for i in l %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}"),
    ("scope_if_no_scope", "{% if true %}{% set y = 3 %}{% endif %}{{ y }}"),
    ("scope_namespace", "{% set ns = namespace(a=1, found=false) %}{% for x in l %}{% set ns.a = ns.a + x %}{% if x == 1 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.a }} {{ ns.found }} {{ ns.missing is defined }}"),
    ("scope_namespace_repr", "{% set ns = namespace({'a': [1]}, b='x') %}{{ ns }}"),
    ("scope_tuple_set", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}"),
    ("scope_set_block", "{% set t %}X{{ l|length }}{% endset %}{{ t }}{% set up | upper %}abc{% endset %}{{ up }}"),
    ("scope_with", "{% set x = 1 %}{% with x = 5, y = x %}{{ x }}{{ y }}{% endwith %}{{ x }}"),
    ("scope_context_override", "{% set messages = msgs[1:] %}{{ messages|length }}{{ msgs|length }}"),
    # loops
    ("loop_vars", "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}]{{ loop.depth }};{% endfor %}"),
    ("loop_filter_else", "{% for x in l if x > 1 %}{{ loop.index }}/{{ loop.length }}:{{ x }} {% else %}E{% endfor %}{% for x in [] %}{% else %}empty{% endfor %}"),
    ("loop_unpack", "{% for a, b in [[1, 2], [3, 4]] %}{{ a }}{{ b }}{% endfor %}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for c in s %}{{ c }}.{% endfor %}"),
    ("loop_break_continue", "{% for x in l %}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{{ loop.index }}{% endfor %}"),
    ("loop_nested", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}"),
    ("loop_cycle", "{% for x in l %}{{ loop.cycle('odd', 'even') }} {% endfor %}"),
    ("loop_else_after_continue", "{% for x in l %}{% continue %}{% else %}E{% endfor %}|{% for x in l %}{% if x == 3 %}{% continue %}{% endif %}{{ x }}{% else %}F{% endfor %}|{% for x in l %}{% break %}{% else %}G{% endfor %}"),
    ("loop_undefined", "{% for x in u %}x{% else %}none{% endfor %}"),
    ("loop_messages", "{% for m in msgs %}{{ m.role }}:{{ m.content if m.content is defined else '-' }}{% if not loop.last %},{% endif %}{% endfor %}"),
    # macros
    ("macro_basic", "{% set x = 1 %}{% macro m(a, b=2) %}[{{ x }}{{ a }}{{ b }}]{% endmacro %}{% set x = 2 %}{{ m(0) }}{{ m(1, 3) }}{{ m(a=5) }}{{ m(b=7, a=6) }}"),
    ("macro_varargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}"),
    ("macro_in_loop", "{% for i in l %}{% macro m() %}{{ i }}{% endmacro %}{{ m() }}{% endfor %}"),
    ("macro_missing_arg", "{% macro m(a, b) %}{{ a }}|{{ b }}|{{ b is defined }}{% endmacro %}{{ m(1) }}"),
    ("macro_recursive", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}"),
    ("macro_returns_text", "{% macro m() %} x {% endmacro %}{{ m()|length }}{{ m is callable }}{{ m()|trim }}"),
    # attribute / item access, slicing, undefined
    ("access", "{{ d.b }} {{ d['a'][1] }} {{ d.a.0 }} {{ l[-1] }} {{ l[5] }}|{{ s[1] }} {{ s[-1] }} {{ d.zz }}|{{ none.x }}|{{ d.items is callable }}"),
    ("access_method_vs_key", "{{ {'items': 1}['items'] }} {{ {'get': 2}.get('get') }} {{ {'keys': 3}.keys()|list }}"),
    ("slicing", "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ s[1:4] }} {{ s[::-2] }} {{ l[5:] }} {{ l[-100:2] }} {{ s[:100] }} {{ [1, 2, 3, 4, 5][4:0:-2] }}"),
    ("defined_tests", "{{ u is defined }} {{ u is undefined }} {{ d.b is defined }} {{ d.zz is defined }} {{ n is none }} {{ n is defined }} {{ msgs[2].content is defined }} {{ d.zz is not defined }}"),
    ("undefined_uses", "[{{ u }}] {{ u|length }} {{ u|default('dflt') }} {{ u|list }} {{ u is iterable }} {{ u is sequence }} {{ u|string }}|{{ u|upper }}|{{ u|first }}"),
    ("type_tests", "{{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ true is number }} {{ 's' is string }} {{ d is mapping }} {{ l is iterable }} {{ s is sequence }} {{ d is sequence }} {{ 1 is iterable }} {{ true is boolean }} {{ false is false }} {{ true is true }} {{ none is none }} {{ n is string }}"),
    ("value_tests", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 2 is gt 1 }} {{ 2 is lt 1 }} {{ 2 is ge 2 }} {{ 'a' is in 'cat' }} {{ none is sameas none }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ 'zzz' is filter }}"),
    # filters
    ("filters_strings", "{{ '  xhix '|trim('x ') }}|{{ ' a '|trim }}|{{ 'hello world'|title }}|{{ 'hELLo wOrld'|capitalize }}|{{ 'Héllo'|upper }}|{{ 'HÉLLO'|lower }}|{{ 'a-b c(d'|title }}|{{ 'a,b,,c'|replace(',', ';', 2) }}|{{ 'aaa'|replace('a', 'b') }}"),
    ("filters_default", "{{ u|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ none|default('d') }}|{{ u|d('x') }}|{{ 0|d(5, boolean=true) }}"),
    ("filters_length", "{{ l|length }} {{ s|length }} {{ d|count }} {{ ''|length }} {{ 'héllo'|count }}"),
    ("filters_lists", "{{ l|first }} {{ l|last }} {{ 'abc'|first }} {{ l|join(',') }} {{ l|join }} {{ l|sort }} {{ l|sort(reverse=true) }} {{ l|reverse|list }} {{ s|reverse }} {{ l|sum }} {{ l|max }} {{ l|min }} {{ [[1], [2]]|sum(start=[]) }}"),
    ("filters_sort_case", "{{ ['b', 'A', 'a', 'C']|sort }} {{ ['b', 'A', 'a']|sort(case_sensitive=true) }} {{ ['b', 'A', 'a', 'B']|unique|list }} {{ ['b', 'A', 'a']|max }} {{ msgs[:2]|sort(attribute='role')|map(attribute='role')|join(',') }}"),
    ("filters_dicts", "{{ d|dictsort }} {{ d|items|list }} {{ {'b': 1, 'a': 2}|dictsort(by='value') }} {{ d|list }} {{ {'B': 1, 'a': 2}|dictsort }} {{ {'B': 1, 'a': 2}|dictsort(true) }}"),
    ("filters_map_select", "{{ msgs|map(attribute='role')|list }} {{ msgs|map(attribute='content', default='?')|join(',') }} {{ ['a', 'b']|map('upper')|join }} {{ l|select('odd')|list }} {{ l|reject('gt', 1)|list }} {{ [1, 0, 2]|select|list }} {{ msgs|selectattr('role', 'equalto', 'user')|list|length }} {{ msgs|rejectattr('role', '==', 'user')|list }} {{ msgs|selectattr('content')|map(attribute='content')|join }}"),
    ("filters_numbers", "{{ '12abc'|int }} {{ '3.5'|int }} {{ '0x1A'|int(base=16) }} {{ 3.7|int }} {{ 'x'|float }} {{ '1e3'|float }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.567|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 7|round }} {{ -3|abs }} {{ -2.5|abs }} {{ ' 12 '|int }} {{ 'x'|int(7) }} {{ 1234|round(-2) }}"),
    ("filters_tojson", "{{ {'a': [1, {'b': 'é'}], 'c': 1.5, 'd': none, 'e': true}|tojson }}|{{ {'a': [1, {'b': 'é'}], 'e': [], 'f': {}}|tojson(indent=2) }}|{{ 'a\"b\\n\\x01\\x7f'|tojson }}|{{ {'x': 1}|tojson(separators=(',', ':')) }}|{{ 'é😀'|tojson(ensure_ascii=true) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ (1, 2)|tojson }}|{{ 1e20|tojson }}|{{ d|tojson(indent='\\t') }}"),
    ("filters_misc", "{{ l|batch(2)|list }} {{ l|batch(2, 0)|list }} {{ 'a b  c'|wordcount }} {{ '<a href=\"x\">&</a>'|e }} {{ '<a>'|safe }} {{ 'x'|center(5) }}|{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ '%s=%d'|format('k', 3) }}|{{ [1, 2]|string }} {{ 5|string ~ 'x' }} {{ d|attr('items') is callable }}"),
    # string methods
    ("str_methods", "{{ s.upper() }} {{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }} {{ '\\n\\nab'.lstrip('\\n') }} {{ 'ab  '.rstrip() }}| {{ s.startswith('hé') }} {{ s.endswith(('x', 'ld')) }} {{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 1) }} {{ s.find('w') }} {{ s.rfind('l') }} {{ s.count('l') }} {{ s.title() }} {{ s.capitalize() }}"),
    ("str_split", "{{ 'a b  c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }} {{ ' a b c '.split(None, 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ ' a b c '.rsplit(None, 1) }} {{ 'l1\\nl2\\r\\nl3'.splitlines() }} {{ ','.join(['a', 'b']) }} {{ 'ab'.center(6, '*') }} {{ '42'.zfill(5) }} {{ 'abc'.removeprefix('a') }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ ''.isdigit() }}"),
    ("dict_methods", "{{ d.get('b') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ l.index(1) }} {{ l.count(3) }}"),
    ("globals", "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5)|length }} {{ range(3, 0, -1)|list }} {{ dict(a=1, b='x') }} {{ namespace(a=1).a }}"),
    ("markup", "{{ '<a>'|safe + '<b>' }} {{ '<a>' + '<b>'|safe }} {{ '<a>'|safe ~ '<b>' }} {{ '<x>'|e + '<y>' }} {{ '<x>'|e|e }} {{ ('%s<br>'|safe) % '<i>' }} {{ ('-'|safe).join(['<', '>']) }} {{ '<'|safe is escaped }} {{ '<' is escaped }} {{ ('<'|safe|upper) + '<' }} {{ '<'|safe|tojson }}"),
    ("generators_are_true", "{{ 'yes' if [] | select else 'no' }} {{ 'yes' if msgs | selectattr('role', 'equalto', 'tool') else 'no' }} {{ msgs | selectattr('role', 'equalto', 'tool') | list | length }} {{ 'yes' if [] | map('upper') | list else 'no' }}"),
    ("print_tag", "{% print 1, 'x' %}{% print l|join('-') %}"),
    ("filter_block", "{% filter upper %}abc{{ 'd' }}{% endfilter %}{% filter replace('a', 'b')|upper %}aXa{% endfilter %}"),
    ("generation_block", "x{% generation %}gen {{ 1 }}{% endgeneration %}y"),
    ("unknown_filter_in_if", "{% if false %}{{ x|nosuchfilter }}{% endif %}ok"),
    # errors (jinja2 raises; the interpreter must fail too)
    ("error_raise", "{{ raise_exception('custom failure: ' ~ l|length) }}"),
    ("error_undefined_attr", "{{ u.x }}"),
    ("error_undefined_chain", "{{ d.zz.y }}"),
    ("error_concat_int", "{{ 'a' + 1 }}"),
    ("error_compare_types", "{{ 1 < 'a' }}"),
    ("error_in_none", "{{ 'x' in none }}"),
    ("error_iterate_int", "{% for x in 3 %}{% endfor %}"),
    ("error_list_append", "{{ l.append(4) }}"),
    ("error_tojson_undefined", "{{ u|tojson }}"),
    ("error_division_by_zero", "{{ 1 / 0 }}"),
    ("error_macro_too_many_args", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
    ("error_range_too_big", "{{ range(1000000)|length }}"),
    ("error_percent_args", "{{ '%s %s' % (1,) }}"),
    ("error_generator_length", "{{ l|select('odd')|length }}"),
    ("error_generator_tojson", "{{ l|map('string')|tojson }}"),
    ("error_concat_binds_tighter", "{{ 'a' ~ 1 + 2 }}"),
    ("error_filter_after_minus", "{{ -l|length }}"),
]


def main():
    tpl_dir = os.path.join(SHARED, "templates")
    if not os.path.isdir(tpl_dir):
        sys.exit(f"gen-chat-template-fixtures: {tpl_dir} not found (set PARETO_SHARED)")
    os.makedirs(OUT, exist_ok=True)
    for name, cases_fn in TEMPLATES.items():
        with open(os.path.join(tpl_dir, name), encoding="utf-8", newline="") as f:
            source = f.read()
        cases = []
        for case_name, context in cases_fn():
            case = {"name": case_name, "context": context}
            case.update(render(source, context))
            if case_name.startswith("error_") != ("error" in case):
                sys.exit(f"{name}: case {case_name}: unexpected outcome {case}")
            cases.append(case)
        out = os.path.join(OUT, os.path.splitext(name)[0] + ".json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"template": name, "source": source, "cases": cases}, f, ensure_ascii=False,
                      indent=1)
            f.write("\n")
        print(f"{out}: {len(cases)} cases")
    snippets = []
    for case_name, source in SNIPPETS:
        case = {"name": case_name, "template": source, "context": DATA}
        case.update(render(source, DATA))
        if case_name.startswith("error_") != ("error" in case):
            sys.exit(f"snippet {case_name}: unexpected outcome {case}")
        snippets.append(case)
    out = os.path.join(OUT, "snippets.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"jinja2": jinja2.__version__, "cases": snippets}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{out}: {len(snippets)} cases")


if __name__ == "__main__":
    main()
