//! `confidant`: run a GGUF model from the terminal, on the native GPU (Vulkan through wgpu) or
//! on the CPU.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use llm::device::{AdapterInfo, init_cpu, init_native, memory_usage};
use llm::{ChatMessage, GenerateOptions, Generator, LlmError, SamplingParams};
use serde_json::json;

#[derive(Parser)]
#[command(name = "confidant", version, about = "Run a llama-family GGUF model on the GPU or the CPU")]
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
}

/// Where the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// The GPU when it is a real one, else the CPU (a software Vulkan such as lavapipe is
    /// slower than the CPU path).
    Auto,
    /// The GPU through wgpu (Vulkan, Metal, DX12), even a software one.
    Gpu,
    /// The CPU: SIMD integer kernels over the quantized weights, on every core.
    Cpu,
}

#[derive(Args)]
struct GenerateArgs {
    /// GGUF model file.
    #[arg(long)]
    model: std::path::PathBuf,
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// The user's message (rendered through the model's chat template), or with --raw the
    /// exact prompt text; special tokens such as <|im_start|> written in it are recognised.
    #[arg(long)]
    prompt: String,
    /// Use the prompt verbatim instead of as a chat message.
    #[arg(long)]
    raw: bool,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest context (prompt + reply) in tokens; caps KV-cache memory.
    #[arg(long, default_value_t = 4096)]
    context: usize,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long)]
    model: std::path::PathBuf,
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 500)]
    prompt_tokens: usize,
    /// Tokens generated for the decode measurement.
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate(args),
        Command::Bench(args) => bench(args),
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
fn device(backend: Backend) -> Result<(llm::Device, AdapterInfo), LlmError> {
    match backend {
        Backend::Cpu => Ok(init_cpu()),
        Backend::Gpu => init_native(),
        Backend::Auto => match init_native() {
            Ok((device, adapter)) if adapter.device_type != "cpu" => Ok((device, adapter)),
            _ => Ok(init_cpu()),
        },
    }
}

fn load(path: &std::path::Path, backend: Backend, context: usize) -> Result<(Generator, AdapterInfo, f64), LlmError> {
    let bytes = std::fs::read(path).map_err(|e| LlmError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
    let (device, adapter) = device(backend)?;
    let started = std::time::Instant::now();
    let generator = Generator::from_gguf(&bytes, &device, context)?;
    // Wait for the uploads so load time covers them.
    device.sync().map_err(|e| LlmError::Device(format!("{e:?}")))?;
    Ok((generator, adapter, started.elapsed().as_secs_f64()))
}

fn generate(args: GenerateArgs) -> Result<(), LlmError> {
    let (mut generator, adapter, _) = load(&args.model, args.backend, args.context)?;
    let prompt = if args.raw {
        generator.encode_raw(&args.prompt)?
    } else {
        generator.encode_chat(&[ChatMessage::new("user", args.prompt.as_str())])?
    };
    let sampling = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        seed: args.seed,
        ..SamplingParams::default()
    };
    generator.begin(prompt.clone(), GenerateOptions { max_tokens: args.max_tokens, sampling, ..Default::default() })?;
    if !args.json {
        eprintln!("adapter: {}", adapter.summary());
    }
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut out = std::io::stdout().lock();
    while let Some(step) = pollster::block_on(generator.step())? {
        tokens.push(step.token);
        text.push_str(&step.text);
        if !args.json {
            let _ = out.write_all(step.text.as_bytes());
            let _ = out.flush();
        }
    }
    let stats = generator.stats();
    if args.json {
        let report = json!({
            "prompt_tokens": prompt,
            "tokens": tokens,
            "text": text,
            "prefill_tok_s": stats.prefill_tok_s(),
            "decode_tok_s": stats.decode_tok_s(),
            "finish_reason": stats.finish_reason.map(|r| r.as_str()),
            "backend": adapter.backend,
            "adapter": adapter.name,
        });
        println!("{report}");
    } else {
        println!();
        eprintln!(
            "{} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s",
            stats.prompt_tokens,
            stats.prefill_tok_s(),
            stats.completion_tokens,
            stats.decode_tok_s()
        );
    }
    Ok(())
}

/// A long, ordinary English prompt for the prefill measurement.
const BENCH_TEXT: &str = "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the \
steps as his father had taught him. Below, the harbour filled with fishing boats returning from the \
grey water, their lanterns swaying like fireflies. He trimmed the wick, polished the great lens, and \
watched the beam sweep across the rocks where, fifty years before, a schooner had broken apart in a \
winter storm. ";

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn bench(args: BenchArgs) -> Result<(), LlmError> {
    let context = args.prompt_tokens + args.decode_tokens + 8;
    let (mut generator, adapter, load_seconds) = load(&args.model, args.backend, context)?;
    let device = generator.model().device().clone();
    let mut peak = memory_usage(&device).map_or(0, |(_, reserved)| reserved);

    let mut prompt = Vec::new();
    while prompt.len() < args.prompt_tokens {
        prompt.extend(generator.encode_raw(BENCH_TEXT)?);
    }
    prompt.truncate(args.prompt_tokens);

    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    // One warm-up run compiles every shader; it is not counted.
    for run in 0..=args.repeats {
        let options = GenerateOptions {
            max_tokens: args.decode_tokens,
            sampling: SamplingParams::greedy(),
            ignore_eos: true,
            cache_prompt: false,
        };
        generator.begin(prompt.clone(), options)?;
        while pollster::block_on(generator.step())?.is_some() {}
        peak = peak.max(memory_usage(&device).map_or(0, |(_, reserved)| reserved));
        if run > 0 {
            prefill.push(generator.stats().prefill_tok_s());
            decode.push(generator.stats().decode_tok_s());
        }
        if !args.json {
            eprintln!("run {run}{}: prefill {:.1} tok/s, decode {:.1} tok/s", if run == 0 { " (warm-up)" } else { "" }, generator.stats().prefill_tok_s(), generator.stats().decode_tok_s());
        }
    }
    let report = json!({
        "model": args.model.display().to_string(),
        "adapter": adapter.name,
        "backend": adapter.backend,
        "device_type": adapter.device_type,
        "driver": adapter.driver,
        "load_seconds": load_seconds,
        "prompt_tokens": args.prompt_tokens,
        "decode_tokens": args.decode_tokens,
        "repeats": args.repeats,
        "prefill_tok_s": median(&mut prefill),
        "decode_tok_s": median(&mut decode),
        "peak_device_bytes": peak,
        "weights_device_bytes": generator.model().device_bytes(),
        "kv_cache_device_bytes": generator.kv_cache_bytes(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    }
    Ok(())
}
