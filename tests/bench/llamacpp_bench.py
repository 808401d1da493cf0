#!/usr/bin/env python3
"""Native llama.cpp (PyPI llama-cpp-python) timed on the same prompt as `confidant bench`,
for tests/bench/cpu-bench.mjs (a benchmark, not a test). Prints one JSON object.

    python3 tests/bench/llamacpp_bench.py --model models/SmolLM2-135M-Instruct-Q4_1.gguf \
        [--prompt-tokens 500] [--decode-tokens 128] [--repeats 3] [--threads 1,2]

The prompt is built as crates/cli/src/main.rs builds it: BENCH_TEXT tokenized on its own
(special tokens parsed, BOS only if the model asks for it), repeated, truncated to N ids.
Each run clears the KV cache, evaluates those ids as one batch (prefill), then runs
--decode-tokens single-token evals, each fed the argmax of the previous logits: greedy, and
EOS cannot stop it because nothing here checks for it. Only llama_decode calls are timed (the
forward pass and the logits copy-out, as Confidant's own stats count). One warm-up run, then
the median of --repeats.

The JSON also carries `text`: a prefix of the repeated BENCH_TEXT that tokenizes, as one
string, to exactly N tokens (or as close as possible below), for engines that take text only.
`--threads ''` skips the timing and prints just that.

Install (a CPU build; -march=native builds can die with "Illegal instruction" on machines that
report AMX):
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
      -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" pip install llama-cpp-python
"""

import argparse
import json
import statistics
import sys
import time

import llama_cpp
import numpy as np

# Must stay identical to BENCH_TEXT in crates/cli/src/main.rs.
BENCH_TEXT = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the "
    "steps as his father had taught him. Below, the harbour filled with fishing boats returning from the "
    "grey water, their lanterns swaying like fireflies. He trimmed the wick, polished the great lens, and "
    "watched the beam sweep across the rocks where, fifty years before, a schooner had broken apart in a "
    "winter storm. "
)


@llama_cpp.llama_log_callback
def _log(level, text, _user):
    if level in (3, 4):  # warnings and errors only
        sys.stderr.write(text.decode("utf-8", "replace"))


def tokenize(vocab, text):
    data = text.encode("utf-8")
    cap = len(data) + 8
    buf = (llama_cpp.llama_token * cap)()
    # add_special=True adds BOS only when the model's add_bos_token says so (not SmolLM2).
    n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, cap, True, True)
    if n < 0:
        raise RuntimeError(f"llama_tokenize failed ({n})")
    return [int(t) for t in buf[:n]]


def bench_ids(vocab, n):
    chunk = tokenize(vocab, BENCH_TEXT)
    ids = []
    while len(ids) < n:
        ids.extend(chunk)
    return ids[:n]


def bench_text(vocab, n):
    """The longest prefix of the repeated BENCH_TEXT that tokenizes to at most n tokens."""
    long = BENCH_TEXT
    while len(tokenize(vocab, long)) <= n:
        long += BENCH_TEXT
    lo, hi = 0, len(long)  # count(long[:lo]) <= n < count(long[:hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if len(tokenize(vocab, long[:mid])) <= n:
            lo = mid
        else:
            hi = mid
    text = long[:lo]
    return text, len(tokenize(vocab, text))


def decode(ctx, tokens):
    arr = (llama_cpp.llama_token * len(tokens))(*tokens)
    started = time.perf_counter()
    rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(tokens)))
    elapsed = time.perf_counter() - started
    if rc != 0:
        raise RuntimeError(f"llama_decode failed ({rc})")
    return elapsed


def run(model, vocab, ids, decode_tokens, threads, repeats):
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = len(ids) + decode_tokens + 16
    cparams.n_batch = max(512, len(ids))  # the prompt goes in as one llama_decode call
    cparams.n_ubatch = 512
    cparams.n_seq_max = 1
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        raise RuntimeError("cannot create context")
    prefill, decode_rate = [], []
    try:
        for i in range(repeats + 1):
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            prefill_s = decode(ctx, ids)
            decode_s = 0.0
            for _ in range(decode_tokens):
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
                decode_s += decode(ctx, [int(np.argmax(logits))])
            if i > 0:  # run 0 is the warm-up
                prefill.append(len(ids) / prefill_s)
                decode_rate.append(decode_tokens / decode_s)
    finally:
        llama_cpp.llama_free(ctx)
    return {
        "threads": threads,
        "prompt_tokens": len(ids),
        "decode_tokens": decode_tokens,
        "prefill_tok_s": statistics.median(prefill),
        "decode_tok_s": statistics.median(decode_rate),
        "runs": [{"prefill_tok_s": p, "decode_tok_s": d} for p, d in zip(prefill, decode_rate)],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=500)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts; empty: only build the prompt")
    args = ap.parse_args()

    llama_cpp.llama_log_set(_log, None)
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(args.model.encode(), mparams)
    if not model:
        raise SystemExit(f"cannot load {args.model}")
    vocab = llama_cpp.llama_model_get_vocab(model)

    ids = bench_ids(vocab, args.prompt_tokens)
    text, text_tokens = bench_text(vocab, args.prompt_tokens)
    results = [
        run(model, vocab, ids, args.decode_tokens, int(t), args.repeats)
        for t in args.threads.split(",") if t.strip()
    ]
    llama_cpp.llama_model_free(model)
    print(json.dumps({
        "llama_cpp_python": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "ids": ids,
        "text": text,
        "text_tokens": text_tokens,
        "results": results,
    }))


if __name__ == "__main__":
    main()
