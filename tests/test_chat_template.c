/* Tests of loader/chat_template.c: the rendering must equal what the model's Jinja template
 * renders. Expected strings were made with Python's jinja2 (ImmutableSandboxedEnvironment,
 * trim_blocks and lstrip_blocks, as Hugging Face's apply_chat_template) from SmolLM2's
 * template (read from the default model here), Qwen2.5's, Meta's Llama 3 Instruct and
 * llama-2-chat templates (kept below), with bos_token "<s>" and eos_token "</s>".
 * Also: format detection, the default system prompt taken from the template, buffer sizes,
 * bad arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loader/chat_template.h"
#include "loader/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct expect {
    const char *tmpl; /* which template */
    char conv;        /* which conversation (see conversation()) */
    const char *text; /* jinja2's output */
} expect;

/* Qwen2.5-7B-Instruct's template (as in llama.cpp's models/templates). */
static const char k_qwen_tmpl[] =
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user "
    "query.\\n\\nYou are provided with function signatures within <tools></tools> XML "
    "tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name "
    "and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": "
    "<function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' "
    "}}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

static const char k_llama3_tmpl[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
static const char k_llama2_tmpl[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] "
    "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != "
    "false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
    "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
    "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% "
    "endfor %}";

static const expect k_expect[] = {
    {"smollm2", 'A',
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"},
    {"smollm2", 'B',
     "<|im_start|>system\nYou are a "
     "pirate.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nArr!<|im_end|>\n<|"
     "im_start|>user\nWhere is the treasure?<|im_end|>\n<|im_start|>assistant\n"},
    {"smollm2", 'C',
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\n  spaced content \n<|im_end|>\n"},
    {"smollm2", 'D', "<|im_start|>assistant\n"},
    {"smollm2", 'E',
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n b <|im_end|>\n"},
    {"smollm2", 'F', "<|im_start|>system\nsys only<|im_end|>\n<|im_start|>assistant\n"},
    {"smollm2", 'G', "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n   <|im_end|>\n"},
    {"qwen", 'A',
     "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
     "assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"},
    {"qwen", 'B',
     "<|im_start|>system\nYou are a "
     "pirate.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nArr!<|im_end|>\n<|"
     "im_start|>user\nWhere is the treasure?<|im_end|>\n<|im_start|>assistant\n"},
    {"qwen", 'C',
     "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
     "assistant.<|im_end|>\n<|im_start|>user\n  spaced content \n<|im_end|>\n"},
    {"qwen", 'E',
     "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
     "assistant.<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n b <|im_end|>\n"},
    {"qwen", 'F', "<|im_start|>system\nsys only<|im_end|>\n<|im_start|>assistant\n"},
    {"qwen", 'G', "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n   <|im_end|>\n"},
    {"llama3", 'A',
     "<s><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|"
     "end_header_id|>\n\n"},
    {"llama3", 'B',
     "<s><|start_header_id|>system<|end_header_id|>\n\nYou are a "
     "pirate.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>"
     "assistant<|end_header_id|>\n\nArr!<|eot_id|><|start_header_id|>user<|end_header_id|>"
     "\n\nWhere is the treasure?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"llama3", 'C', "<s><|start_header_id|>user<|end_header_id|>\n\nspaced content<|eot_id|>"},
    {"llama3", 'D', "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"llama3", 'E',
     "<s><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|><|start_header_id|>assistant<|end_"
     "header_id|>\n\nb<|eot_id|>"},
    {"llama3", 'F',
     "<s><|start_header_id|>system<|end_header_id|>\n\nsys "
     "only<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"llama3", 'G',
     "<s><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_"
     "header_id|>\n\n<|eot_id|>"},
    {"llama2", 'A', "<s>[INST] Hello! [/INST]"},
    {"llama2", 'B',
     "<s>[INST] <<SYS>>\nYou are a pirate.\n<</SYS>>\n\nHi [/INST] Arr! </s><s>[INST] Where is the "
     "treasure? [/INST]"},
    {"llama2", 'C', "<s>[INST] spaced content [/INST]"},
    {"llama2", 'E', "<s>[INST] a [/INST] b </s>"},
    {"llama2", 'F', ""},
    {"llama2", 'G', "<s>[INST] <<SYS>>\nS\n<</SYS>> [/INST]"},
};

typedef struct conv {
    vkllm_chat_message msgs[4];
    size_t n;
    bool add_assistant;
} conv;

static conv conversation(char c) {
    switch (c) {
    case 'A':
        return (conv){{{"user", "Hello!"}}, 1, true};
    case 'B':
        return (conv){{{"system", "You are a pirate."},
                       {"user", "Hi"},
                       {"assistant", "Arr!"},
                       {"user", "Where is the treasure?"}},
                      4,
                      true};
    case 'C':
        return (conv){{{"user", "  spaced content \n"}}, 1, false};
    case 'D':
        return (conv){{{NULL, NULL}}, 0, true};
    case 'E':
        return (conv){{{"user", "a"}, {"assistant", " b "}}, 2, false};
    case 'F':
        return (conv){{{"system", "sys only"}}, 1, true};
    default:
        return (conv){{{"system", "S"}, {"user", "   "}}, 2, false};
    }
}

static char *smollm2_template(size_t *len) {
    const char *path = getenv("VKLLM_MODEL");
    if (!path || access(path, R_OK) != 0) {
        fail_msg("default model missing (VKLLM_MODEL=%s): run scripts/fetch_model.sh",
                 path ? path : "(unset)");
    }
    gguf_file *f;
    core_err err = {{0}};
    gguf_open_desc d = {.vocab_only = true};
    if (gguf_open(path, &d, &f, &err) != VKLLM_OK) fail_msg("%s: %s", path, err.msg);
    gguf_str s;
    assert_true(gguf_get_str(f, "tokenizer.chat_template", &s));
    char *t = malloc((size_t)s.len + 1);
    memcpy(t, s.ptr, (size_t)s.len);
    t[s.len] = '\0';
    *len = (size_t)s.len;
    gguf_close(f);
    return t;
}

static void test_render_matches_jinja(void **state) {
    (void)state;
    size_t smol_len;
    char *smol = smollm2_template(&smol_len);
    int checked = 0;
    for (size_t i = 0; i < sizeof k_expect / sizeof k_expect[0]; i++) {
        const expect *e = &k_expect[i];
        const char *t = strcmp(e->tmpl, "smollm2") == 0  ? smol
                        : strcmp(e->tmpl, "qwen") == 0   ? k_qwen_tmpl
                        : strcmp(e->tmpl, "llama3") == 0 ? k_llama3_tmpl
                                                         : k_llama2_tmpl;
        chat_format fmt = chat_detect(t, strlen(t));
        conv c = conversation(e->conv);
        char buf[4096];
        size_t n = 0;
        vkllm_status st = chat_render(fmt, t, strlen(t), c.msgs, c.n, c.add_assistant, "<s>", buf,
                                      sizeof buf, &n);
        if (st != VKLLM_OK || n != strlen(e->text) || strcmp(buf, e->text) != 0) {
            fail_msg("%s conversation %c (%s): status %d\n got:  \"%s\"\n want: \"%s\"", e->tmpl,
                     e->conv, chat_format_name(fmt), st, buf, e->text);
        }
        checked++;
    }
    printf("%d renderings match jinja2\n", checked);
    free(smol);
}

static void test_detect(void **state) {
    (void)state;
    size_t n;
    char *smol = smollm2_template(&n);
    assert_int_equal(chat_detect(smol, n), CHAT_FORMAT_CHATML);
    free(smol);
    assert_int_equal(chat_detect(k_qwen_tmpl, strlen(k_qwen_tmpl)), CHAT_FORMAT_CHATML);
    assert_int_equal(chat_detect(k_llama3_tmpl, strlen(k_llama3_tmpl)), CHAT_FORMAT_LLAMA3);
    assert_int_equal(chat_detect(k_llama2_tmpl, strlen(k_llama2_tmpl)), CHAT_FORMAT_LLAMA2);
    assert_int_equal(chat_detect(NULL, 0), CHAT_FORMAT_CHATML);
    assert_int_equal(chat_detect("", 0), CHAT_FORMAT_CHATML);
    assert_int_equal(chat_detect("{{ messages }}", 14), CHAT_FORMAT_UNKNOWN);
    /* The length is respected: the marker past len does not count. */
    assert_int_equal(chat_detect("xx<|im_start|>", 2), CHAT_FORMAT_UNKNOWN);
    assert_string_equal(chat_format_name(CHAT_FORMAT_LLAMA3), "llama3");
    assert_string_equal(chat_format_name((chat_format)99), "unknown");
}

/* A ChatML template without a hard-coded system prompt adds none; one whose system text is
 * an expression is not mistaken for a default. */
static void test_default_system_prompt(void **state) {
    (void)state;
    const char *plain = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
    const char *expr = "{{ '<|im_start|>system\\n' + sys + '<|im_end|>\\n' }}";
    const char *escaped =
        "{{ '<|im_start|>system\\nIt\\'s \"quoted\"\\tand tabbed<|im_end|>\\n' }}";
    vkllm_chat_message m = {"user", "hi"};
    char buf[256];
    size_t n;
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, plain, strlen(plain), &m, 1, false, NULL, buf,
                                 sizeof buf, &n),
                     VKLLM_OK);
    assert_string_equal(buf, "<|im_start|>user\nhi<|im_end|>\n");
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, expr, strlen(expr), &m, 1, false, NULL, buf,
                                 sizeof buf, &n),
                     VKLLM_OK);
    assert_string_equal(buf, "<|im_start|>user\nhi<|im_end|>\n");
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, escaped, strlen(escaped), &m, 1, false, NULL,
                                 buf, sizeof buf, &n),
                     VKLLM_OK);
    assert_string_equal(buf, "<|im_start|>system\nIt's \"quoted\"\tand tabbed<|im_end|>\n"
                             "<|im_start|>user\nhi<|im_end|>\n");
    /* Body text (outside any Jinja tag) counts too, without escapes. */
    const char *body = "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nRaw \\n "
                       "default<|im_end|>\n{% endif %}";
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, body, strlen(body), &m, 1, false, NULL, buf,
                                 sizeof buf, &n),
                     VKLLM_OK);
    assert_string_equal(buf, "<|im_start|>system\nRaw \\n default<|im_end|>\n"
                             "<|im_start|>user\nhi<|im_end|>\n");
    const char *body_expr = "<|im_start|>system\n{{ sys }}<|im_end|>";
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, body_expr, strlen(body_expr), &m, 1, false,
                                 NULL, buf, sizeof buf, &n),
                     VKLLM_OK);
    assert_string_equal(buf, "<|im_start|>user\nhi<|im_end|>\n");
}

