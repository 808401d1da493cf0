//! The tokenizer built from GGUF metadata: from raw bytes, and from a vocabulary built out of
//! the input (any tokens, types, scores, merges, special ids and flags, both models, every
//! pre-tokenizer name). Whatever builds then encodes texts with every setting, decodes the ids
//! whole and streamed (they must agree), and decodes arbitrary ids. Errors are fine; panics
//! and hangs are not.
#![no_main]

use gguf::{Array, Gguf, GgufWriter, Value};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tokenizer::{StreamDecoder, Tokenizer};

#[derive(Arbitrary, Debug)]
struct Vocab {
    spm: bool,
    pre: Option<u8>,
    with_bytes: bool,
    tokens: Vec<String>,
    types: Option<Vec<i32>>,
    scores: Option<Vec<f32>>,
    merges: Vec<(u16, u16)>,
    raw_merges: Vec<String>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: Option<bool>,
    add_eos: Option<bool>,
    add_space_prefix: Option<bool>,
    phi3: bool,
    texts: Vec<String>,
    ids: Vec<u32>,
}

const PRE: [&str; 14] = [
    "default", "gpt-2", "smollm", "llama-bpe", "dbrx", "qwen2", "qwen35", "glm4", "falcon", "deepseek-coder", "bloom",
    "unknown-name", "", "starcoder",
];

/// GPT-2's byte-to-character table (the first 256 tokens of a byte-level vocabulary).
fn byte_chars() -> Vec<String> {
    let printable = |b: u32| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256;
    (0..256u32)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(c).map(String::from).unwrap_or_default()
        })
        .collect()
}

fn exercise(tok: &Tokenizer, texts: &[String], ids: &[u32]) {
    for text in texts.iter().take(8) {
        for (add, parse) in [(false, false), (false, true), (true, false), (true, true)] {
            let Ok(encoded) = tok.encode(text, add, parse) else { continue };
            for skip in [false, true] {
                let whole = tok.decode(&encoded, skip).expect("ids from encode decode");
                let mut stream = StreamDecoder::new(skip);
                let mut streamed = String::new();
                for &id in &encoded {
                    streamed.push_str(&stream.push(tok, id).expect("ids from encode stream"));
                }
                streamed.push_str(&stream.finish());
                assert_eq!(streamed, whole);
            }
        }
    }
    let _ = tok.decode(ids, false);
    let mut stream = StreamDecoder::new(true);
    for &id in ids {
        let _ = stream.push(tok, id);
    }
    for &id in ids.iter().take(16) {
        let _ = tok.token_text(id);
        let _ = tok.is_control(id);
        let _ = tok.is_end_of_generation(id);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Gguf::parse(data)
        && let Ok(tok) = Tokenizer::from_gguf(&g)
    {
        exercise(&tok, &["Hello, world! 123 <|im_start|> héllo 🙂".to_string()], &[0, 1, 2, 1_000_000]);
    }
    let Ok(v) = Vocab::arbitrary(&mut arbitrary::Unstructured::new(data)) else { return };
    let mut tokens = if v.with_bytes && !v.spm { byte_chars() } else { Vec::new() };
    if v.with_bytes && v.spm {
        tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    }
    tokens.extend(v.tokens.iter().take(512).cloned());
    let n = tokens.len();
    let mut merges: Vec<String> = v
        .merges
        .iter()
        .take(512)
        .filter_map(|&(a, b)| {
            let (a, b) = (tokens.get(usize::from(a) % n.max(1))?, tokens.get(usize::from(b) % n.max(1))?);
            Some(format!("{a} {b}"))
        })
        .collect();
    // Merges whose result is a token, so that they are accepted: add it.
    let joined: Vec<String> = merges.iter().map(|m| m.replacen(' ', "", 1)).collect();
    tokens.extend(joined);
    merges.extend(v.raw_merges.iter().take(16).cloned());

    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()));
    w.metadata("tokenizer.ggml.model", Value::String(if v.spm { "llama" } else { "gpt2" }.into()));
    if let Some(pre) = v.pre {
        w.metadata("tokenizer.ggml.pre", Value::String(PRE[usize::from(pre) % PRE.len()].into()));
    }
    if v.phi3 {
        w.metadata("general.name", Value::String("Phi-3 mini".into()));
    }
    if let Some(types) = &v.types {
        let mut types: Vec<i32> = types.iter().copied().take(tokens.len()).collect();
        types.resize(tokens.len(), 1);
        w.metadata("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    }
    if let Some(scores) = &v.scores {
        let mut scores: Vec<f32> = scores.iter().copied().take(tokens.len()).collect();
        scores.resize(tokens.len(), 0.0);
        w.metadata("tokenizer.ggml.scores", Value::Array(Array::F32(scores)));
    }
    w.metadata("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    w.metadata("tokenizer.ggml.merges", Value::Array(Array::String(merges)));
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", v.bos),
        ("tokenizer.ggml.eos_token_id", v.eos),
        ("tokenizer.ggml.eot_token_id", v.eot),
    ] {
        if let Some(id) = id {
            w.metadata(key, Value::U32(id));
        }
    }
    for (key, flag) in [
        ("tokenizer.ggml.add_bos_token", v.add_bos),
        ("tokenizer.ggml.add_eos_token", v.add_eos),
        ("tokenizer.ggml.add_space_prefix", v.add_space_prefix),
    ] {
        if let Some(flag) = flag {
            w.metadata(key, Value::Bool(flag));
        }
    }
    let bytes = w.to_bytes();
    let g = Gguf::parse(&bytes).expect("the writer writes valid GGUF");
    if let Ok(tok) = Tokenizer::from_gguf(&g) {
        exercise(&tok, &v.texts, &v.ids);
    }
});
