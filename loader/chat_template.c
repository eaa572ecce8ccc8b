/* Chat formats (ChatML, Llama 2, Llama 3) rendered in C, as their Jinja templates render them.
 *
 * We do not run Jinja. chat_detect() recognises the family by its markers; chat_render()
 * writes the same text the model's template would for plain role/content messages: ChatML
 * as SmolLM2's and Qwen's templates, Llama 3 as Meta's Llama 3 Instruct template (content
 * trimmed), Llama 2 as Meta's llama-2-chat template (system folded into the first user turn,
 * BOS before every [INST], roles must alternate). A default system prompt that a template
 * hard-codes for conversations without one (SmolLM2: "You are a helpful AI assistant named
 * SmolLM, ...") is read out of the template text, not built in.
 * Must not: allocate, or know about tokenizers; bos_text is whatever the caller wants where
 * the template says bos_token ("" when BOS is added at tokenization).
 */
#include "loader/chat_template.h"

#include <string.h>

typedef struct out_buf {
    char *buf;
    size_t cap, n;
} out_buf;

static void put(out_buf *o, const char *s, size_t n) {
    /* Keep room for the NUL: the text is complete only if n < cap at the end. */
    if (o->n + 1 < o->cap) {
        size_t room = o->cap - 1 - o->n;
        memcpy(o->buf + o->n, s, n < room ? n : room);
    }
    o->n += n;
}
static void puts_(out_buf *o, const char *s) {
    put(o, s, strlen(s));
}

static const char *find(const char *hay, size_t n, const char *needle) {
    size_t k = strlen(needle);
    if (!hay || k > n) return NULL;
    for (size_t i = 0; i + k <= n; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, k) == 0) return hay + i;
    }
    return NULL;
}

chat_format chat_detect(const char *tmpl, size_t len) {
    if (!tmpl || len == 0) return CHAT_FORMAT_CHATML;
    if (find(tmpl, len, "<|im_start|>")) return CHAT_FORMAT_CHATML;
    if (find(tmpl, len, "<|start_header_id|>")) return CHAT_FORMAT_LLAMA3;
    if (find(tmpl, len, "[INST]")) return CHAT_FORMAT_LLAMA2;
    return CHAT_FORMAT_UNKNOWN;
}

const char *chat_format_name(chat_format fmt) {
    switch (fmt) {
    case CHAT_FORMAT_CHATML:
        return "chatml";
    case CHAT_FORMAT_LLAMA2:
        return "llama2";
    case CHAT_FORMAT_LLAMA3:
        return "llama3";
    case CHAT_FORMAT_UNKNOWN:
        break;
    }
    return "unknown";
}

/* A default system prompt in the template: the text between opener (followed by a newline,
 * sep_lines times) and closer, where that text is a constant. Either the opener starts a
 * Jinja string literal (a quote just before it): then the text must lie inside that literal
 * (no unescaped closing quote before closer), newlines may be written as the escape "\n",
 * and *escaped is set; or it is template body text: then it must contain no Jinja
 * expression or tag. Anything else means the system text is computed (a variable), not a
 * default. Returns the text's length in the template, or 0 with *start NULL. */
static size_t find_default_system(const char *t, size_t n, const char *opener, int sep_lines,
                                  const char *closer, const char **start, bool *escaped) {
    *start = NULL;
    const char *end = t + n;
    for (const char *p = find(t, n, opener); p; p = find(p + 1, (size_t)(end - p - 1), opener)) {
        char quote = (p > t && (p[-1] == '\'' || p[-1] == '"')) ? p[-1] : 0;
        const char *q = p + strlen(opener);
        int lines = 0;
        for (; lines < sep_lines; lines++) {
            if (q < end && *q == '\n')
                q++;
            else if (quote && q + 1 < end && q[0] == '\\' && q[1] == 'n')
                q += 2;
            else
                break;
        }
        if (lines < sep_lines) continue;
        const char *c = find(q, (size_t)(end - q), closer);
        if (!c || c == q) continue;
        bool constant = true;
        for (const char *s = q; s < c && constant; s++) {
            if (quote && *s == '\\')
                s++; /* an escaped character is part of the text */
            else if (quote && *s == quote)
                constant = false;
            else if (!quote && *s == '{' && s + 1 < c && (s[1] == '{' || s[1] == '%'))
                constant = false;
        }
        if (!constant) continue;
        *start = q;
        *escaped = quote != 0;
        return (size_t)(c - q);
    }
    return 0;
}