static void test_buffers_and_errors(void **state) {
    (void)state;
    vkllm_chat_message m[2] = {{"user", "hello"}, {"user", "again"}};
    const char *want = "<|im_start|>user\nhello<|im_end|>\n";
    size_t need = 0;
    /* Size query, then exact fit (needs room for the NUL), then one short. */
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, NULL, 0, m, 1, false, NULL, NULL, 0, &need),
                     VKLLM_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need, strlen(want));
    char buf[64];
    memset(buf, 'x', sizeof buf);
    size_t n;
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, NULL, 0, m, 1, false, NULL, buf, need + 1, &n),
                     VKLLM_OK);
    assert_string_equal(buf, want);
    memset(buf, 'x', sizeof buf);
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, NULL, 0, m, 1, false, NULL, buf, need, &n),
                     VKLLM_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, need);
    assert_int_equal(buf[need - 1], '\0');
    assert_int_equal(buf[need], 'x');
    /* Bad arguments and formats. */
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, NULL, 0, NULL, 1, false, NULL, buf, 64, &n),
                     VKLLM_ERR_INVALID_ARG);
    vkllm_chat_message bad = {"user", NULL};
    assert_int_equal(chat_render(CHAT_FORMAT_CHATML, NULL, 0, &bad, 1, false, NULL, buf, 64, &n),
                     VKLLM_ERR_INVALID_ARG);
    assert_int_equal(chat_render(CHAT_FORMAT_UNKNOWN, NULL, 0, m, 1, false, NULL, buf, 64, &n),
                     VKLLM_ERR_UNSUPPORTED);
    /* Llama 2's template refuses roles that do not alternate. */
    assert_int_equal(chat_render(CHAT_FORMAT_LLAMA2, NULL, 0, m, 2, false, NULL, buf, 64, &n),
                     VKLLM_ERR_INVALID_ARG);
    /* No BOS text given: none written. */
    char big[256];
    assert_int_equal(
        chat_render(CHAT_FORMAT_LLAMA3, NULL, 0, m, 1, true, NULL, big, sizeof big, &n), VKLLM_OK);
    assert_string_equal(big, "<|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>"
                             "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_matches_jinja),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_default_system_prompt),
        cmocka_unit_test(test_buffers_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
