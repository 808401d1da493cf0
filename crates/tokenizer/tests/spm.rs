//! A small synthetic SentencePiece ("llama") vocabulary: byte tokens, "▁", scored pieces,
//! control and user-defined tokens. The vocabulary and llama.cpp's ids for it are in
//! tests/fixtures/spm_tokens.json (written by make_token_fixture.py, which loads the same
//! vocabulary into llama.cpp).

mod common;

use common::{check_token_cases, check_vocab_facts, fixture};
use confidant_tokenizer::{ModelKind, StreamDecoder, Tokenizer};
use gguf::{Array, Gguf, GgufWriter, Value};
use serde_json::Value as Json;

fn spm_gguf(fixture: &Json) -> Vec<u8> {
    let tokens = fixture["tokens"].as_array().unwrap();
    let texts = tokens.iter().map(|t| t["text"].as_str().unwrap().to_string()).collect();
    let scores = tokens.iter().map(|t| t["score"].as_f64().unwrap() as f32).collect();
    let types = tokens.iter().map(|t| t["type"].as_i64().unwrap() as i32).collect();
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()))
        .metadata("tokenizer.ggml.model", Value::String("llama".into()))
        .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(texts)))
        .metadata("tokenizer.ggml.scores", Value::Array(Array::F32(scores)))
        .metadata("tokenizer.ggml.token_type", Value::Array(Array::I32(types)))
        .metadata("tokenizer.ggml.bos_token_id", Value::U32(1))
        .metadata("tokenizer.ggml.eos_token_id", Value::U32(2))
        .metadata("tokenizer.ggml.unknown_token_id", Value::U32(0));
    w.to_bytes()
}

fn tokenizer() -> (Tokenizer, Json) {
    let fixture = fixture("spm_tokens.json");
    let bytes = spm_gguf(&fixture);
    (Tokenizer::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap(), fixture)
}

fn texts(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&id| tok.token_text(id).unwrap().to_string()).collect()
}

#[test]
fn token_ids_match_llama_cpp() {
    let (tok, fixture) = tokenizer();
    assert_eq!(tok.model_kind(), ModelKind::Spm);
    assert_eq!(tok.pre_tokenizer(), None);
    check_vocab_facts(&tok, &fixture);
    check_token_cases(&tok, &fixture);
    // Here llama.cpp's EOT detection has a single candidate, so the two agree.
    assert_eq!(tok.eot_id(), Some(fixture["eot"].as_u64().unwrap() as u32));
}

#[test]
fn merges_follow_scores_and_bytes_fall_back() {
    let (tok, _) = tokenizer();
    let pieces = |text: &str| texts(&tok, &tok.encode(text, false, false).unwrap());
    // "▁" is prepended and spaces become "▁"; the best-scoring pairs merge first.
    assert_eq!(pieces("the hello"), ["▁the", "▁", "he", "ll", "o"]);
    assert_eq!(pieces("héllo"), ["▁hé", "ll", "o"]);
    // "ab" and "bc" score the same: the leftmost pair wins, then "ab"+"c" makes "abc".
    assert_eq!(pieces("abc"), ["▁", "abc"]);
    // Characters outside the vocabulary are spelled as their UTF-8 bytes.
    assert_eq!(pieces("漢"), ["▁", "<0xE6>", "<0xBC>", "<0xA2>"]);
    assert_eq!(pieces("a\nb"), ["▁a", "<0x0A>", "b"]);
    // BOS is added by default for SentencePiece.
    assert_eq!(tok.encode("hé", true, false).unwrap()[0], 1);
}

#[test]
fn decode_drops_the_added_space_and_joins_bytes() {
    let (tok, _) = tokenizer();
    for text in ["hello world", " hello", "héllo 漢字 🙂", "a\nb\tc", "xyz"] {
        let ids = tok.encode(text, false, false).unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), text);
    }
    // Byte tokens of one character arrive one at a time; the stream waits for the last.
    let ids = tok.encode("漢", false, false).unwrap();
    let mut stream = StreamDecoder::new(true);
    let out: Vec<String> = ids.iter().map(|&id| stream.push(&tok, id).unwrap()).collect();
    assert_eq!(out, ["", "", "", "漢"]);
    // A sequence cut short is replaced at the end, as decode replaces it.
    let mut stream = StreamDecoder::new(true);
    assert_eq!(stream.push(&tok, ids[1]).unwrap(), "");
    assert_eq!(stream.push(&tok, ids[2]).unwrap(), "");
    assert!(stream.has_pending());
    assert_eq!(stream.finish(), "\u{FFFD}");
    assert_eq!(tok.decode(&ids[1..3], true).unwrap(), "\u{FFFD}");
}

#[test]
fn user_defined_tokens_match_even_without_parse_special() {
    let (tok, _) = tokenizer();
    let tool = tok.token_id("<tool>").unwrap();
    assert!(tok.encode("x<tool>y", false, false).unwrap().contains(&tool));
    let im_start = tok.token_id("<|im_start|>").unwrap();
    assert!(!tok.encode("<|im_start|>", false, false).unwrap().contains(&im_start));
    assert_eq!(tok.encode("<|im_start|>", false, true).unwrap(), [im_start]);
}
