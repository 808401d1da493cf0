//! Hostile GGUF headers: the model configuration is checked against the tensor count, the
//! tensors' shapes and the file's size before anything loops or allocates by it, and every
//! failure is a typed error with a JS code — never a hang, a panic or a huge allocation. These
//! need no device: `inspectModel` runs exactly this on a download's first bytes.

use std::time::{Duration, Instant};

mod synth;

use gguf::{Array, GgmlType, Gguf, GgufWriter, Value};
use llm::{LlamaConfig, LlmError, ModelInfo};

const D: u64 = 8;
const HEADS: u64 = 2;
const KV_HEADS: u64 = 1;
const HEAD_DIM: u64 = D / HEADS;
const FF: u64 = 16;
const VOCAB: u64 = 4;

fn f32_tensor(w: &mut GgufWriter, name: &str, dims: &[u64]) {
    let n: u64 = dims.iter().product();
    w.tensor(name, dims, GgmlType::F32, vec![0; n as usize * 4]);
}

/// A tiny, valid one-block llama model; `edit` changes its metadata before the tensors go in.
fn tiny_model(edit: impl FnOnce(&mut Vec<(&'static str, Value)>)) -> Vec<u8> {
    let mut meta: Vec<(&'static str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(1)),
        ("llama.embedding_length", Value::U32(D as u32)),
        ("llama.feed_forward_length", Value::U32(FF as u32)),
        ("llama.attention.head_count", Value::U32(HEADS as u32)),
        ("llama.attention.head_count_kv", Value::U32(KV_HEADS as u32)),
        ("llama.context_length", Value::U32(64)),
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.tokens", Value::Array(Array::String(["<unk>", "<s>", "</s>", "a"].map(String::from).to_vec()))),
    ];
    edit(&mut meta);
    let mut w = GgufWriter::new();
    for (key, value) in meta {
        w.metadata(key, value);
    }
    let kv = KV_HEADS * HEAD_DIM;
    f32_tensor(&mut w, "token_embd.weight", &[D, VOCAB]);
    f32_tensor(&mut w, "output_norm.weight", &[D]);
    for (part, dims) in [
        ("attn_norm", vec![D]),
        ("attn_q", vec![D, D]),
        ("attn_k", vec![D, kv]),
        ("attn_v", vec![D, kv]),
        ("attn_output", vec![D, D]),
        ("ffn_norm", vec![D]),
        ("ffn_gate", vec![D, FF]),
        ("ffn_up", vec![D, FF]),
        ("ffn_down", vec![FF, D]),
    ] {
        f32_tensor(&mut w, &format!("blk.0.{part}.weight"), &dims);
    }
    w.to_bytes()
}

fn set(meta: &mut [(&'static str, Value)], key: &str, value: Value) {
    meta.iter_mut().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("{key}")).1 = value;
}

fn config(bytes: &[u8]) -> Result<LlamaConfig, LlmError> {
    LlamaConfig::from_gguf(&Gguf::parse(bytes).unwrap())
}

fn code(result: Result<LlamaConfig, LlmError>) -> &'static str {
    match result {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.code(),
    }
}

#[test]
fn the_tiny_model_is_accepted_and_counted() {
    let bytes = tiny_model(|_| {});
    let g = Gguf::parse(&bytes).unwrap();
    let config = LlamaConfig::from_gguf(&g).unwrap();
    let elements: u64 = g.tensors.iter().map(|t| t.element_count()).sum();
    assert_eq!(config.parameter_count(), elements);
    let info = ModelInfo::from_gguf(&g).unwrap();
    assert_eq!((info.layers, info.vocab_size, info.parameters), (1, VOCAB as usize, elements));
}

#[test]
fn a_huge_block_count_is_refused_before_any_loop() {
    // The ~150-byte file of the report: four billion blocks and no tensors.
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()))
        .metadata("llama.block_count", Value::U32(0xFFFF_FFFF))
        .metadata("llama.embedding_length", Value::U32(8))
        .metadata("llama.attention.head_count", Value::U32(2))
        .metadata("llama.feed_forward_length", Value::U32(16))
        .metadata("llama.vocab_size", Value::U32(4));
    let bytes = w.to_bytes();
    assert!(bytes.len() < 300, "{} bytes", bytes.len());
    let started = Instant::now();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(code(LlamaConfig::from_gguf(&g)), "model_format");
    assert_eq!(ModelInfo::from_gguf(&g).unwrap_err().code(), "model_format");
    // With the tensors of one block, a count of two is refused the same way.
    let bytes = tiny_model(|m| set(m, "llama.block_count", Value::U32(2)));
    assert_eq!(code(config(&bytes)), "model_format");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[test]
fn dimensions_must_match_the_tensors() {
    for (key, value) in [
        ("llama.embedding_length", Value::U64(1 << 40)),
        ("llama.feed_forward_length", Value::U64(1 << 40)),
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.head_count_kv", Value::U32(2)),
        ("llama.context_length", Value::U32(64)),
    ] {
        let bytes = tiny_model(|m| set(m, key, value.clone()));
        let result = config(&bytes);
        if key == "llama.context_length" {
            assert!(result.is_ok());
        } else {
            assert_eq!(code(result), "unsupported_model", "{key} = {value:?}");
        }
    }
    // A vocabulary size that the embedding table does not have.
    let bytes = tiny_model(|m| m.push(("llama.vocab_size", Value::U64(1 << 40))));
    assert_eq!(code(config(&bytes)), "unsupported_model");
    // Products that overflow are refused before anything multiplies by them.
    let bytes = tiny_model(|m| {
        set(m, "llama.attention.head_count", Value::U64(1 << 40));
        set(m, "llama.attention.head_count_kv", Value::U64(1 << 40));
        m.push(("llama.attention.key_length", Value::U64(1 << 40)));
    });
    assert!(matches!(config(&bytes), Err(LlmError::Format(_) | LlmError::Unsupported(_))));
    // Zero-sized heads or feed-forward layers.
    let bytes = tiny_model(|m| m.push(("llama.attention.key_length", Value::U32(0))));
    assert_eq!(code(config(&bytes)), "unsupported_model");
    let bytes = tiny_model(|m| set(m, "llama.feed_forward_length", Value::U32(0)));
    assert_eq!(code(config(&bytes)), "unsupported_model");
}

#[test]
fn tensor_data_must_lie_inside_the_file() {
    let bytes = tiny_model(|_| {});
    // The header alone, from a download that has only begun: fine if the file is long enough.
    let header_len = bytes.len() - 4 * 16;
    let g = Gguf::parse_prefix(&bytes[..header_len], bytes.len() as u64).unwrap();
    assert_eq!(g.file_len, bytes.len() as u64);
    assert!(LlamaConfig::from_gguf(&g).is_ok());
    // A file too short for the tensors its header lists.
    let g = Gguf::parse_prefix(&bytes[..header_len], bytes.len() as u64 - 1).unwrap();
    let err = LlamaConfig::from_gguf(&g).unwrap_err();
    assert!(matches!(err, LlmError::Format(gguf::GgufError::Truncated { .. })), "{err:?}");
    assert_eq!(ModelInfo::from_gguf(&g).unwrap_err().code(), "model_format");
}

#[test]
fn nonsense_numbers_are_format_errors() {
    for (key, value) in [
        ("llama.rope.freq_base", Value::F32(f32::NAN)),
        ("llama.rope.freq_base", Value::F32(-1.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(f32::INFINITY)),
    ] {
        let bytes = tiny_model(|m| m.push((key, value.clone())));
        assert_eq!(code(config(&bytes)), "model_format", "{key} = {value:?}");
    }
    let bytes = tiny_model(|m| {
        m.push(("llama.rope.scaling.type", Value::String("linear".into())));
        m.push(("llama.rope.scaling.factor", Value::F32(f32::NAN)));
    });
    assert_eq!(code(config(&bytes)), "model_format");
}

#[test]
fn parameter_count_saturates() {
    let config = LlamaConfig {
        block_count: usize::MAX,
        embedding_length: usize::MAX,
        feed_forward_length: usize::MAX,
        head_count: usize::MAX,
        head_count_kv: usize::MAX,
        head_dim: usize::MAX,
        rope_dimensions: 2,
        rope_freq_base: 10_000.0,
        rope_freq_scale: 1.0,
        rms_norm_eps: 1e-5,
        context_length: usize::MAX,
        vocab_size: usize::MAX,
        tied_embeddings: false,
    };
    assert_eq!(config.parameter_count(), u64::MAX);
}

#[test]
fn oversized_tokenizer_metadata_is_refused_from_the_header() {
    let template = "x".repeat(confidant_tokenizer::limits::MAX_TEMPLATE_BYTES + 1);
    let bytes = tiny_model(|m| m.push(("tokenizer.chat_template", Value::String(template.clone()))));
    let err = ModelInfo::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap_err();
    assert_eq!(err.code(), "model_format", "{err}");
    let bytes = tiny_model(|m| m.push(("tokenizer.chat_template", Value::String("{{ x }}".into()))));
    assert!(ModelInfo::from_gguf(&Gguf::parse(&bytes).unwrap()).is_ok());
}

/// The synthetic model `name` (crates/llm/tests/synth) rewritten by `edit`, which gets its
/// metadata and its tensors (name, dims, type, data) to change.
fn rewritten(name: &str, edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>)) -> Vec<u8> {
    let bytes = synth::build(name).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let mut meta = g.metadata.clone();
    let mut tensors: Vec<_> = g.tensors.iter().map(|t| (t.name.clone(), t.dims.clone(), t.ty, g.tensor_data(&bytes, t).unwrap().to_vec())).collect();
    edit(&mut meta, &mut tensors);
    let mut w = GgufWriter::new();
    for (key, value) in meta {
        w.metadata(&key, value);
    }
    for (name, dims, ty, data) in tensors {
        w.tensor(&name, &dims, ty, data);
    }
    w.to_bytes()
}

/// Each architecture's own tensors and keys are checked from the header like llama's: a missing
/// bias or head norm, a fused matrix of the wrong height, LongRoPE factors this engine does not
/// apply, and a block count its tensors cannot back are refused with typed errors; an
/// architecture it does not run is named with the ones it does.
#[test]
fn other_architectures_are_checked_from_the_header() {
    for name in ["qwen2_bias", "qwen3_qk_norm", "gemma3_swa", "phi3_fused"] {
        let g = Gguf::parse(&synth::build(name).unwrap()).unwrap();
        assert!(ModelInfo::from_gguf(&g).is_ok(), "{name}: the unchanged file is accepted");
    }
    // Renamed rather than removed, so that the tensor count still backs the block count.
    let without = |name: &str, tensor: &'static str| {
        rewritten(name, |_, t| t.iter_mut().filter(|(n, ..)| n == tensor).for_each(|(n, ..)| *n = format!("{n}.renamed")))
    };
    let err = config(&without("qwen2_bias", "blk.1.attn_k.bias")).unwrap_err();
    assert_eq!(err.code(), "unsupported_model");
    assert!(err.to_string().contains("blk.1.attn_k.bias"), "{err}");
    assert_eq!(code(config(&without("qwen3_qk_norm", "blk.2.attn_q_norm.weight"))), "unsupported_model");
    assert_eq!(code(config(&without("gemma3_swa", "blk.5.post_ffw_norm.weight"))), "unsupported_model");
    // Phi-3's fused gate/up matrix must hold twice the feed-forward rows.
    let short_up = rewritten("phi3_fused", |_, t| {
        let up = t.iter_mut().find(|(n, ..)| n == "blk.0.ffn_up.weight").unwrap();
        up.1[1] /= 2;
        up.3.truncate(up.3.len() / 2);
    });
    assert_eq!(code(config(&short_up)), "unsupported_model");
    let longrope = rewritten("phi3_fused", |_, t| t.push(("rope_factors_long.weight".into(), vec![32], GgmlType::F32, vec![0; 128])));
    let err = config(&longrope).unwrap_err();
    assert!(err.to_string().contains("LongRoPE"), "{err}");
    // Gemma 3 has 13 tensors a block: 6 blocks' worth of names cannot back 1000 blocks.
    let many_blocks = rewritten("gemma3_swa", |m, _| m.iter_mut().find(|(k, _)| k == "gemma3.block_count").unwrap().1 = Value::U32(1000));
    assert_eq!(code(config(&many_blocks)), "model_format");
    let unknown = rewritten("qwen2_bias", |m, _| m.iter_mut().find(|(k, _)| k == "general.architecture").unwrap().1 = Value::String("mamba".into()));
    let err = config(&unknown).unwrap_err();
    assert_eq!(err.code(), "unsupported_model");
    assert!(err.to_string().contains(r#"architecture "mamba": this engine runs llama, qwen2, qwen3, gemma3, phi3 models"#), "{err}");
}
