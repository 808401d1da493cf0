//! Text generation, one token per call, so a caller (a terminal loop, a Web Worker's message
//! loop) can stream, stop, or abort between any two tokens.
//!
//! The generator keeps the KV cache between requests together with the tokens it holds; a new
//! prompt that starts with the same tokens only prefills what differs.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use burn::tensor::{Int, Tensor, TensorData};

use confidant_tokenizer::{ChatMessage, ChatTemplate, StreamDecoder, Tokenizer};
use web_time::Instant;

use crate::device_work::{self, DeviceWork, DeviceWorkPerToken};
use crate::error::{LlmError, Result};
use crate::kv_cache::{KvCache, KvPrecision};
use crate::model::Model;
use crate::ops::{self, DryChoice, TokenChoice};
use crate::sampler::{Cuts, Sampler, SamplingParams, SequenceBreakers, draw_bits, dry};

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Keep going past end-of-generation tokens (benchmarks time exactly `max_tokens`).
    pub ignore_eos: bool,
    /// Reuse the cached keys and values of a shared prompt prefix.
    pub cache_prompt: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { max_tokens: 256, sampling: SamplingParams::default(), ignore_eos: false, cache_prompt: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// One generated token and the text it completes (empty while a UTF-8 sequence is partial).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub token: u32,
    pub text: String,
}

/// How much of the prompt under way has been run: `done` of `total` tokens (those not reused
/// from the cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefillProgress {
    pub done: usize,
    pub total: usize,
}

/// Counts and timings of the latest generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    /// Prompt tokens actually run; the rest came from the cache.
    pub prefilled_tokens: usize,
    pub completion_tokens: usize,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    /// Tokens run after the prompt (each generated token but the last).
    pub decoded_tokens: usize,
    pub finish_reason: Option<FinishReason>,
    /// Device work of the prompt's tokens (see [`crate::device_work`]).
    pub prefill_work: DeviceWork,
    /// Device work of the tokens run after the prompt.
    pub decode_work: DeviceWork,
}

impl GenerationStats {
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.prefilled_tokens, self.prefill_seconds)
    }

    pub fn decode_tok_s(&self) -> f64 {
        rate(self.decoded_tokens, self.decode_seconds)
    }

    /// Device work per prompt token run.
    pub fn prefill_work_per_token(&self) -> DeviceWorkPerToken {
        self.prefill_work.per_token(self.prefilled_tokens)
    }

    /// Device work per token run after the prompt.
    pub fn decode_work_per_token(&self) -> DeviceWorkPerToken {
        self.decode_work.per_token(self.decoded_tokens)
    }
}

/// The sampling kernel's settings for the token at `position` of the history (prompt and reply),
/// the reply's token `step`: what [`Sampler::sample`] would do after DRY (see [`dry_choice`]).
fn token_choice(p: &SamplingParams, position: usize, step: usize) -> TokenChoice {
    let window = if p.has_penalties() { p.repeat_last_n.min(position) } else { 0 };
    TokenChoice {
        cuts: Cuts::of(p),
        repeat_penalty: p.repeat_penalty,
        frequency_penalty: p.frequency_penalty,
        presence_penalty: p.presence_penalty,
        window,
        position,
        draw: draw_bits(p.seed, step as u32),
    }
}

/// DRY's settings for the token at `position` of the history.
fn dry_choice(p: &SamplingParams, position: usize) -> DryChoice {
    let d = &p.dry;
    DryChoice { multiplier: d.multiplier, base: d.base, allowed_length: d.allowed_length, window: dry::window(d, position), position }
}

/// DRY on the device for a run: the breaker flag of every token and the penalty of every repeat
/// length (see [`ops::dry`]), uploaded with the first burst.
struct DeviceDry {
    breakers: Tensor<1, Int>,
    penalties: Tensor<1>,
}

/// The ids `[n]` of a burst as read back (see [`InFlight`]).
async fn read_ids(ids: Tensor<1, Int>) -> Result<TensorData> {
    ids.into_data_async().await.map_err(|e| LlmError::Device(format!("{e:?}")))
}

