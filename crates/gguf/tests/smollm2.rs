//! The real default model, fetched by models/fetch.sh.

use gguf::{GgmlType, Gguf};

fn model_bytes() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/SmolLM2-135M-Instruct-Q4_1.gguf");
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; run models/fetch.sh first"))
}

#[test]
fn smollm2_header() {
    let bytes = model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    g.check_data(bytes.len() as u64).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.get_u64("llama.block_count").unwrap(), 30);
    assert_eq!(g.get_u64("llama.embedding_length").unwrap(), 576);
    assert_eq!(g.get_u64("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(g.get_strings("tokenizer.ggml.tokens").unwrap().len(), 49152);
    assert_eq!(g.tensors.len(), 272);
    assert_eq!(g.tensor("token_embd.weight").unwrap().ty, GgmlType::Q8_0);
    assert_eq!(g.tensor("token_embd.weight").unwrap().dims, [576, 49152]);
    assert!(g.tensor("output.weight").is_none(), "the head is tied to the embeddings");
    let q4 = g.tensors.iter().filter(|t| t.ty == GgmlType::Q4_1).count();
    assert_eq!(q4, 210);
    assert_eq!(g.expected_file_len(), Some(bytes.len() as u64));

    // The header alone is enough to decide whether a model can run.
    let header_only = &bytes[..g.data_offset as usize];
    let h = Gguf::parse_prefix(header_only, bytes.len() as u64).unwrap();
    assert_eq!(h.tensors, g.tensors);
}

#[test]
fn smollm2_norm_weights_are_plausible() {
    let bytes = model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let t = g.tensor("blk.0.attn_norm.weight").unwrap();
    let w = gguf::dequantize(t.ty, g.tensor_data(&bytes, t).unwrap()).unwrap();
    assert_eq!(w.len(), 576);
    assert!(w.iter().all(|x| x.is_finite() && x.abs() < 100.0));
    let e = g.tensor("token_embd.weight").unwrap();
    let row_bytes = 576 / 32 * 34;
    let data = g.tensor_data(&bytes, e).unwrap();
    let row = gguf::dequantize(e.ty, &data[..row_bytes]).unwrap();
    let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(norm > 0.1 && norm < 100.0, "embedding row norm {norm}");
}
