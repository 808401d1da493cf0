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
    // Six bursts' worth of tokens in two reads of three ids each, never the logits.
    assert_eq!(decode.readbacks, 2, "{decode:?}");
    assert!(decode.readback_bytes <= 6 * 8, "{decode:?}");
    // Five dispatches per layer (q/k/v with the norm, rope + cache + attention, output, gate/up
    // with the norm, down), plus embedding, head, argmax and the ids' gathering.
    let per_token = stats.decode_work_per_token().dispatches;
    assert!(per_token <= (5 * layers + 4) as f64, "{per_token} dispatches per decoded token for {layers} layers");
    // The prompt's first token still comes from logits read back (vocab × 4 bytes).
    assert_eq!(stats.prefill_work.readbacks, 1);
    assert_eq!(stats.prefill_work.readback_bytes, (vocab * 4) as u64);
}
