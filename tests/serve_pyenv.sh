# Sourced by the vkllm serve tests (cli_serve*.sh): sets $pyenv and $py to the virtual
# environment scripts/deps.sh makes from tests/requirements-serve.txt, and fails the test
# (never skips it) when a module it needs is missing there.
# Usage: . "$(dirname "$0")/serve_pyenv.sh"; need_py_module openai
pyenv="${VKLLM_PYENV:-${VKLLM_CACHE:-$HOME/.cache/vkllm}/pyenv}"
py="$pyenv/bin/python"
need_py_module() {
    if ! "$py" -c "import $1" 2>/dev/null; then
        echo "FAIL: no $1 in $pyenv: run scripts/deps.sh (it makes that virtual" \
             "environment from tests/requirements-serve.txt; needs PyPI)"
        exit 1
    fi
}
