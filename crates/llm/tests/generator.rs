//! The generator as callers use it: prompt-prefix reuse, stopping, aborting, bad requests and
//! seeded sampling, on the real SmolLM2 model (on the CPU backend: the generator's logic is under
//! test; kernels.rs and the reference tests check both backends).

mod common;

use llm::{ChatMessage, FinishReason, GenerateOptions, Generator, LlmError, SamplingParams};

fn generator() -> Generator {
    Generator::from_gguf(common::model_bytes(), &common::cpu(), 256).unwrap()
}

fn run(g: &mut Generator, prompt: Vec<u32>, options: GenerateOptions) -> (Vec<u32>, String) {
    g.begin(prompt, options).unwrap();
    let (mut tokens, mut text) = (Vec::new(), String::new());
    while let Some(step) = pollster::block_on(g.step()).unwrap() {
        tokens.push(step.token);
        text.push_str(&step.text);
    }
    (tokens, text)
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions { max_tokens, sampling: SamplingParams::greedy(), ..Default::default() }
}

#[test]
fn shared_prompt_prefix_is_not_prefilled_again() {
    let mut g = generator();
    let first = g.encode_chat(&[ChatMessage::new("user", "Tell me about owls.")]).unwrap();
    let (reply, _) = run(&mut g, first.clone(), greedy(3));
    assert_eq!(g.stats().prefilled_tokens, first.len());

    // The next turn starts with the whole first prompt and its reply.
    let mut second = first.clone();
    second.extend(&reply);
    second.extend(g.encode_raw("<|im_end|>\n<|im_start|>user\nAnd bats?<|im_end|>\n<|im_start|>assistant\n").unwrap());
    let (cached_reply, _) = run(&mut g, second.clone(), greedy(3));
    let stats = g.stats().clone();
    // Everything but the last reply token (never run through the model) and the new text is reused.
    assert_eq!(stats.prefilled_tokens, second.len() - first.len() - reply.len() + 1, "{stats:?}");

    // Reuse changes nothing in the output.
    let (fresh_reply, _) = run(&mut g, second, GenerateOptions { cache_prompt: false, ..greedy(3) });
    assert_eq!(cached_reply, fresh_reply);
}

#[test]
fn max_tokens_and_text_streaming() {
    let mut g = generator();
    let prompt = g.encode_raw("The capital of France is").unwrap();
    let (tokens, text) = run(&mut g, prompt, greedy(5));
    assert_eq!(tokens.len(), 5);
    assert_eq!(g.stats().finish_reason, Some(FinishReason::Length));
    assert_eq!(text, g.tokenizer().decode(&tokens, true).unwrap());
    assert!(text.starts_with(" Paris"), "{text:?}");
}

#[test]
fn end_of_generation_stops_unless_ignored() {
    let mut g = generator();
    // A finished assistant turn: the model closes it at once.
    let prompt = g.encode_raw("<|im_start|>user\nSay OK.<|im_end|>\n<|im_start|>assistant\nOK.").unwrap();
    let (tokens, _) = run(&mut g, prompt.clone(), greedy(20));
    assert_eq!(g.stats().finish_reason, Some(FinishReason::Stop), "{tokens:?}");
    assert!(tokens.len() < 20);
    let (tokens, _) = run(&mut g, prompt, GenerateOptions { ignore_eos: true, ..greedy(tokens.len() + 2) });
    assert_eq!(tokens.len(), g.stats().completion_tokens);
    assert_eq!(g.stats().finish_reason, Some(FinishReason::Length));
}

#[test]
fn abort_leaves_the_generator_usable() {
    let mut g = generator();
    let prompt = g.encode_raw("Once upon a time").unwrap();
    g.begin(prompt.clone(), greedy(50)).unwrap();
    let first = pollster::block_on(g.step()).unwrap().unwrap();
    g.abort();
    assert!(!g.is_running());
    assert!(pollster::block_on(g.step()).unwrap().is_none());
    let (tokens, _) = run(&mut g, prompt, greedy(2));
    assert_eq!(tokens[0], first.token);
}

