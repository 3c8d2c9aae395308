"""Render the chat-template fixtures with transformers' own machinery -> chat_template_goldens.json.

Run from the package root:  /work/venv/bin/python Tests/Fixtures/make_chat_goldens.py
No network: the templates are the files in Tests/Fixtures/chat_templates/ (see README.md
there for where each came from). Each case is rendered by
transformers.utils.chat_template_utils.render_jinja_template, which is what
apply_chat_template(tokenize=False) calls, with the special tokens passed the way
apply_chat_template passes a tokenizer's special_tokens_map. Attune's ChatTemplate must
reproduce every output byte for byte, and every raise_exception message exactly.
"""

import json
import pathlib
import random

import jinja2
from transformers.utils.chat_template_utils import render_jinja_template

HERE = pathlib.Path(__file__).resolve().parent
TEMPLATES = HERE / "chat_templates"

# Special tokens of the published checkpoints' tokenizer configs (strings only: what
# special_tokens_map hands the template). bos/eos go through ChatTemplate.render's
# parameters, the rest through `extra`.
LLAMA3 = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
QWEN = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
MISTRAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
ZEPHYR = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>"}

FAMILIES = {
    "llama3": LLAMA3,
    "llama3_1": LLAMA3,
    "llama3_2": LLAMA3,
    "qwen2_5": QWEN,
    "mistral_7b_v0_1": MISTRAL,
    "mixtral_8x7b_v0_1": MISTRAL,
    "mistral_7b_v0_3": MISTRAL,
    "zephyr": ZEPHYR,
}

SYSTEM = {"role": "system", "content": "You are a terse assistant. Answer in one line."}
CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_user": [SYSTEM, {"role": "user", "content": "What is 2+2?"}],
    "multi_turn": [
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": "Another one?"},
    ],
    "system_multi_turn": [
        SYSTEM,
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": "Another one?"},
        {"role": "assistant", "content": "11"},
    ],
    "special_characters": [
        {"role": "user", "content": "  Line one\nline two\ttab \"quotes\" 'single' \\backslash {{ not_a_var }} {% raw %}  \n\n"},
        {"role": "assistant", "content": "\n Unicode: caf\u00e9, \u65e5\u672c\u8a9e, \U0001F600, <|im_end|> </s> [INST] \n"},
        {"role": "user", "content": "\u00a0non-breaking\u00a0 and trailing newline\n"},
    ],
    "empty_content": [{"role": "user", "content": ""}],
    "system_only": [SYSTEM],
    "tool_turn": [
        {"role": "user", "content": "What is 6*7?"},
        {"role": "tool", "content": "42"},
    ],
}

# A tool schema in the OpenAI style the templates expect; its keys are in sorted order at
# every level so that Swift callers (whose dictionaries have no order) pass the same JSON.
WEATHER_TOOL = {
    "function": {
        "description": "Get the current weather in a city.",
        "name": "get_weather",
        "parameters": {
            "properties": {
                "city": {"description": "City name, e.g. \"Paris\"", "type": "string"},
                "unit": {"enum": ["celsius", "fahrenheit"], "type": "string"},
            },
            "required": ["city"],
            "type": "object",
        },
    },
    "type": "function",
}
# Extra template variables that switch on the templates' tool branches.
TOOL_VARIANTS = {
    "llama3_1": {
        "tools": {"tools": [WEATHER_TOOL]},
        "tools_in_system": {"tools": [WEATHER_TOOL], "tools_in_user_message": False, "date_string": "01 Jan 2025"},
        "builtin_tools": {"builtin_tools": ["brave_search", "code_interpreter", "wolfram_alpha"]},
    },
    "llama3_2": {
        "tools": {"tools": [WEATHER_TOOL], "date_string": "26 Jul 2024"},
        "tools_in_system": {"tools": [WEATHER_TOOL], "tools_in_user_message": False, "date_string": "26 Jul 2024"},
    },
    "qwen2_5": {"tools": {"tools": [WEATHER_TOOL]}},
    "mistral_7b_v0_3": {"tools": {"tools": [WEATHER_TOOL]}},
}

# Llama 3.2 prints today's date through strftime_now unless date_string is given; pin it
# so the goldens do not depend on the day they are checked.
EXTRA = {"llama3_2": {"date_string": "26 Jul 2024"}}


def render(template, messages, add_generation_prompt, tokens, extra):
    try:
        rendered, _ = render_jinja_template(
            conversations=[messages],
            chat_template=template,
            add_generation_prompt=add_generation_prompt,
            **tokens,
            **extra,
        )
        return {"output": rendered[0]}
    except jinja2.exceptions.TemplateError as error:
        return {"error": str(error)}


def random_template(rng, depth=0, in_loop=False):
    """A random mix of text and tags with every whitespace-control marker, to pin down
    trim_blocks / lstrip_blocks / `-` / `+` behaviour beyond what the real templates use."""
    texts = ["", " ", "\n", "  \n", "\t", "a", " b ", "\n  ", "c\n", "  ", "\n\n", " \t\n d"]
    def text():
        return "".join(rng.choice(texts) for _ in range(rng.randint(0, 3)))
    def block(body):
        return rng.choice(["{%", "{%-", "{%+"]) + " " + body + " " + rng.choice(["%}", "-%}", "+%}"])
    exprs = ["x", "'s'", "xs | length", "x ~ 'y'", "c"] + (["loop.index", "item"] if in_loop else [])
    parts = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["text", "output", "comment", "set"] + (["if", "for"] if depth < 2 else []))
        parts.append(text())
        if kind == "output":
            parts.append(rng.choice(["{{", "{{-"]) + " " + rng.choice(exprs) + " " + rng.choice(["}}", "-}}"]))
        elif kind == "comment":
            parts.append(rng.choice(["{#", "{#-"]) + " note " + rng.choice(["#}", "-#}"]))
        elif kind == "set":
            parts.append(block("set z = " + rng.choice(exprs)))
        elif kind == "if":
            parts.append(block("if c") + random_template(rng, depth + 1, in_loop))
            if rng.random() < 0.5:
                parts.append(block("else") + random_template(rng, depth + 1, in_loop))
            parts.append(block("endif"))
        elif kind == "for":
            parts.append(block("for item in xs") + random_template(rng, depth + 1, True) + block("endfor"))
        parts.append(text())
    return "".join(parts)


