//! A model whose buffers a GPU cannot hold is refused from its header, before anything is
//! loaded, the message naming the numbers (`MemoryNeed::check_gpu_buffers`; the CLI and the
//! browser's engine call it with the adapter's own limit, and the npm package before a download).
//! One buffer is the most a GPU kernel binds at once: WebGPU guarantees 128 MiB
//! (`maxStorageBufferBindingSize`), real adapters allow more. Weight matrices larger than that are
//! kept in blocks of rows; a layer's key/value cache is one buffer, so a long context can pass it.

mod synth;

use gguf::Gguf;
use llm::{DType, LlmError, MemoryNeed};

fn model() -> (Gguf, synth::Spec) {
    let spec = synth::spec("gqa_q4_0").expect("a synthetic configuration");
    let bytes = synth::build_spec(&spec);
    (Gguf::parse(&bytes).expect("the synthetic model parses"), spec)
}

fn refusal(result: Result<MemoryNeed, LlmError>) -> String {
    match result {
        Err(e @ LlmError::TooLarge(_)) => {
            assert_eq!(e.code(), "out_of_memory");
            e.to_string()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_key_value_cache_larger_than_one_buffer_is_refused_with_the_context_that_fits() {
    let (g, spec) = model();
    // One layer's keys: kv_heads × head_dim f32 values per position.
    let per_position = (spec.kv_heads * spec.head_dim * 4) as u64;
    let context = spec.context_length;
    let kv_layer = per_position * context as u64;
    assert_eq!(MemoryNeed::of(&g, context).expect("header").largest_buffer, kv_layer, "the cache's layer is this model's largest buffer");

    assert!(MemoryNeed::check_gpu_buffers(&g, context, kv_layer).is_ok(), "a buffer of exactly the limit fits");
    let message = refusal(MemoryNeed::check_gpu_buffers(&g, context, kv_layer - 1));
    let fits = (kv_layer - 1) / per_position;
    assert!(
        message.contains(&format!("at {context} tokens of context needs {} KB per layer", kv_layer / 1000)) && message.contains(&format!("enough for {fits} tokens of context")),
        "{message}"
    );
    // The context it names does fit.
    assert!(MemoryNeed::check_gpu_buffers(&g, fits as usize, kv_layer - 1).is_ok());
    // A context past the model's own is capped at it, as the cache is.
    assert!(MemoryNeed::check_gpu_buffers(&g, 1 << 30, kv_layer).is_ok());

    // An f16 cache (a GPU with shader-f16) takes half the bytes: the limit that refused the
    // f32 cache above holds it, and the cache's total halves.
    let half = MemoryNeed::check_gpu_buffers_with_cache(&g, context, kv_layer - 1, DType::F16).expect("an f16 cache in half the bytes");
    assert_eq!(half.kv_cache * 2, MemoryNeed::of(&g, context).expect("header").kv_cache);
}

#[test]
fn a_weight_buffer_larger_than_the_limit_is_refused_naming_the_tensor() {
    let (g, spec) = model();
    // The largest weight buffers: the embedding table (Q8_0) and the output head (Q6_K), kept at
    // 8 bits a value, vocabulary × width bytes.
    let table = (spec.vocab * spec.embedding) as u64;
    let short = 16;
    assert!(((spec.kv_heads * spec.head_dim * 4 * short) as u64) < table / 2);
    assert_eq!(MemoryNeed::of(&g, short).expect("header").largest_buffer, table);
    let message = refusal(MemoryNeed::check_gpu_buffers(&g, short, table / 2));
    assert!(
        message.contains("tensor ")
            && (message.contains("token_embd.weight") || message.contains("output.weight"))
            && message.contains(&format!("up to {} KB", table / 1000))
            && message.contains(&format!("at most {} KB", table / 2 / 1000)),
        "{message}"
    );
    assert!(MemoryNeed::check_gpu_buffers(&g, short, table).is_ok());
}
