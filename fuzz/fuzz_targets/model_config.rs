//! GGUF headers through the model's configuration and description (`LlamaConfig::from_gguf`,
//! `ModelInfo::from_gguf`: what `inspectModel` runs on a download's first bytes), from raw bytes
//! and from a llama header built out of the input (any counts, dimensions, floats and tensor
//! list). Errors are fine; panics, hangs and allocations sized by the header are not. A
//! configuration that is accepted has every tensor it uses, of its shape, inside the file.
#![no_main]

use gguf::{Array, GgmlType, Gguf, GgufWriter, Value};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use llm::{LlamaConfig, ModelInfo};

#[derive(Arbitrary, Debug)]
enum Num {
    U32(u32),
    U64(u64),
    I32(i32),
    F32(f32),
    Small(u8),
    Missing,
}

#[derive(Arbitrary, Debug)]
struct Tensor {
    /// Which tensor: an index into the names the model uses (or an unknown one).
    name: u8,
    block: u8,
    dims: Vec<u8>,
    big_dim: Option<u64>,
    ty: u8,
    /// Write the data (zeros), or leave the file short of it.
    with_data: bool,
}

#[derive(Arbitrary, Debug)]
struct Header {
    block_count: Num,
    embedding_length: Num,
    feed_forward_length: Num,
    head_count: Num,
    head_count_kv: Num,
    key_length: Num,
    value_length: Num,
    rope_dimension_count: Num,
    context_length: Num,
    vocab_size: Num,
    freq_base: Num,
    rms_eps: Num,
    scaling: Option<(bool, Num)>,
    tokens: u8,
    tensors: Vec<Tensor>,
    /// The file's claimed length past the bytes built (a prefix of a longer download).
    claimed_extra: u32,
}

const PARTS: [&str; 9] = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"];
const TYPES: [GgmlType; 6] = [GgmlType::F32, GgmlType::F16, GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q6K];

fn put(w: &mut GgufWriter, key: &str, n: &Num) {
    let value = match *n {
        Num::U32(v) => Value::U32(v),
        Num::U64(v) => Value::U64(v),
        Num::I32(v) => Value::I32(v),
        Num::F32(v) => Value::F32(v),
        Num::Small(v) => Value::U32(u32::from(v)),
        Num::Missing => return,
    };
    w.metadata(key, value);
}

fn check(g: &Gguf) {
    if let Ok(config) = LlamaConfig::from_gguf(g) {
        let _ = config.parameter_count();
        for name in ["token_embd.weight", "output_norm.weight"] {
            let info = g.tensor(name).expect("an accepted configuration has its tensors");
            g.tensor_range(info, g.file_len).expect("inside the file");
        }
    }
    if let Ok(info) = ModelInfo::from_gguf(g) {
        assert!(info.layers <= g.tensors.len());
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Gguf::parse(data) {
        check(&g);
    }
    let Ok(header) = Header::arbitrary(&mut arbitrary::Unstructured::new(data)) else { return };
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()));
    w.metadata("tokenizer.ggml.model", Value::String("llama".into()));
    let tokens: Vec<String> = (0..header.tokens).map(|i| format!("t{i}")).collect();
    w.metadata("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    put(&mut w, "llama.block_count", &header.block_count);
    put(&mut w, "llama.embedding_length", &header.embedding_length);
    put(&mut w, "llama.feed_forward_length", &header.feed_forward_length);
    put(&mut w, "llama.attention.head_count", &header.head_count);
    put(&mut w, "llama.attention.head_count_kv", &header.head_count_kv);
    put(&mut w, "llama.attention.key_length", &header.key_length);
    put(&mut w, "llama.attention.value_length", &header.value_length);
    put(&mut w, "llama.rope.dimension_count", &header.rope_dimension_count);
    put(&mut w, "llama.context_length", &header.context_length);
    put(&mut w, "llama.vocab_size", &header.vocab_size);
    put(&mut w, "llama.rope.freq_base", &header.freq_base);
    put(&mut w, "llama.attention.layer_norm_rms_epsilon", &header.rms_eps);
    if let Some((linear, factor)) = &header.scaling {
        w.metadata("llama.rope.scaling.type", Value::String(if *linear { "linear" } else { "yarn" }.into()));
        put(&mut w, "llama.rope.scaling.factor", factor);
    }
    let mut seen = std::collections::HashSet::new();
    for t in header.tensors.iter().take(64) {
        let name = match t.name % 12 {
            0 => "token_embd.weight".to_string(),
            1 => "output_norm.weight".to_string(),
            2 => "output.weight".to_string(),
            3 => "rope_freqs.weight".to_string(),
            n => format!("blk.{}.{}.weight", t.block % 4, PARTS[usize::from(n - 4) % PARTS.len()]),
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        let ty = TYPES[usize::from(t.ty) % TYPES.len()];
        let block = ty.block_size().unwrap_or(1) as u64;
        let mut dims: Vec<u64> = t.dims.iter().take(4).map(|&d| u64::from(d).max(1)).collect();
        if dims.is_empty() {
            dims.push(1);
        }
        dims[0] = dims[0].next_multiple_of(block);
        if let Some(big) = t.big_dim {
            dims.push(big.max(1));
            dims.truncate(4);
        }
        let elements = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let bytes = elements.and_then(|n| ty.byte_size(n)).unwrap_or(0);
        let data = if t.with_data && bytes <= 1 << 16 { vec![0; bytes as usize] } else { Vec::new() };
        w.tensor(&name, &dims, ty, data);
    }
    let bytes = w.to_bytes();
    if let Ok(g) = Gguf::parse(&bytes) {
        check(&g);
    }
    if let Ok(g) = Gguf::parse_prefix(&bytes, bytes.len() as u64 + u64::from(header.claimed_extra)) {
        check(&g);
    }
});