def whitespace_cases():
    from transformers.utils.chat_template_utils import _compile_jinja_template

    rng = random.Random(20261203)
    cases = []
    for _ in range(400):
        source = random_template(rng)
        variables = {"x": "X", "xs": ["p", "q"], "c": rng.random() < 0.5}
        cases.append({"source": source, "variables": variables,
                      "output": _compile_jinja_template(source).render(**variables)})
    return cases


def random_expression(rng, depth=0):
    """A random expression over a few values, operators, filters and tests."""
    atoms = ["0", "1", "-2", "2.5", "'a'", "'Ab c '", "''", "none", "true", "false", "[1, 'a']", "[]",
             "{'k': 1}", "x", "n", "ls", "d", "u", "(1, 'a')"]
    if depth >= 3 or rng.random() < 0.3:
        return rng.choice(atoms)
    e = lambda: random_expression(rng, depth + 1)
    subscripts = ["0", "-1", "1:", ":-1", "::-1", "'k'"]
    # Not `items` / `reverse`: jinja2 returns iterators for those, which print as object addresses.
    filters = ["length", "trim", "string", "tojson", "default(7)", "first", "last", "list", "join('-')", "lower",
               "upper", "capitalize", "int", "float", "abs"]
    forms = [
        lambda: f"not {e()}", lambda: f"-{e()}",
        lambda: f"({e()} {rng.choice(['+', '-', '*', '/', '//', '%', '~', '==', '!=', '<', '>=', 'in', 'not in', 'and', 'or'])} {e()})",
        lambda: f"{e()} {rng.choice(['+', '~', 'and', 'or', '=='])} {e()}",
        lambda: f"({e()} if {e()} else {e()})",
        # Subscripts only on variables: jinja2 constant-folds literal ones, hiding their TypeErrors.
        lambda: f"{rng.choice(['x', 'n', 'ls', 'd', 'u'])}[{rng.choice(subscripts)}]",
        lambda: f"{e()}.{rng.choice(['k', 'b'])}",
        lambda: f"({e()} | {rng.choice(filters)})",
        lambda: f"({e()} is {rng.choice(['not ', ''])}{rng.choice(['defined', 'none', 'string', 'number', 'mapping', 'iterable', 'sequence', 'integer', 'boolean', 'odd', 'equalto 1', 'in [1, 2]'])})",
        lambda: f"[{e()}, {e()}]",
        lambda: f"{{'k': {e()}}}",
    ]
    return rng.choice(forms)()


def expression_cases():
    from transformers.utils.chat_template_utils import _compile_jinja_template

    rng = random.Random(7)
    variables = {"x": "X", "n": 3, "ls": [3, 1, 2], "d": {"b": 1, "a": [1, "z"]}}
    cases = []
    while len(cases) < 600:
        source = "{{ " + random_expression(rng) + " }}"
        try:
            cases.append({"source": source, "output": _compile_jinja_template(source).render(**variables)})
        except jinja2.exceptions.TemplateSyntaxError:
            continue
        except Exception as error:  # any failure: Attune must fail too
            cases.append({"source": source, "error": f"{type(error).__name__}: {error}"})
    return cases


def main():
    cases = []
    for family, tokens in FAMILIES.items():
        template = (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")
        extra = EXTRA.get(family, {})
        for name, messages in CONVERSATIONS.items():
            for add_generation_prompt in (False, True):
                case = {
                    "template": family,
                    "conversation": name,
                    "messages": messages,
                    "add_generation_prompt": add_generation_prompt,
                    "bos_token": tokens.get("bos_token"),
                    "eos_token": tokens.get("eos_token"),
                    "extra": {**{k: v for k, v in tokens.items() if k not in ("bos_token", "eos_token")}, **extra},
                }
                case.update(render(template, messages, add_generation_prompt, tokens, extra))
                cases.append(case)
    for family, variants in TOOL_VARIANTS.items():
        tokens = FAMILIES[family]
        template = (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")
        for variant, extra in variants.items():
            for name in ("system_multi_turn", "tool_turn"):
                messages = CONVERSATIONS[name]
                case = {
                    "template": family,
                    "conversation": f"{name} + {variant}",
                    "messages": messages,
                    "add_generation_prompt": True,
                    "bos_token": tokens.get("bos_token"),
                    "eos_token": tokens.get("eos_token"),
                    "extra": {**{k: v for k, v in tokens.items() if k not in ("bos_token", "eos_token")}, **extra},
                }
                case.update(render(template, messages, True, tokens, extra))
                cases.append(case)
    out = HERE / "chat_template_goldens.json"
    out.write_text(json.dumps({"cases": cases}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    errors = sum("error" in c for c in cases)
    print(f"wrote {len(cases)} cases ({errors} raise_exception) to {out}")
    ws = HERE / "jinja_whitespace_goldens.json"
    ws.write_text(json.dumps({"cases": whitespace_cases()}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote 400 random whitespace-control cases to {ws}")
    ex = HERE / "jinja_expression_goldens.json"
    ex.write_text(json.dumps({"cases": expression_cases()}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote 600 random expression cases to {ex}")


if __name__ == "__main__":
    main()
