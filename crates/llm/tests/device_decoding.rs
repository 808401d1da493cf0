//! Greedy decoding with the choice made on the device (argmax feeding the next step's embedding
//! look-up, ids read back several steps at a time) against the logits read back step by step,
//! on both backends, on a small synthetic llama model (a few tokens: lavapipe is slow); and
//! the device work the GPU path reports per decoded token.

mod common;
mod synth;

use llm::{GenerateOptions, Generator, Lookahead, SamplingParams};

const MODEL: &str = "gqa_q4_0";

fn generator(device: &llm::Device) -> Generator {
    Generator::from_gguf(&synth::build(MODEL).unwrap(), device, 64).unwrap()
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions { max_tokens, sampling: SamplingParams::greedy(), ignore_eos: true, cache_prompt: false }
}

fn generate(g: &mut Generator, prompt: &[u32], options: GenerateOptions, stop_after: Option<usize>) -> Vec<u32> {
    g.begin(prompt.to_vec(), options).unwrap();
    let mut tokens = Vec::new();
    while let Some(step) = pollster::block_on(g.step()).unwrap() {
        tokens.push(step.token);
        if Some(tokens.len()) == stop_after {
            g.abort();
            break;
        }
    }
    tokens
}

/// Greedy tokens from the logits read back after every step (the argmax the CPU sampler takes).
fn stepwise(g: &Generator, prompt: &[u32], count: usize) -> Vec<u32> {
    let mut cache = g.model().new_cache(64);
    let mut input = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..count {
        let logits = g.model().forward(&input, &mut cache, false).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let token = llm::sampler::argmax(&logits);
        out.push(token);
        input = vec![token];
    }
    out
}

#[test]
fn device_greedy_equals_stepwise_greedy_on_every_backend() {
    for (name, device) in common::devices() {
        let mut g = generator(&device);
        let prompt = g.encode_raw("the quick brown fox").unwrap();
        let want = stepwise(&g, &prompt, 7);
        for lookahead in [Lookahead::Fixed(1), Lookahead::Fixed(3), Lookahead::Adaptive] {
            g.set_lookahead(lookahead);
            assert_eq!(generate(&mut g, &prompt, greedy(7), None), want, "{name}, {lookahead:?}");
            assert_eq!(g.stats().completion_tokens, 7);
            assert_eq!(g.stats().decoded_tokens, 6, "{name}, {lookahead:?}");
        }
    }
}

#[test]
fn tokens_read_ahead_past_an_abort_leave_the_cache_right() {
    let device = common::device();
    let mut g = generator(&device);
    g.set_lookahead(Lookahead::Fixed(4));
    let prompt = g.encode_raw("the quick brown fox").unwrap();
    // Two tokens handed out, three more already run on the device when the run is aborted.
    let first = generate(&mut g, &prompt, greedy(10), Some(2));
    assert_eq!(first.len(), 2);
    let mut next = prompt.clone();
    next.extend(&first);
    next.extend(g.encode_raw(" jumps").unwrap());
    let reused = generate(&mut g, &next, GenerateOptions { cache_prompt: true, ..greedy(3) }, None);
    assert!(g.stats().prefilled_tokens < next.len(), "the shared prefix was reused: {:?}", g.stats());
    let fresh = generate(&mut g, &next, greedy(3), None);
    assert_eq!(reused, fresh);
}

#[test]
fn gpu_decode_needs_few_dispatches_and_no_logits_readback() {
    let device = common::device();
    let mut g = generator(&device);
    let layers = g.model().config.block_count;
    let vocab = g.model().config.vocab_size;
    g.set_lookahead(Lookahead::Fixed(3));
    let prompt = g.encode_raw("the quick brown fox").unwrap();
    generate(&mut g, &prompt, greedy(7), None);
    let stats = g.stats().clone();
    let decode = stats.decode_work;
    eprintln!("{layers} layers; decode work per token {:?}; prefill {:?}", stats.decode_work_per_token(), stats.prefill_work_per_token());
    // Six tokens in two reads of three ids each, never the logits; the first read is awaited
    // with the second burst already queued behind it, so only the last one blocks.
    assert_eq!(decode.readbacks, 2, "{decode:?}");
    assert_eq!(decode.blocking_readbacks, 1, "{decode:?}");
    assert!(decode.readback_bytes <= 6 * 8, "{decode:?}");
    // Five dispatches per layer (q/k/v with the norm, rope + cache + attention, output, gate/up
    // with the norm, down), plus embedding, head, argmax and the ids' gathering.
    let per_token = stats.decode_work_per_token().dispatches;
    assert!(per_token <= (5 * layers + 4) as f64, "{per_token} dispatches per decoded token for {layers} layers");
    // The prompt's first token still comes from logits read back (vocab × 4 bytes).
    assert_eq!(stats.prefill_work.readbacks, 1);
    assert_eq!(stats.prefill_work.readback_bytes, (vocab * 4) as u64);
}

