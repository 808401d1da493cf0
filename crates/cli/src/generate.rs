//! `confidant generate`: text after a prompt, streamed or as one JSON object.

use std::io::Write;

use clap::Args;
use llm::{ChatMessage, DryParams, GenerateOptions, LlmError, SamplingParams};
use serde_json::json;

use crate::{Backend, load};

#[derive(Args)]
pub(crate) struct GenerateArgs {
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
    /// How many of the latest tokens the repetition, frequency and presence penalties see.
    #[arg(long, default_value_t = 64)]
    repeat_last_n: usize,
    /// Subtracted once from the logit of each token seen in the latest --repeat-last-n.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    presence_penalty: f32,
    /// Subtracted from the logit of each token seen in the latest --repeat-last-n, per time seen.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    frequency_penalty: f32,
    /// DRY anti-repetition: the penalty's scale; 0 is off (0.8 is a usual value).
    #[arg(long, default_value_t = 0.0)]
    dry_multiplier: f32,
    /// DRY: growth of the penalty per token of repeat.
    #[arg(long, default_value_t = 1.75)]
    dry_base: f32,
    /// DRY: repeats this long or shorter are free.
    #[arg(long, default_value_t = 2)]
    dry_allowed_length: usize,
    /// DRY: how many of the latest tokens are searched; -1 is the whole context.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    dry_penalty_last_n: i32,
    /// DRY: text a repeat may not reach back past (repeatable; in a shell, $'\n' is a
    /// newline). Default: newline, ':', '"' and '*'.
    #[arg(long = "dry-sequence-breaker")]
    dry_sequence_breakers: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest context (prompt + reply) in tokens; caps KV-cache memory.
    #[arg(long, default_value_t = 4096)]
    context: usize,
    /// Keep the KV cache in f32 even where the GPU has `shader-f16` (default: f16 there), as
    /// an adapter without it does (the browser tests compare with SwiftShader's tokens).
    #[arg(long)]
    kv_f32: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn generate(args: GenerateArgs) -> Result<(), LlmError> {
    let (mut generator, adapter, _) = load(&args.model, args.backend, args.context, if args.kv_f32 { llm::KvPrecision::F32 } else { llm::KvPrecision::Auto })?;
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
        repeat_last_n: args.repeat_last_n,
        presence_penalty: args.presence_penalty,
        frequency_penalty: args.frequency_penalty,
        dry: DryParams {
            multiplier: args.dry_multiplier,
            base: args.dry_base,
            allowed_length: args.dry_allowed_length,
            penalty_last_n: args.dry_penalty_last_n,
            sequence_breakers: if args.dry_sequence_breakers.is_empty() {
                DryParams::default().sequence_breakers
            } else {
                args.dry_sequence_breakers
            },
        },
        seed: args.seed,
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
            "kv_cache_type": format!("{:?}", generator.kv_cache_dtype()).to_lowercase(),
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
