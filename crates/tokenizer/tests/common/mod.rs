//! Shared by the integration tests: fixture loading and the streaming check.

#![allow(dead_code)]

use confidant_tokenizer::{StreamDecoder, Tokenizer};
use serde_json::Value as Json;

pub fn fixture(name: &str) -> Json {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn ids(value: &Json) -> Vec<u32> {
    value.as_array().expect("an array of ids").iter().map(|v| v.as_u64().expect("an id") as u32).collect()
}

/// The four `llama_tokenize` settings each fixture case was tokenized with.
pub const SETTINGS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

pub fn setting_key(add_special: bool, parse_special: bool) -> String {
    format!("add_special={add_special},parse_special={parse_special}")
}

/// Decoding one id at a time must give exactly the whole-sequence decode.
pub fn assert_stream_matches_decode(tok: &Tokenizer, ids: &[u32], skip_special: bool, what: &str) {
    let mut stream = StreamDecoder::new(skip_special);
    let mut streamed = String::new();
    for &id in ids {
        streamed.push_str(&stream.push(tok, id).unwrap());
    }
    streamed.push_str(&stream.finish());
    assert_eq!(
        streamed,
        tok.decode(ids, skip_special).unwrap(),
        "stream vs decode of {what} (skip_special={skip_special})"
    );
}

/// Checks every case of a fixture written by make_token_fixture.py against `tok`.
pub fn check_token_cases(tok: &Tokenizer, fixture: &Json) {
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    for case in cases {
        let text = case["text"].as_str().expect("text");
        for (add_special, parse_special) in SETTINGS {
            let expected = ids(&case[setting_key(add_special, parse_special)]);
            let got = tok.encode(text, add_special, parse_special).unwrap();
            assert_eq!(got, expected, "encode({text:?}, add_special={add_special}, parse_special={parse_special})");
        }
        let full = ids(&case[setting_key(true, true)]);
        assert_eq!(
            tok.decode(&full, true).unwrap(),
            case["detokenize_skip_special"].as_str().unwrap(),
            "decode(skip_special) of {text:?} vs llama_detokenize"
        );
        assert_eq!(
            tok.decode(&full, false).unwrap(),
            case["detokenize_render_special"].as_str().unwrap(),
            "decode(render special) of {text:?} vs llama_detokenize"
        );
        assert_eq!(
            tok.decode(&ids(&case[setting_key(false, false)]), true).unwrap(),
            case["detokenize_plain"].as_str().unwrap(),
            "decode of {text:?} tokenized without special tokens vs llama_detokenize"
        );
        for skip_special in [true, false] {
            assert_stream_matches_decode(tok, &full, skip_special, text);
            assert_stream_matches_decode(tok, &ids(&case[setting_key(false, false)]), skip_special, text);
        }
    }
}

/// llama.cpp's answers about the vocabulary, recorded in the fixture.
pub fn check_vocab_facts(tok: &Tokenizer, fixture: &Json) {
    let n = fixture["vocab_size"].as_u64().unwrap() as usize;
    assert_eq!(tok.vocab_size(), n);
    assert_eq!(tok.bos_id(), Some(fixture["bos"].as_u64().unwrap() as u32));
    assert_eq!(tok.eos_id(), Some(fixture["eos"].as_u64().unwrap() as u32));
    assert_eq!(tok.adds_bos(), fixture["add_bos"].as_bool().unwrap());
    assert_eq!(tok.adds_eos(), fixture["add_eos"].as_bool().unwrap());
    let eog: Vec<u32> = tok.end_of_generation_ids().collect();
    assert_eq!(eog, ids(&fixture["eog"]), "end-of-generation ids");
    for id in 0..n as u32 {
        assert_eq!(tok.is_end_of_generation(id), eog.contains(&id));
    }
    let control: Vec<u32> = (0..n as u32).filter(|&id| tok.is_control(id)).collect();
    assert_eq!(control, ids(&fixture["control"]), "control tokens");
}
