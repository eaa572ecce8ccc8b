# Shared by the fetch/build scripts (sourced, not run): messages prefixed with the script's
# name, sha256 of a file, and a pip download through whichever pip this machine has.
# The sourcing script sets `me` to its name first.

say() { echo "$me: $*" >&2; }
die() { echo "$me: error: $*" >&2; exit 1; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# pip_download ARGS...: `pip download ARGS` with the interpreter's pip (Debian's python3-pip
# provides it), else a pip on PATH. Downloading needs no --break-system-packages (PEP 668
# only guards installs). Goes through whatever package index pip is configured for.
pip_download() {
    local pip_cmd=()
    if python3 -m pip --version >/dev/null 2>&1; then
        pip_cmd=(python3 -m pip)
    elif command -v pip3 >/dev/null 2>&1; then
        pip_cmd=(pip3)
    elif command -v pip >/dev/null 2>&1; then
        pip_cmd=(pip)
    else
        die "pip not found (install python3-pip: scripts/deps.sh)"
    fi
    "${pip_cmd[@]}" download --disable-pip-version-check "$@" >&2
}