/* Writes the default system text: a Jinja string literal's text has its escapes undone. */
static void put_system(out_buf *o, const char *s, size_t n, bool escaped) {
    if (!escaped) {
        put(o, s, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            c = s[++i];
            if (c == 'n')
                c = '\n';
            else if (c == 't')
                c = '\t';
            else if (c == 'r')
                c = '\r';
        }
        put(o, &c, 1);
    }
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Jinja's trim / Python's strip (on ASCII whitespace). */
static void put_trimmed(out_buf *o, const char *s) {
    size_t n = strlen(s), a = 0;
    while (a < n && is_space(s[a]))
        a++;
    while (n > a && is_space(s[n - 1]))
        n--;
    put(o, s + a, n - a);
}

static bool role_is(const vkllm_chat_message *m, const char *role) {
    return strcmp(m->role, role) == 0;
}

static void render_chatml(const char *tmpl, size_t tlen, const vkllm_chat_message *msgs, size_t n,
                          bool add_assistant, out_buf *o) {
    const char *sys;
    bool esc;
    size_t sys_len =
        find_default_system(tmpl, tlen, "<|im_start|>system", 1, "<|im_end|>", &sys, &esc);
    if (n > 0 && sys && !role_is(&msgs[0], "system")) {
        puts_(o, "<|im_start|>system\n");
        put_system(o, sys, sys_len, esc);
        puts_(o, "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++) {
        puts_(o, "<|im_start|>");
        puts_(o, msgs[i].role);
        puts_(o, "\n");
        puts_(o, msgs[i].content);
        puts_(o, "<|im_end|>\n");
    }
    if (add_assistant) puts_(o, "<|im_start|>assistant\n");
}

static void render_llama3(const char *tmpl, size_t tlen, const vkllm_chat_message *msgs, size_t n,
                          bool add_assistant, const char *bos, out_buf *o) {
    const char *sys;
    bool esc;
    size_t sys_len = find_default_system(tmpl, tlen, "<|start_header_id|>system<|end_header_id|>",
                                         2, "<|eot_id|>", &sys, &esc);
    if (n > 0) puts_(o, bos); /* the template puts bos_token before the first message */
    if (n > 0 && sys && !role_is(&msgs[0], "system")) {
        puts_(o, "<|start_header_id|>system<|end_header_id|>\n\n");
        put_system(o, sys, sys_len, esc);
        puts_(o, "<|eot_id|>");
    }
    for (size_t i = 0; i < n; i++) {
        puts_(o, "<|start_header_id|>");
        puts_(o, msgs[i].role);
        puts_(o, "<|end_header_id|>\n\n");
        put_trimmed(o, msgs[i].content);
        puts_(o, "<|eot_id|>");
    }
    if (add_assistant) puts_(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static vkllm_status render_llama2(const vkllm_chat_message *msgs, size_t n, const char *bos,
                                  out_buf *o) {
    const vkllm_chat_message *sys = NULL;
    if (n > 0 && role_is(&msgs[0], "system")) {
        sys = &msgs[0];
        msgs++;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        bool user = role_is(&msgs[i], "user");
        if (user != (i % 2 == 0)) return VKLLM_ERR_INVALID_ARG; /* the template raises */
        /* The template strips the whole content, system block included. */
        if (user) {
            puts_(o, bos);
            puts_(o, "[INST] ");
            if (i == 0 && sys) {
                puts_(o, "<<SYS>>\n");
                puts_(o, sys->content);
                puts_(o, "\n<</SYS>>");
                const char *c = msgs[i].content;
                size_t cn = strlen(c);
                while (cn > 0 && is_space(c[cn - 1]))
                    cn--;
                if (cn > 0) { /* else the strip takes the blank line after <</SYS>> too */
                    puts_(o, "\n\n");
                    put(o, c, cn);
                }
            } else {
                put_trimmed(o, msgs[i].content);
            }
            puts_(o, " [/INST]");
        } else if (role_is(&msgs[i], "assistant")) {
            puts_(o, " ");
            put_trimmed(o, msgs[i].content);
            puts_(o, " </s>");
        }
    }
    return VKLLM_OK;
}

vkllm_status chat_render(chat_format fmt, const char *tmpl, size_t tmpl_len,
                         const vkllm_chat_message *msgs, size_t n, bool add_assistant,
                         const char *bos_text, char *buf, size_t cap, size_t *n_out) {
    if ((!msgs && n) || (!buf && cap) || !n_out) return VKLLM_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) return VKLLM_ERR_INVALID_ARG;
    }
    if (!tmpl) tmpl_len = 0;
    if (!bos_text) bos_text = "";
    out_buf o = {buf, cap, 0};
    vkllm_status st = VKLLM_OK;
    switch (fmt) {
    case CHAT_FORMAT_CHATML:
        render_chatml(tmpl, tmpl_len, msgs, n, add_assistant, &o);
        break;
    case CHAT_FORMAT_LLAMA3:
        render_llama3(tmpl, tmpl_len, msgs, n, add_assistant, bos_text, &o);
        break;
    case CHAT_FORMAT_LLAMA2:
        st = render_llama2(msgs, n, bos_text, &o);
        break;
    case CHAT_FORMAT_UNKNOWN:
        st = VKLLM_ERR_UNSUPPORTED;
        break;
    }
    *n_out = o.n;
    if (cap > 0) buf[o.n < cap ? o.n : cap - 1] = '\0';
    if (st != VKLLM_OK) {
        *n_out = 0;
        if (cap > 0) buf[0] = '\0';
        return st;
    }
    return o.n >= cap ? VKLLM_ERR_BUFFER_TOO_SMALL : VKLLM_OK;
}