/// Token ids read back, each checked against the vocabulary, and the bytes read.
fn checked_ids(data: &TensorData, vocab: usize) -> Result<(Vec<u32>, usize)> {
    let tokens = data
        .iter::<i64>()
        .map(|id| match u32::try_from(id) {
            Ok(id) if (id as usize) < vocab => Ok(id),
            _ => Err(LlmError::Device(format!("the device chose token {id}, outside the vocabulary"))),
        })
        .collect::<Result<_>>()?;
    Ok((tokens, data.bytes().len()))
}

/// Poll `future` once: how a read is started (its copy recorded and submitted) without waiting.
async fn poll_once<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// A burst of decode steps queued on the device, its ids' read already started: in a browser
/// the first poll records the copy and submits it with the burst, so the next burst queued
/// after it runs while the map completes. Natively burn reads lazily (the first poll returns at
/// once and the copy is made when the bytes are first touched, after the next burst is queued),
/// so there the host waits for that burst too, though the device is still never left idle.
struct InFlight {
    read: Pin<Box<dyn Future<Output = Result<TensorData>>>>,
    /// The read's result when the first poll had it (native and CPU reads).
    done: Option<Result<TensorData>>,
    count: usize,
}

fn rate(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

struct Run {
    sampler: Sampler,
    prompt: Vec<u32>,
    produced: Vec<u32>,
    options: GenerateOptions,
    stream: StreamDecoder,
    stats: GenerationStats,
    /// How decode steps choose their tokens on the device, if they do (see
    /// [`Generator::decode_on_device`]).
    on_device: Option<DeviceChoice>,
    /// The prompt and the tokens chosen so far, on the device, when the device samples: the
    /// penalties read it and every choice is written to it.
    device_history: Option<Tensor<1, Int>>,
    /// With DRY on and the device sampling: its breakers as one flag per token, to upload with
    /// the first burst.
    dry_flags: Option<Vec<i32>>,
    device_dry: Option<DeviceDry>,
    /// Tokens chosen on the device and read back, not yet handed out. The cache already holds
    /// the ones before the last.
    ready: VecDeque<u32>,
    /// The latest chosen id, still on the device: the next burst's first input.
    device_last: Option<Tensor<1, Int>>,
    /// The burst queued after the one read last, its ids not read yet.
    in_flight: Option<InFlight>,
    /// Decode steps queued per read back in the next burst.
    lookahead: usize,
}

/// How the device chooses a decode step's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceChoice {
    /// Plain greedy: burn's argmax over the logits (the reference fixtures' path).
    Argmax,
    /// The sampling kernel ([`ops::sample`]): temperature, top-k/p, min-p, penalties.
    Sample,
}

/// How many decode steps are queued on the device before their tokens are read back, when the
/// device chooses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookahead {
    /// Chosen by measurement: as many steps as take about [`BURST_SECONDS`], at most
    /// [`MAX_LOOKAHEAD`], so a fast GPU waits for one read per several tokens while a slow
    /// adapter still streams every token as it comes.
    Adaptive,
    /// This many steps (at least 1) per read back.
    Fixed(usize),
}

/// Wall time one burst of queued decode steps aims at: short enough that text still streams
/// smoothly, long enough to hide a read's round trip (about a millisecond in browsers).
pub const BURST_SECONDS: f64 = 0.05;

/// Most decode steps queued per read back.
pub const MAX_LOOKAHEAD: usize = 16;

/// A model with its tokenizer, chat template and KV cache.
pub struct Generator {
    model: Model,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    cache: KvCache,
    /// The tokens whose keys and values the cache holds, in order.
    cached: Vec<u32>,
    run: Option<Run>,
    last_stats: GenerationStats,
    /// Logits that chose the latest token, before penalties: for checks against references.
    last_logits: Vec<f32>,
    /// DRY's latest sequence breakers and their token forms: matching them scans the
    /// vocabulary, so it is done once per list rather than once per reply.
    breakers: Option<(Vec<String>, Arc<SequenceBreakers>)>,
    lookahead: Lookahead,
    /// Whether decode steps may choose their tokens on the device (see [`Self::set_device_choice`]).
    device_choice: bool,
}

