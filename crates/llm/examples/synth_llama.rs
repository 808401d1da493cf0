//! Writes one of the synthetic llama GGUFs of `crates/llm/tests/synth` (deterministic
//! pseudo-random weights; see that module) to a file, for llama.cpp to run:
//!
//!   cargo run --release -p confidant-llm --example synth_llama -- <config-name> <out.gguf>
//!   cargo run --release -p confidant-llm --example synth_llama -- <config-name> <out.gguf> --split-tensors N
//!   cargo run --release -p confidant-llm --example synth_llama -- --large <out.gguf> <blocks> [q4_0|q8_0]
//!   cargo run --release -p confidant-llm --example synth_llama -- --list
//!
//! `tests/fixtures/make_synthetic_reference.py` calls it; `crates/llm/tests/synthetic_models.rs`
//! builds the same bytes in memory.

#[path = "../tests/synth/mod.rs"]
mod synth;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--list" => {
            for name in synth::CONFIGS {
                println!("{name}");
            }
            ExitCode::SUCCESS
        }
        [name, out] => match synth::build(name) {
            Some(bytes) => write(name, out, &bytes),
            None => unknown(name),
        },
        // A large llama (2048 wide, 8192 feed-forward) of `blocks` blocks, for loading a file
        // larger than wasm memory (tests/browser/large-model.mjs): its matrices Q4_0 (about
        // 34 MB a block: 44 blocks make 1.5 GB) or Q8_0 (64 MB a block: 24 blocks make 1.5 GB,
        // with half the values to unpack and multiply for the same bytes).
        [flag, out, blocks, rest @ ..] if flag == "--large" && rest.len() <= 1 => {
            let ty = match rest.first().map(String::as_str) {
                None | Some("q4_0") => gguf::GgmlType::Q4_0,
                Some("q8_0") => gguf::GgmlType::Q8_0,
                Some(other) => {
                    eprintln!("--large takes q4_0 or q8_0 as its type, not {other:?}");
                    return ExitCode::from(2);
                }
            };
            match (synth::spec("gqa_q4_0"), blocks.parse::<usize>()) {
                (Some(base), Ok(blocks)) if blocks > 0 => {
                    let types = synth::Types { attn_q: ty, attn_k: ty, attn_v: ty, attn_output: ty, ffn_gate: ty, ffn_up: ty, ffn_down: ty, ..base.types };
                    let spec = synth::Spec { name: "large_llama", blocks, embedding: 2048, feed_forward: 8192, heads: 16, kv_heads: 4, head_dim: 128, context_length: 2048, types, ..base };
                    write("large_llama", out, &synth::build_spec(&spec))
                }
                _ => {
                    eprintln!("--large takes a positive number of blocks, not {blocks:?}");
                    ExitCode::from(2)
                }
            }
        }
        // The model split in parts of `n` tensors, as llama.cpp's gguf-split writes them:
        // OUT-00001-of-0000K.gguf, … beside OUT (which names the prefix).
        [name, out, flag, n] if flag == "--split-tensors" => match (synth::build(name), n.parse::<usize>()) {
            (Some(bytes), Ok(n)) if n > 0 => match gguf::split_gguf(&bytes, n) {
                Ok(parts) => {
                    let stem = out.strip_suffix(".gguf").unwrap_or(out);
                    let count = parts.len();
                    for (i, part) in parts.iter().enumerate() {
                        let code = write(name, &format!("{stem}-{:05}-of-{count:05}.gguf", i + 1), part);
                        if code != ExitCode::SUCCESS {
                            return code;
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    ExitCode::FAILURE
                }
            },
            (None, _) => unknown(name),
            _ => {
                eprintln!("--split-tensors takes a positive number, not {n:?}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("usage: synth_llama <config-name> <out.gguf> [--split-tensors N]  |  synth_llama --large <out.gguf> <blocks> [q4_0|q8_0]  |  synth_llama --list");
            ExitCode::from(2)
        }
    }
}

fn write(name: &str, out: &str, bytes: &[u8]) -> ExitCode {
    if let Err(e) = std::fs::write(out, bytes) {
        eprintln!("{out}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("{name}: wrote {out} ({} bytes)", bytes.len());
    ExitCode::SUCCESS
}

fn unknown(name: &str) -> ExitCode {
    eprintln!("unknown configuration {name:?}; known: {}", synth::CONFIGS.join(", "));
    ExitCode::FAILURE
}
