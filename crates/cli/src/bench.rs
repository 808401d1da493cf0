//! `confidant bench`: load time, prefill and decode speed, device memory.

use clap::Args;
use llm::device::memory_usage;
use llm::{DeviceWorkPerToken, GenerateOptions, LlmError, Lookahead, SamplingParams};
use serde_json::json;

use crate::{Backend, load};

#[derive(Args)]
pub(crate) struct BenchArgs {
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
    /// Decode steps queued on the GPU per read back of their ids, greedy or sampled (default:
    /// adaptive).
    #[arg(long)]
    lookahead: Option<usize>,
    /// Sample at this temperature (with top-p 0.95, min-p 0.05, seed 0) instead of greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Top-k when sampling: 1 to 128 sample on the GPU; 0 (all) reads the logits back and
    /// samples on the CPU.
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Sample with the chat engine's reply settings (temperature 0.5, top-p 0.9, repetition
    /// penalty 1.1, DRY 0.8 with its breakers, seed 0) instead of `--temperature`.
    #[arg(long)]
    chat_sampling: bool,
    /// Choose every token on the CPU from logits read back, as before sampling moved to the GPU
    /// (to compare the two on the same settings).
    #[arg(long)]
    cpu_sampling: bool,
    /// Keep the KV cache in f32 even where the GPU has `shader-f16` (default: f16 there).
    #[arg(long)]
    kv_f32: bool,
    #[arg(long)]
    json: bool,
}

/// A long, ordinary English prompt for the prefill measurement.
const BENCH_TEXT: &str = "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the \
steps as his father had taught him. Below, the harbour filled with fishing boats returning from the \
grey water, their lanterns swaying like fireflies. He trimmed the wick, polished the great lens, and \
watched the beam sweep across the rocks where, fifty years before, a schooner had broken apart in a \
winter storm. ";

/// Device work per token (see `llm::device_work`): dispatches, host writes, blocking reads.
fn work_json(w: DeviceWorkPerToken) -> serde_json::Value {
    json!({
        "dispatches": w.dispatches,
        "uploads": w.uploads,
        "upload_bytes": w.upload_bytes,
        "readbacks": w.readbacks,
        "readback_bytes": w.readback_bytes,
        "blocking_readbacks": w.blocking_readbacks,
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) fn bench(args: BenchArgs) -> Result<(), LlmError> {
    let context = args.prompt_tokens + args.decode_tokens + 8;
    let (mut generator, adapter, load_seconds) = load(&args.model, args.backend, context, if args.kv_f32 { llm::KvPrecision::F32 } else { llm::KvPrecision::Auto })?;
    let device = generator.model().device().clone();
    generator.set_lookahead(args.lookahead.map_or(Lookahead::Adaptive, Lookahead::Fixed));
    generator.set_device_choice(!args.cpu_sampling);
    let mut peak = memory_usage(&device).map_or(0, |(_, reserved)| reserved);

    let mut prompt = Vec::new();
    while prompt.len() < args.prompt_tokens {
        prompt.extend(generator.encode_raw(BENCH_TEXT)?);
    }
    prompt.truncate(args.prompt_tokens);

    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    // One warm-up run compiles every shader; it is not counted.
    let sampling = if args.chat_sampling {
        engine::ReplyOptions::default().sampling
    } else if args.temperature > 0.0 {
        SamplingParams { temperature: args.temperature, top_k: args.top_k, ..SamplingParams::default() }
    } else {
        SamplingParams::greedy()
    };
    for run in 0..=args.repeats {
        let options = GenerateOptions {
            max_tokens: args.decode_tokens,
            sampling: sampling.clone(),
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
        "lookahead": args.lookahead.map_or_else(|| "adaptive".to_string(), |n| n.to_string()),
        "repeats": args.repeats,
        "cpu_sampling": args.cpu_sampling,
        "sampling": if sampling.temperature > 0.0 {
            json!({
                "temperature": sampling.temperature,
                "top_k": sampling.top_k,
                "top_p": sampling.top_p,
                "min_p": sampling.min_p,
                "repeat_penalty": sampling.repeat_penalty,
                "dry_multiplier": sampling.dry.multiplier,
            })
        } else {
            json!("greedy")
        },
        "prefill_tok_s": median(&mut prefill),
        "decode_tok_s": median(&mut decode),
        "peak_device_bytes": peak,
        "weights_device_bytes": generator.model().device_bytes(),
        "kv_cache_device_bytes": generator.kv_cache_bytes(),
        "kv_cache_type": format!("{:?}", generator.kv_cache_dtype()).to_lowercase(),
        "layers": generator.model().config.block_count,
        // Counted, not timed: the same in every run.
        "prefill_device_work_per_token": work_json(generator.stats().prefill_work_per_token()),
        "decode_device_work_per_token": work_json(generator.stats().decode_work_per_token()),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    }
    Ok(())
}