/// Temperature, top-k/p, min-p and all three penalties: what the device's sampling kernel does.
fn sampled(max_tokens: usize, seed: u64) -> GenerateOptions {
    let sampling = SamplingParams {
        temperature: 0.9,
        top_k: 20,
        top_p: 0.95,
        min_p: 0.02,
        repeat_penalty: 1.3,
        presence_penalty: 0.2,
        frequency_penalty: 0.1,
        repeat_last_n: 8,
        seed,
        ..Default::default()
    };
    GenerateOptions { max_tokens, sampling, ignore_eos: true, cache_prompt: false }
}

/// The tokens `pick` may return from `logits` (penalties applied) under `cuts`, worked out here
/// from the definitions: the `top_k` best (lower id first on ties), the shortest head reaching
/// `top_p`, those at least `min_p` times as likely as the best.
fn allowed(logits: &[f32], cuts: llm::sampler::Cuts) -> Vec<u32> {
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    order.truncate(cuts.top_k);
    let top = logits[order[0] as usize];
    let weights: Vec<f64> = order.iter().map(|&t| ((logits[t as usize] - top) as f64).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut kept = weights.len();
    if cuts.top_p < 1.0 {
        let mut cumulative = 0.0;
        for (i, w) in weights.iter().enumerate() {
            cumulative += w / total;
            if cumulative >= cuts.top_p as f64 {
                kept = i + 1;
                break;
            }
        }
    }
    let kept = weights[..kept].iter().take_while(|&&w| w >= cuts.min_p as f64).count().max(1);
    order[..kept].to_vec()
}

#[test]
fn device_sampling_repeats_with_a_seed_and_stays_inside_the_cpu_sets() {
    for (name, device) in common::devices() {
        let mut g = generator(&device);
        let prompt = g.encode_raw("the quick brown fox").unwrap();
        g.set_lookahead(Lookahead::Fixed(3));
        let first = generate(&mut g, &prompt, sampled(8, 11), None);
        let decode = g.stats().decode_work;
        // Sampling on the device reads ids, never logits: 7 decoded tokens in three reads.
        assert_eq!(decode.readbacks, 3, "{name}: {decode:?}");
        assert_eq!(decode.blocking_readbacks, 1, "{name}: only the last burst is read with nothing queued: {decode:?}");
        assert!(decode.readback_bytes <= 7 * 8, "{name}: {decode:?}");
        g.set_lookahead(Lookahead::Fixed(1));
        assert_eq!(generate(&mut g, &prompt, sampled(8, 11), None), first, "{name}: same seed, one step per read");
        let others: Vec<Vec<u32>> = (12..15).map(|seed| generate(&mut g, &prompt, sampled(8, seed), None)).collect();
        assert!(others.iter().any(|o| o != &first), "{name}: four seeds gave the same tokens");

        // Replay step by step with the logits read back: every token the device chose lies in
        // the set the CPU computes from the same logits after the same penalties, and is the
        // CPU sampler's own choice for the same draw.
        let p = sampled(8, 11).sampling;
        let cuts = llm::sampler::Cuts::of(&p);
        let mut cache = g.model().new_cache(64);
        let mut history = prompt.clone();
        let mut input = prompt.clone();
        for (step, &token) in first.iter().enumerate() {
            let mut logits = g.model().forward(&input, &mut cache, false).unwrap().into_data().try_to_vec::<f32>().unwrap();
            let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
            llm::sampler::apply_penalties(&mut logits, recent, p.repeat_penalty, p.frequency_penalty, p.presence_penalty);
            let set = allowed(&logits, cuts);
            assert!(set.contains(&token), "{name}: step {step} chose {token}, outside {set:?}");
            assert_eq!(llm::sampler::pick(&logits, cuts, llm::sampler::draw_bits(p.seed, step as u32)), token, "{name}: step {step}");
            history.push(token);
            input = vec![token];
        }
    }
}

#[test]
fn device_top_k_one_is_greedy() {
    let device = common::device();
    let mut g = generator(&device);
    let prompt = g.encode_raw("the quick brown fox").unwrap();
    let want = stepwise(&g, &prompt, 6);
    g.set_lookahead(Lookahead::Fixed(3));
    for seed in [1, 2] {
        let options = GenerateOptions { sampling: SamplingParams { temperature: 1.5, top_k: 1, seed, ..Default::default() }, ..greedy(6) };
        assert_eq!(generate(&mut g, &prompt, options, None), want, "seed {seed}");
        assert_eq!(g.stats().decode_work.readback_bytes, 5 * 4, "ids only: {:?}", g.stats().decode_work);
    }
}

#[test]
fn the_sampling_kernel_chooses_as_the_cpu_sampler_does() {
    use burn::tensor::{Int, Tensor, TensorData};
    use llm::ops::TokenChoice;
    use llm::sampler::{Cuts, apply_penalties, draw_bits, pick};

    let device = common::device();
    // 300 logits in 101 distinct values (ties everywhere), one NaN, one -inf.
    let mut logits: Vec<f32> = (0..300).map(|i| ((i * 37) % 101) as f32 * 0.05).collect();
    logits[7] = f32::NAN;
    logits[8] = f32::NEG_INFINITY;
    let history: Vec<i32> = vec![100, 63, 100, 5, 63, 100, 0, 0];
    let settings = [
        (Cuts { temperature: 0.7, top_k: 10, top_p: 0.9, min_p: 0.05 }, 1.3, 0.1, 0.2, 6),
        (Cuts { temperature: 1.3, top_k: 128, top_p: 1.0, min_p: 0.0 }, 1.0, 0.0, 0.0, 0),
        (Cuts { temperature: 2.0, top_k: 40, top_p: 0.5, min_p: 0.0 }, 0.8, 0.5, -0.3, 6),
        (Cuts { temperature: 0.0, top_k: 40, top_p: 1.0, min_p: 0.0 }, 2.0, 0.3, 0.0, 6),
    ];
    for (cuts, repeat_penalty, frequency_penalty, presence_penalty, window) in settings {
        let mut penalised = logits.clone();
        let recent: Vec<u32> = history[6 - window..6].iter().map(|&t| t as u32).collect();
        apply_penalties(&mut penalised, &recent, repeat_penalty, frequency_penalty, presence_penalty);
        for step in 0..24 {
            let draw = draw_bits(99, step);
            let choice = TokenChoice { cuts, repeat_penalty, frequency_penalty, presence_penalty, window, position: 6, draw };
            let on_device = Tensor::<2>::from_data(TensorData::new(logits.clone(), [1, 300]), &device);
            let held = Tensor::<1, Int>::from_data(TensorData::new(history.clone(), [8]), &device);
            let (ids, held) = llm::ops::sample(on_device, held, choice);
            let id = ids.into_data().iter::<i64>().next().unwrap();
            let written = held.into_data().iter::<i64>().nth(6).unwrap();
            assert_eq!(id, pick(&penalised, cuts, draw) as i64, "{cuts:?}, step {step}");
            assert_eq!(written, id, "the history holds the choice");
        }
    }
}

/// DRY as the chat uses it (multiplier 0.8, base 1.75, allowed length 2, breakers newline,
/// colon, quote, asterisk), on top of `sampling`.
fn with_dry(mut options: GenerateOptions) -> GenerateOptions {
    options.sampling.dry = llm::DryParams { multiplier: 0.8, ..Default::default() };
    options
}

/// Replays `tokens` step by step with the logits read back and the CPU sampler (DRY's Z-function
/// search, `dry::apply`): each must be the CPU's own choice. Returns how many steps DRY changed
/// some logit at (the settings have no other penalty).
fn replay_on_the_cpu(g: &mut Generator, prompt: &[u32], options: &GenerateOptions, tokens: &[u32], name: &str) -> usize {
    let breakers = g.sequence_breakers(&options.sampling).unwrap();
    let mut sampler = llm::Sampler::with_breakers(options.sampling.clone(), breakers).unwrap();
    let mut cache = g.model().new_cache(64);
    let mut history = prompt.to_vec();
    let mut input = prompt.to_vec();
    let mut penalised = 0;
    for (step, &token) in tokens.iter().enumerate() {
        let raw = g.model().forward(&input, &mut cache, false).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let mut logits = raw.clone();
        assert_eq!(sampler.sample(&mut logits, &history), token, "{name}: step {step}");
        penalised += usize::from(logits != raw);
        history.push(token);
        input = vec![token];
    }
    penalised
}

#[test]
fn device_dry_chooses_as_the_cpu_sampler_and_reads_only_ids() {
    for (name, device) in common::devices() {
        let mut g = generator(&device);
        // A prompt with a repeat and a newline (a breaker), so DRY has something to cut short.
        let prompt = g.encode_raw("fox fox box\nfox fox").unwrap();
        g.set_lookahead(Lookahead::Fixed(4));
        for options in [with_dry(greedy(12)), with_dry(sampled(12, 5))] {
            let first = generate(&mut g, &prompt, options.clone(), None);
            let decode = g.stats().decode_work;
            // 11 decoded tokens in three reads of ids, never the logits.
            assert_eq!(decode.readbacks, 3, "{name}: {decode:?}");
            assert!(decode.readback_bytes <= 11 * 8, "{name}: ids only: {decode:?}");
            assert_eq!(generate(&mut g, &prompt, options.clone(), None), first, "{name}: the same tokens on a second run");
            let penalised = replay_on_the_cpu(&mut g, &prompt, &options, &first, name);
            assert!(penalised > 0, "{name}: DRY never penalised anything: {first:?}");
        }
    }
}

#[test]
fn the_dry_kernels_penalise_as_the_cpu_sampler_does() {
    use burn::tensor::{Int, Tensor, TensorData};
    use llm::ops::{DryChoice, TokenChoice};
    use llm::sampler::{Cuts, DryParams, SequenceBreakers, draw_bits, dry, pick};

    let device = common::device();
    let vocab = 40;
    let logits: Vec<f32> = (0..vocab).map(|i| ((i * 17) % 23) as f32 * 0.3 - 2.0).collect();
    // A pseudo-random history over few tokens (many repeats), breakers 7 and 9 now and then.
    let mut state = 12345u32;
    let mut mixed: Vec<u32> = (0..300)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            [1, 2, 3, 1, 2, 3, 4, 5, 1, 2, 7, 3, 9, 1][(state >> 16) as usize % 14]
        })
        .collect();
    // Ending on a common pair, after the latest breaker.
    mixed.extend([1, 2]);
    let dry_params = |multiplier, base, allowed_length, penalty_last_n| DryParams { multiplier, base, allowed_length, penalty_last_n, sequence_breakers: Vec::new() };
    let cases: Vec<(Vec<u32>, DryParams, Vec<u32>, bool)> = vec![
        // llama.cpp's worked example: a b c c b c y a b c.
        (vec![0, 1, 2, 2, 1, 2, 3, 0, 1, 2], dry_params(1.0, 2.0, 1, -1), vec![], true),
        // A breaker inside the repeat cuts it short; a breaker as the latest token stops DRY.
        (vec![0, 1, 2, 3, 0, 1, 2], dry_params(1.0, 2.0, 2, -1), vec![0], true),
        (vec![1, 2, 3, 1, 2, 0, 1, 2, 3, 1, 2, 0], dry_params(1.0, 2.0, 2, -1), vec![0], false),
        // "1 2" was followed by 4, a breaker (spared), and by 5 (penalised).
        (vec![1, 2, 4, 3, 1, 2, 5, 1, 2], dry_params(0.8, 1.75, 2, -1), vec![4], true),
        // The window: the repeat begins before it.
        (vec![0, 1, 2, 3, 0, 1, 2], dry_params(1.0, 2.0, 2, 6), vec![], true),
        // One token over and over: the longest repeats, the exponent capped below infinity.
        (vec![5; 300], dry_params(1.0, 1.75, 2, -1), vec![], true),
        (vec![5; 300], dry_params(0.8, 1.0, 0, -1), vec![], true),
        (mixed.clone(), dry_params(0.8, 1.75, 2, -1), vec![7, 9], true),
        (mixed.clone(), dry_params(1.5, 1.1, 3, 64), vec![9], true),
        (mixed, dry_params(0.8, 1.75, 1, 200), vec![], true),
    ];
    for (case, (history, params, breaker_ids, penalises)) in cases.into_iter().enumerate() {
        let breakers = SequenceBreakers::from_token_sequences(breaker_ids.iter().map(|&id| vec![id]));
        let flags = breakers.single_token_flags(vocab).unwrap();
        let position = history.len();
        // The device history has room past the position, as the generator's does.
        let mut held: Vec<i32> = history.iter().map(|&t| t as i32).collect();
        held.resize(position + 8, 0);
        let table = dry::penalty_table(&params, held.len());
        let sampling = llm::SamplingParams { dry: params.clone(), ..llm::SamplingParams::greedy() };
        let mut want = logits.clone();
        llm::Sampler::with_breakers(sampling, std::sync::Arc::new(breakers)).unwrap().sample(&mut want, &history);
        assert_eq!(want != logits, penalises, "case {case}: whether DRY penalises anything");

        let choice = DryChoice { multiplier: params.multiplier, base: params.base, allowed_length: params.allowed_length, window: dry::window(&params, position), position };
        let flags = Tensor::<1, Int>::from_data(TensorData::new(flags, [vocab]), &device);
        let penalties = Tensor::<1>::from_data(TensorData::new(table.clone(), [table.len()]), &device);
        let on_device = |values: &[f32]| {
            let logits = Tensor::<2>::from_data(TensorData::new(values.to_vec(), [1, vocab]), &device);
            let history = Tensor::<1, Int>::from_data(TensorData::new(held.clone(), [held.len()]), &device);
            llm::ops::dry(logits, history, &flags, &penalties, choice)
        };
        let (got, _) = on_device(&logits);
        assert_eq!(got.into_data().try_to_vec::<f32>().unwrap(), want, "case {case}: the same penalties, bit for bit");

        // Then the sampling kernel's draw: the CPU's choice from the same logits.
        let cuts = Cuts { temperature: 1.2, top_k: 16, top_p: 0.95, min_p: 0.0 };
        for step in 0..8 {
            let draw = draw_bits(3, step);
            let (logits, history) = on_device(&logits);
            let token = TokenChoice { cuts, repeat_penalty: 1.0, frequency_penalty: 0.0, presence_penalty: 0.0, window: 0, position, draw };
            let (ids, _) = llm::ops::sample(logits, history, token);
            let id = ids.into_data().iter::<i64>().next().unwrap();
            assert_eq!(id, pick(&want, cuts, draw) as i64, "case {case}, step {step}");
        }
    }
}

#[test]
fn a_breaker_spelled_by_several_tokens_keeps_the_cpu_path() {
    let device = common::cpu();
    let mut g = generator(&device);
    let prompt = g.encode_raw("the quick brown fox").unwrap();
    // Tokens that end with the start of the breaker ("f", "fo") count only with the rest of it
    // after them: a breaker of several tokens, which the device does not follow.
    let mut options = with_dry(greedy(4));
    options.sampling.dry.sequence_breakers = vec!["fox jumps".into()];
    let breakers = g.sequence_breakers(&options.sampling).unwrap();
    assert!(breakers.single_token_flags(g.model().config.vocab_size).is_none());
    generate(&mut g, &prompt, options, None);
    let decode = g.stats().decode_work;
    let vocab = g.model().config.vocab_size as u64;
    assert_eq!(decode.readback_bytes, 3 * vocab * 4, "logits read back: {decode:?}");
}
