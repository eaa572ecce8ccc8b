// An embedding program in C++ built against an installed vkllm (tests/cli_install.sh): only
// <vkllm.h>, found through CMake's find_package(vkllm) (tests/install/CMakeLists.txt). Loads
// the model $VKLLM_MODEL on the CPU backend and prints 16 greedy tokens of a fixed prompt on
// stdout: the same text as consumer.c.
#include <vkllm.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

namespace {

struct runtime_deleter {
    void operator()(vkllm_runtime *rt) const { vkllm_runtime_destroy(rt); }
};
struct model_deleter {
    void operator()(vkllm_model *m) const { vkllm_model_free(m); }
};
struct session_deleter {
    void operator()(vkllm_session *s) const { vkllm_session_destroy(s); }
};

bool on_token(void *user, int32_t, const char *piece, size_t piece_len) {
    static_cast<std::string *>(user)->append(piece, piece_len);
    return true;
}

} // namespace

int main() {
    const uint32_t v = vkllm_version();
    if (VKLLM_VERSION_GET_MAJOR(v) != VKLLM_VERSION_MAJOR) {
        std::cerr << "consumer.cpp: vkllm.h is version " << VKLLM_VERSION_MAJOR << ", the library "
                  << VKLLM_VERSION_GET_MAJOR(v) << '\n';
        return 1;
    }
    std::cerr << "consumer.cpp: vkllm " << VKLLM_VERSION_GET_MAJOR(v) << '.'
              << VKLLM_VERSION_GET_MINOR(v) << '.' << VKLLM_VERSION_GET_PATCH(v) << " ("
              << vkllm_version_string() << ")\n";
    const char *path = std::getenv("VKLLM_MODEL");
    if (!path || !*path) {
        std::cerr << "consumer.cpp: VKLLM_MODEL is not set\n";
        return 1;
    }

    vkllm_runtime_desc rd = vkllm_runtime_desc();
    rd.device = "cpu";
    rd.n_threads = 2;
    vkllm_runtime *rt_raw = nullptr;
    if (vkllm_runtime_create(&rd, &rt_raw) != VKLLM_OK) {
        std::cerr << "consumer.cpp: runtime: " << vkllm_runtime_last_error(nullptr) << '\n';
        return 1;
    }
    std::unique_ptr<vkllm_runtime, runtime_deleter> rt(rt_raw);

    vkllm_model_desc md = vkllm_model_desc();
    md.path = path;
    vkllm_model *model_raw = nullptr;
    if (vkllm_model_load(rt.get(), &md, &model_raw) != VKLLM_OK) {
        std::cerr << "consumer.cpp: " << path << ": " << vkllm_runtime_last_error(rt.get()) << '\n';
        return 1;
    }
    std::unique_ptr<vkllm_model, model_deleter> model(model_raw);

    vkllm_session_desc sd = vkllm_session_desc();
    sd.n_ctx = 256;
    vkllm_session *s_raw = nullptr;
    if (vkllm_session_create(model.get(), &sd, &s_raw) != VKLLM_OK) {
        std::cerr << "consumer.cpp: session: " << vkllm_model_last_error(model.get()) << '\n';
        return 1;
    }
    std::unique_ptr<vkllm_session, session_deleter> s(s_raw);

    std::string out;
    vkllm_generate_desc gd = vkllm_generate_desc();
    gd.prompt = "The three primary colors are";
    gd.max_tokens = 16;
    gd.ignore_eog = true; // always 16 tokens
    gd.on_token = on_token;
    gd.user = &out;
    vkllm_generate_result res = vkllm_generate_result();
    if (vkllm_generate(s.get(), &gd, &res) != VKLLM_OK) {
        std::cerr << "consumer.cpp: generate: " << vkllm_session_last_error(s.get()) << '\n';
        return 1;
    }
    if (res.n_generated != 16) {
        std::cerr << "consumer.cpp: " << res.n_generated << " tokens generated, not 16\n";
        return 1;
    }
    std::cout << out << '\n';
    return 0;
}