impl Generator {
    /// `max_context` caps the KV cache (and so device memory) below the model's own context.
    pub fn new(model: Model, tokenizer: Tokenizer, template: ChatTemplate, max_context: usize) -> Self {
        let cache = model.new_cache(max_context);
        Self {
            model,
            tokenizer,
            template,
            cache,
            cached: Vec::new(),
            run: None,
            last_stats: GenerationStats::default(),
            last_logits: Vec::new(),
            breakers: None,
            lookahead: Lookahead::Adaptive,
            device_choice: true,
        }
    }

    /// With `false`, every token is chosen on the CPU from logits read back, as before the
    /// device sampled: benchmarks compare the two paths on the same settings. Default `true`.
    pub fn set_device_choice(&mut self, on: bool) {
        self.device_choice = on;
    }

    /// How many greedy decode steps to queue on the device per read back (default adaptive).
    pub fn set_lookahead(&mut self, lookahead: Lookahead) {
        self.lookahead = lookahead;
    }

    /// Load everything from a GGUF held in memory.
    pub fn from_gguf(file: &[u8], device: &burn::tensor::Device, max_context: usize) -> Result<Self> {
        let gguf = gguf::Gguf::parse(file)?;
        let model = Model::load(&gguf, file, device)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let template = ChatTemplate::from_gguf(&gguf)?;
        Ok(Self::new(model, tokenizer, template, max_context))
    }

