//! Writes one of the synthetic llama GGUFs of `crates/llm/tests/synth` (deterministic
//! pseudo-random weights; see that module) to a file, for llama.cpp to run:
//!
//!   cargo run --release -p confidant-llm --example synth_llama -- <config-name> <out.gguf>
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
            Some(bytes) => {
                if let Err(e) = std::fs::write(out, &bytes) {
                    eprintln!("{out}: {e}");
                    return ExitCode::FAILURE;
                }
                eprintln!("{name}: wrote {out} ({} bytes)", bytes.len());
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("unknown configuration {name:?}; known: {}", synth::CONFIGS.join(", "));
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: synth_llama <config-name> <out.gguf>  |  synth_llama --list");
            ExitCode::from(2)
        }
    }
}
