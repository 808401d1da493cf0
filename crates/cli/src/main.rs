//! `confidant`: run a GGUF model from the terminal, on the native GPU (Vulkan through wgpu) or
//! on the CPU.

mod bench;
mod eval;
mod generate;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use llm::device::{AdapterInfo, init_cpu, init_native};
use llm::{Generator, LlmError};

use bench::BenchArgs;
use eval::EvalArgs;
use generate::GenerateArgs;

#[derive(Parser)]
#[command(name = "confidant", version, about = "Run a llama-family GGUF model on the GPU or the CPU, and evaluate the chat engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text after a prompt.
    Generate(GenerateArgs),
    /// Measure load time, prefill and decode speed, and device memory.
    Bench(BenchArgs),
    /// Run scripted case sets (eval/cases/) through the chat engine; print a table per set and
    /// write it to EVAL.md.
    Eval(EvalArgs),
}

/// What a command can fail with; each kind has the code the JS bindings use for it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    /// A case set or its files cannot be read or make no sense.
    #[error("eval: {0}")]
    Eval(String),
}

impl CliError {
    fn code(&self) -> &'static str {
        match self {
            Self::Llm(e) => e.code(),
            Self::Engine(e) => e.code(),
            Self::Eval(_) => "bad_request",
        }
    }
}

/// Where the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// The GPU when it is a real one, else the CPU (a software Vulkan such as lavapipe is
    /// slower than the CPU path).
    Auto,
    /// The GPU through wgpu (Vulkan, Metal, DX12), even a software one.
    Gpu,
    /// The CPU: SIMD integer kernels over the quantized weights, on every core.
    Cpu,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::generate(args).map_err(CliError::from),
        Command::Bench(args) => bench::bench(args).map_err(CliError::from),
        Command::Eval(args) => eval::eval(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

/// The device for `backend`.
pub(crate) fn device(backend: Backend) -> Result<(llm::Device, AdapterInfo), LlmError> {
    match backend {
        Backend::Cpu => Ok(init_cpu()),
        Backend::Gpu => init_native(),
        Backend::Auto => match init_native() {
            Ok((device, adapter)) if adapter.device_type != "cpu" => Ok((device, adapter)),
            _ => Ok(init_cpu()),
        },
    }
}

/// Load a model on `backend` with its KV cache in `kv` (f16 by default on a GPU with `shader-f16`).
pub(crate) fn load(path: &std::path::Path, backend: Backend, context: usize, kv: llm::KvPrecision) -> Result<(Generator, AdapterInfo, f64), LlmError> {
    let (device, adapter) = device(backend)?;
    let started = std::time::Instant::now();
    // A tensor at a time from the file: the file is never in memory whole.
    let (gguf, file) = llm::weights::FileSource::open(path)?;
    if let Some(max_buffer) = adapter.max_buffer {
        llm::MemoryNeed::check_gpu_buffers_with_cache(&gguf, context, max_buffer, kv.dtype_on(&device))?;
    }
    let mut generator = Generator::from_source(&gguf, &file, &device, context)?;
    if kv != llm::KvPrecision::Auto {
        generator.set_kv_precision(kv);
    }
    // Wait for the uploads so load time covers them.
    device.sync().map_err(|e| LlmError::Device(format!("{e:?}")))?;
    Ok((generator, adapter, started.elapsed().as_secs_f64()))
}