    /// Load everything from a GGUF whose header is `gguf`, reading each tensor from `source` as
    /// it is uploaded (see [`crate::weights::FileSource`]): the file is never in memory whole.
    pub fn from_source(gguf: &gguf::Gguf, source: &dyn crate::weights::TensorSource, device: &burn::tensor::Device, max_context: usize) -> Result<Self> {
        let model = Model::load_from(gguf, source, device)?;
        let tokenizer = Tokenizer::from_gguf(gguf)?;
        let template = ChatTemplate::from_gguf(gguf)?;
        Ok(Self::new(model, tokenizer, template, max_context))
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Render chats through `template` from now on (a person's override); returns the one it replaces.
    pub fn replace_template(&mut self, template: ChatTemplate) -> ChatTemplate {
        std::mem::replace(&mut self.template, template)
    }

    pub fn context_length(&self) -> usize {
        self.cache.max_len()
    }

    pub fn kv_cache_bytes(&self) -> usize {
        self.cache.device_bytes()
    }

    /// The type the KV cache keeps keys and values in: f16 on a GPU with `shader-f16`, unless
    /// [`Self::set_kv_precision`] asked for f32.
    pub fn kv_cache_dtype(&self) -> burn::tensor::DType {
        self.cache.dtype()
    }

    /// Keep the KV cache in this precision from now on (a load option: the cache starts empty,
    /// so a generation under way ends).
    pub fn set_kv_precision(&mut self, precision: KvPrecision) {
        if let Some(run) = self.run.take() {
            self.last_stats = run.stats;
        }
        self.cache = self.model.new_cache_in(self.cache.max_len(), precision);
        self.cached.clear();
    }

    /// Tokens of a raw prompt, as llama.cpp tokenizes one: special tokens written in the text
    /// are recognised, and BOS is added if the model asks for it.
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, true, true)?)
    }

    /// Tokens of a conversation rendered through the model's chat template, ready for the
    /// assistant's reply. Control tokens come from the template's own text only: special-token
    /// text inside a message (`<|im_end|>`) is tokenized as plain text
    /// (see [`Tokenizer::encode_chat`]).
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode_chat(&self.template, messages, true)?)
    }

    /// Start generating after `prompt`. Nothing runs on the device until [`Self::step`].
    pub fn begin(&mut self, prompt: Vec<u32>, options: GenerateOptions) -> Result<()> {
        if prompt.is_empty() {
            return Err(LlmError::BadRequest("the prompt is empty".into()));
        }
        if prompt.len() >= self.cache.max_len() {
            return Err(LlmError::BadRequest(format!(
                "the prompt has {} tokens; the context holds {}",
                prompt.len(),
                self.cache.max_len()
            )));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= self.model.config.vocab_size) {
            return Err(LlmError::BadRequest(format!("token id {bad} is outside the vocabulary")));
        }
        let breakers = self.sequence_breakers(&options.sampling)?;
        let sampler = Sampler::with_breakers(options.sampling.clone(), breakers.clone())?;
        // Reuse the common prefix, but always run at least the last prompt token to get logits.
        let reuse = if options.cache_prompt {
            self.cached.iter().zip(&prompt).take_while(|(a, b)| a == b).count().min(prompt.len() - 1)
        } else {
            0
        };
        self.cache.truncate(reuse);
        self.cached.truncate(reuse);
        let stats = GenerationStats { prompt_tokens: prompt.len(), prefilled_tokens: prompt.len() - reuse, ..Default::default() };
        // DRY's breakers for the device, when each is a single token.
        let dry_flags = if options.sampling.dry.is_enabled() { breakers.single_token_flags(self.model.config.vocab_size) } else { None };
        let on_device = match &options.sampling {
            _ if !self.device_choice || !self.model.embeds_device_ids() => None,
            p if p.is_plain_greedy() => Some(DeviceChoice::Argmax),
            p if p.fits_device() && (!p.dry.is_enabled() || dry_flags.is_some()) => Some(DeviceChoice::Sample),
            // Top-k beyond what the kernel sorts, or a DRY breaker spelled by several tokens:
            // the CPU samples from logits read back.
            _ => None,
        };
        let lookahead = match self.lookahead {
            Lookahead::Adaptive => 1,
            Lookahead::Fixed(n) => n.max(1),
        };
        self.run = Some(Run {
            sampler,
            prompt,
            produced: Vec::new(),
            options,
            stream: StreamDecoder::new(true),
            stats,
            on_device,
            device_history: None,
            dry_flags,
            device_dry: None,
            ready: VecDeque::new(),
            device_last: None,
            in_flight: None,
            lookahead,
        });
        Ok(())
    }

    /// DRY's sequence breakers for `sampling` in token form (none while DRY is off).
    pub fn sequence_breakers(&mut self, sampling: &SamplingParams) -> Result<Arc<SequenceBreakers>> {
        let wanted = &sampling.dry.sequence_breakers;
        if !sampling.dry.is_enabled() || wanted.is_empty() {
            return Ok(Arc::default());
        }
        if let Some((strings, tokens)) = &self.breakers
            && strings == wanted
        {
            return Ok(tokens.clone());
        }
        sampling.dry.validate()?;
        let tokens = Arc::new(SequenceBreakers::from_strings(&self.tokenizer, wanted)?);
        self.breakers = Some((wanted.clone(), tokens.clone()));
        Ok(tokens)
    }

    /// Whether a generation is under way.
    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// Where the prompt of the generation under way stands; `None` once its first token is out.
    pub fn prefill_progress(&self) -> Option<PrefillProgress> {
        let run = self.run.as_ref().filter(|r| r.produced.is_empty())?;
        let reused = run.stats.prompt_tokens - run.stats.prefilled_tokens;
        Some(PrefillProgress { done: self.cached.len().saturating_sub(reused), total: run.stats.prefilled_tokens })
    }

    /// Run the next `chunk` prompt tokens, if more than `chunk` are left (a caller can then
    /// report progress, or abort, between chunks); `None` when what is left goes with the next
    /// [`Self::step`], which runs it and samples the first token. Optional: `step` alone runs the
    /// whole prompt at once.
    pub async fn prefill(&mut self, chunk: usize) -> Result<Option<PrefillProgress>> {
        let chunk = chunk.max(1);
        let Some(run) = self.run.as_ref().filter(|r| r.produced.is_empty()) else { return Ok(None) };
        let at = self.cached.len();
        if run.prompt.len() - at <= chunk {
            return Ok(None);
        }
        let input = run.prompt[at..at + chunk].to_vec();
        let started = Instant::now();
        let counted_before = device_work::counted();
        if let Err(e) = self.run_model(&input).await {
            if let Some(run) = self.run.take() {
                self.last_stats = run.stats;
            }
            return Err(e);
        }
        if let Some(run) = &mut self.run {
            run.stats.prefill_seconds += started.elapsed().as_secs_f64();
            run.stats.prefill_work.add(device_work::counted().since(counted_before));
        }
        Ok(self.prefill_progress())
    }

    /// Generate the next token. `None` once the generation has finished; its stats are then in
    /// [`Self::stats`].
    pub async fn step(&mut self) -> Result<Option<Step>> {
        // Taken out while the device works, so an error leaves no half-finished run behind.
        let Some(mut run) = self.run.take() else { return Ok(None) };
        let prefill = run.produced.is_empty();
        let token = if !prefill && let Some(choice) = run.on_device {
            if run.ready.is_empty()
                && let Err(e) = self.decode_on_device(&mut run, choice).await
            {
                self.last_stats = run.stats;
                return Err(e);
            }
            let Some(token) = run.ready.pop_front() else {
                self.last_stats = run.stats;
                return Err(LlmError::Device("the device returned no token".into()));
            };
            token
        } else {
            match self.run_and_sample(&mut run, prefill).await {
                Ok(token) => token,
                Err(e) => {
                    self.last_stats = run.stats;
                    return Err(e);
                }
            }
        };
        if !run.options.ignore_eos && self.tokenizer.is_end_of_generation(token) {
            self.finish(run, FinishReason::Stop);
            return Ok(None);
        }
        run.produced.push(token);
        run.stats.completion_tokens += 1;
        let mut text = run.stream.push(&self.tokenizer, token)?;
        // The next step would run `token`: stop if it would not fit. Tokens read ahead are in
        // the cache already but not yet handed out.
        let context_full = self.cached.len() - run.ready.len() + 1 >= self.cache.max_len();
        if run.produced.len() >= run.options.max_tokens || context_full {
            // Tokens chosen past this one are dropped; the cache keeps their keys and values,
            // which are right for those tokens (`cached` lists them), so a later prompt that
            // continues with them reuses them and any other does not.
            text += &run.stream.finish();
            self.finish(run, FinishReason::Length);
        } else {
            self.run = Some(run);
        }
        Ok(Some(Step { token, text }))
    }

    /// Run the prompt (or the latest token), read the logits back and sample on the CPU.
    async fn run_and_sample(&mut self, run: &mut Run, prefill: bool) -> Result<u32> {
        let input: Vec<u32> = match run.produced.last() {
            None => run.prompt[self.cached.len()..].to_vec(),
            Some(&last) => vec![last],
        };

        let started = Instant::now();
        let counted_before = device_work::counted();
        let mut logits = self.run_model(&input).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let work = device_work::counted().since(counted_before);
        if prefill {
            run.stats.prefill_seconds += elapsed;
            run.stats.prefill_work.add(work);
        } else {
            run.stats.decode_seconds += elapsed;
            run.stats.decoded_tokens += 1;
            run.stats.decode_work.add(work);
        }

        self.last_logits.clone_from(&logits);
        let history: Vec<u32> = run.prompt.iter().chain(&run.produced).copied().collect();
        Ok(run.sampler.sample(&mut logits, &history))
    }

    /// Decoding without the logits leaving the device, in bursts of `run.lookahead` steps, each
    /// step's chosen id feeding the next one's embedding look-up on the device, the ids of a
    /// burst read back at once. The next burst is queued before the host waits for the current
    /// one's ids, so the device is never idle while the host reads, streams text and checks
    /// stops (only a run's last burst is read with nothing behind it); tokens chosen past a stop
    /// are dropped with their cache positions when the run ends.
    async fn decode_on_device(&mut self, run: &mut Run, choice: DeviceChoice) -> Result<()> {
        let Some(&last) = run.produced.last() else { return Err(LlmError::BadRequest("decoding before the prompt".into())) };
        let started = Instant::now();
        let counted_before = device_work::counted();
        let pending = match run.in_flight.take() {
            Some(pending) => pending,
            None => self.queue_burst(run, choice, 0).await?.ok_or_else(|| LlmError::Device("no room left to decode".into()))?,
        };
        run.in_flight = self.queue_burst(run, choice, pending.count).await?;
        let blocking = run.in_flight.is_none();
        let read = match pending.done {
            Some(done) => done,
            None => pending.read.await,
        };
        let count = pending.count;
        let read = read.and_then(|data| checked_ids(&data, self.model.config.vocab_size)).and_then(|(tokens, bytes)| {
            if tokens.len() == count { Ok((tokens, bytes)) } else { Err(LlmError::Device("the device returned the wrong number of tokens".into())) }
        });
        let tokens = match read {
            Ok((tokens, bytes)) => {
                device_work::count_readback(bytes, blocking);
                tokens
            }
            Err(e) => {
                self.forget_cache();
                return Err(e);
            }
        };
        // The burst's first input was the latest token handed out (the previous burst's last).
        self.cached.push(last);
        self.cached.extend_from_slice(&tokens[..count - 1]);
        run.ready.extend(tokens);
        self.last_logits.clear();

        let elapsed = started.elapsed().as_secs_f64();
        run.stats.decode_seconds += elapsed;
        run.stats.decoded_tokens += count;
        run.stats.decode_work.add(device_work::counted().since(counted_before));
        if self.lookahead == Lookahead::Adaptive {
            let per_step = elapsed / count as f64;
            run.lookahead = if per_step > 0.0 { ((BURST_SECONDS / per_step) as usize).clamp(1, MAX_LOOKAHEAD) } else { MAX_LOOKAHEAD };
        }
        Ok(())
    }

    /// Queue the next burst: `run.lookahead` steps (fewer near `max_tokens` or the end of the
    /// context; none past them), after `ahead` tokens already chosen on the device but not read.
    /// The first input is the previous burst's last id, still on the device, or the token the
    /// CPU sampled after the prompt.
    async fn queue_burst(&mut self, run: &mut Run, choice: DeviceChoice, ahead: usize) -> Result<Option<InFlight>> {
        let chosen_so_far = run.produced.len() + run.ready.len() + ahead;
        let wanted = run.options.max_tokens.saturating_sub(chosen_so_far);
        // Input `i` goes to position `cache.len + i`; the last token chosen must leave room for
        // one more position, as `step` checks.
        let room = self.cache.max_len().saturating_sub(self.cache.len + 1);
        let count = run.lookahead.min(wanted).min(room);
        if count == 0 {
            return Ok(None);
        }
        let device = self.model.device().clone();
        let mut ids = match run.device_last.take() {
            Some(ids) => ids,
            None => {
                let Some(&last) = run.produced.last() else { return Err(LlmError::BadRequest("decoding before the prompt".into())) };
                device_work::count_upload(4);
                Tensor::<1, Int>::from_data(TensorData::new(vec![last as i32], [1]), &device)
            }
        };
        // The sampler's history: the prompt and the reply so far, room for the whole context.
        let told = run.prompt.len() + chosen_so_far;
        let mut history = match (choice, run.device_history.take()) {
            (DeviceChoice::Argmax, _) => None,
            (DeviceChoice::Sample, Some(history)) => Some(history),
            (DeviceChoice::Sample, None) => {
                let mut all: Vec<i32> = run.prompt.iter().chain(&run.produced).map(|&t| t as i32).collect();
                all.resize(all.len().max(self.cache.max_len() + 1), 0);
                device_work::count_upload(all.len() * 4);
                let len = all.len();
                Some(Tensor::<1, Int>::from_data(TensorData::new(all, [len]), &device))
            }
        };
        if let (Some(flags), None, Some(held)) = (run.dry_flags.take(), &run.device_dry, &history) {
            let table = dry::penalty_table(&run.options.sampling.dry, held.dims()[0]);
            device_work::count_upload((flags.len() + table.len()) * 4);
            let (vocab, lengths) = (flags.len(), table.len());
            let breakers = Tensor::<1, Int>::from_data(TensorData::new(flags, [vocab]), &device);
            let penalties = Tensor::<1>::from_data(TensorData::new(table, [lengths]), &device);
            run.device_dry = Some(DeviceDry { breakers, penalties });
        }
        let mut chosen = Vec::with_capacity(count);
        for i in 0..count {
            let logits = match self.model.forward_ids(ids, &mut self.cache) {
                Ok(logits) => logits,
                Err(e) => {
                    self.forget_cache();
                    return Err(e);
                }
            };
            ids = match history.take() {
                None => {
                    // burn's own kernels launch outside the seam's counter: the argmax counted
                    // here as one reduction.
                    device_work::count_dispatch();
                    logits.argmax(1).reshape([1])
                }
                Some(held) => {
                    let (logits, held) = match &run.device_dry {
                        Some(d) => ops::dry(logits, held, &d.breakers, &d.penalties, dry_choice(&run.options.sampling, told + i)),
                        None => (logits, held),
                    };
                    let (next, held) = ops::sample(logits, held, token_choice(&run.options.sampling, told + i, chosen_so_far + i));
                    history = Some(held);
                    next
                }
            };
            chosen.push(ids.clone());
        }
        run.device_history = history;
        run.sampler.skip(count as u32);
        let all = if count == 1 {
            ids.clone()
        } else {
            // The gathering of the ids: one copy per id (burn's, uncounted by the seam).
            (0..count).for_each(|_| device_work::count_dispatch());
            Tensor::cat(chosen, 0)
        };
        run.device_last = Some(ids);
        // Started now, so its copy is submitted ahead of whatever is queued next.
        let mut read: Pin<Box<dyn Future<Output = Result<TensorData>>>> = Box::pin(read_ids(all));
        let done = match poll_once(read.as_mut()).await {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        };
        Ok(Some(InFlight { read, done, count }))
    }

    /// After a failed step the cache may hold part of it: the next request starts from scratch.
    fn forget_cache(&mut self) {
        self.cache.truncate(0);
        self.cached.clear();
    }

    /// Run `input` after the cached tokens and read back the last position's logits.
    async fn run_model(&mut self, input: &[u32]) -> Result<Vec<f32>> {
        let logits = self.model.forward(input, &mut self.cache, false)?;
        let read = logits.into_data_async().await.map_err(|e| LlmError::Device(format!("{e:?}")));
        match read.and_then(|d| d.try_into_vec::<f32>().map_err(|e| LlmError::Device(format!("{e:?}")))) {
            Ok(logits) => {
                device_work::count_readback(logits.len() * 4, true);
                self.cached.extend_from_slice(input);
                Ok(logits)
            }
            Err(e) => {
                self.forget_cache();
                Err(e)
            }
        }
    }

    /// Tokens of a burst still in flight are never handed out: their cache positions go.
    fn drop_unread(&mut self, run: &Run) {
        if run.in_flight.is_some() {
            self.cache.truncate(self.cached.len());
        }
    }

    fn finish(&mut self, mut run: Run, reason: FinishReason) {
        self.drop_unread(&run);
        run.stats.finish_reason = Some(reason);
        self.last_stats = run.stats;
    }

    /// Stop the current generation; the cache stays valid for the next request.
    pub fn abort(&mut self) {
        if let Some(run) = self.run.take() {
            self.drop_unread(&run);
            self.last_stats = run.stats;
        }
    }

    /// Stats of the generation under way, or of the last one.
    pub fn stats(&self) -> &GenerationStats {
        self.run.as_ref().map_or(&self.last_stats, |r| &r.stats)
    }

    /// The raw logits from which the latest token was chosen (empty before the first step, and
    /// when the device chose it: greedy decoding after the first token).
    pub fn last_logits(&self) -> &[f32] {
        &self.last_logits
    }

    /// The tokens generated so far by the run under way.
    pub fn produced(&self) -> &[u32] {
        self.run.as_ref().map_or(&[], |r| &r.produced)
    }
}