#[test]
fn bad_requests_are_errors() {
    let mut g = generator();
    assert!(matches!(g.begin(vec![], greedy(4)), Err(LlmError::BadRequest(_))));
    assert!(matches!(g.begin(vec![1; 300], greedy(4)), Err(LlmError::BadRequest(_))), "longer than the context");
    assert!(matches!(g.begin(vec![999_999], greedy(4)), Err(LlmError::BadRequest(_))), "outside the vocabulary");
    let bad_sampling = GenerateOptions { sampling: SamplingParams { top_p: 2.0, ..Default::default() }, ..greedy(4) };
    assert!(matches!(g.begin(vec![1, 2], bad_sampling), Err(LlmError::BadRequest(_))));
    assert_eq!(LlmError::BadRequest(String::new()).code(), "bad_request");
}

#[test]
fn context_limit_ends_generation() {
    let mut g = Generator::from_gguf(common::model_bytes(), &common::cpu(), 16).unwrap();
    let prompt = g.encode_raw("One two three four five six").unwrap();
    let (tokens, _) = run(&mut g, prompt.clone(), GenerateOptions { ignore_eos: true, ..greedy(100) });
    assert_eq!(g.stats().finish_reason, Some(FinishReason::Length));
    assert!(prompt.len() + tokens.len() <= 16, "{} + {}", prompt.len(), tokens.len());
}

#[test]
fn seeded_sampling_repeats_and_seeds_differ() {
    let mut g = generator();
    let prompt = g.encode_raw("My favourite colour is").unwrap();
    let sampled = |seed| GenerateOptions {
        max_tokens: 8,
        sampling: SamplingParams { temperature: 1.2, top_k: 0, top_p: 1.0, min_p: 0.0, seed, ..Default::default() },
        ..Default::default()
    };
    let a = run(&mut g, prompt.clone(), sampled(1)).0;
    let b = run(&mut g, prompt.clone(), sampled(1)).0;
    assert_eq!(a, b);
    let others: Vec<Vec<u32>> = (2..5).map(|seed| run(&mut g, prompt.clone(), sampled(seed)).0).collect();
    assert!(others.iter().any(|o| o != &a), "different seeds gave identical samples");
}

#[test]
fn a_prompt_prefilled_in_chunks_reports_progress_and_gives_the_same_tokens() {
    let mut g = generator();
    let text = "The lighthouse keeper climbed the stairs every evening to light the lamp. ".repeat(8);
    let prompt = g.encode_raw(&text).unwrap();
    assert!(prompt.len() > 100, "{} tokens", prompt.len());
    let (whole, _) = run(&mut g, prompt.clone(), GenerateOptions { cache_prompt: false, ..greedy(4) });

    g.begin(prompt.clone(), GenerateOptions { cache_prompt: false, ..greedy(4) }).unwrap();
    assert_eq!(g.prefill_progress(), Some(llm::PrefillProgress { done: 0, total: prompt.len() }));
    let mut seen = Vec::new();
    while let Some(p) = pollster::block_on(g.prefill(32)).unwrap() {
        seen.push(p);
    }
    let (chunked, _) = {
        let (mut tokens, mut text) = (Vec::new(), String::new());
        while let Some(step) = pollster::block_on(g.step()).unwrap() {
            tokens.push(step.token);
            text.push_str(&step.text);
        }
        (tokens, text)
    };
    // Every chunk but the last (run by `step`, which samples) reports; the count only grows.
    assert_eq!(seen.len(), (prompt.len() - 1) / 32, "{seen:?}");
    assert!(seen.iter().enumerate().all(|(i, p)| p.done == 32 * (i + 1) && p.total == prompt.len()), "{seen:?}");
    assert_eq!(g.prefill_progress(), None);
    assert_eq!(chunked, whole);
    assert_eq!(g.stats().prefilled_tokens, prompt.len());
    assert!(g.stats().prefill_seconds > 0.0);

    // A cached prefix is not counted; an abort between chunks leaves the generator usable.
    let mut longer = prompt.clone();
    longer.extend(g.encode_raw(&text).unwrap());
    g.begin(longer.clone(), greedy(2)).unwrap();
    let reused = longer.len() - g.stats().prefilled_tokens;
    assert!(reused > 0);
    assert_eq!(g.prefill_progress().map(|p| (p.done, p.total)), Some((0, longer.len() - reused)));
    assert_eq!(pollster::block_on(g.prefill(16)).unwrap().map(|p| p.done), Some(16));
    g.abort();
    assert!(pollster::block_on(g.prefill(16)).unwrap().is_none());
    let (after, _) = run(&mut g, prompt, greedy(4));
    assert_eq!(after, whole);
}
