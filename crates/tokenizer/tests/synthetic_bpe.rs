//! Small byte-level BPE vocabularies built in memory: every pre-tokenizer family compiles and
//! round-trips text, and broken metadata gives errors rather than panics.

use confidant_tokenizer::{PreTokenizer, Tokenizer, TokenizerError};
use gguf::{Array, Gguf, GgufError, GgufWriter, Value};

/// GPT-2's byte-to-character table: the 256 single-character tokens of a byte-level vocabulary.
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
            char::from_u32(c).unwrap().to_string()
        })
        .collect()
}

struct Spec {
    model: &'static str,
    pre: Option<&'static str>,
    merges: Option<Vec<&'static str>>,
    tokens: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Self { model: "gpt2", pre: Some("gpt-2"), merges: Some(vec!["Ġ t", "h e", "Ġt he", "1 2"]), tokens: true }
    }
}

const EXTRA_TOKENS: [&str; 5] = ["Ġt", "he", "Ġthe", "12", "<|im_start|>"];

fn build(spec: Spec) -> Result<Tokenizer, TokenizerError> {
    let mut tokens = byte_chars();
    tokens.extend(EXTRA_TOKENS.iter().map(|t| t.to_string()));
    let mut types = vec![1i32; tokens.len()];
    *types.last_mut().unwrap() = 3;
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()))
        .metadata("tokenizer.ggml.model", Value::String(spec.model.into()));
    if let Some(pre) = spec.pre {
        w.metadata("tokenizer.ggml.pre", Value::String(pre.into()));
    }
    if spec.tokens {
        w.metadata("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
            .metadata("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    }
    if let Some(merges) = spec.merges {
        let merges = merges.into_iter().map(String::from).collect();
        w.metadata("tokenizer.ggml.merges", Value::Array(Array::String(merges)));
    }
    w.metadata("tokenizer.ggml.bos_token_id", Value::U32(260)).metadata("tokenizer.ggml.eos_token_id", Value::U32(260));
    Tokenizer::from_gguf(&Gguf::parse(&w.to_bytes()).unwrap())
}

const SAMPLE: &str = "the theme: 1234 apples,  don't\tstop!\n\n日本 🙂 (x+y)^2 |a|";

#[test]
fn every_pre_tokenizer_family_builds_and_round_trips() {
    let families = [
        (None, PreTokenizer::Default),
        (Some("default"), PreTokenizer::Default),
        (Some("gpt-2"), PreTokenizer::Gpt2),
        (Some("smollm"), PreTokenizer::StarCoder),
        (Some("llama-bpe"), PreTokenizer::Llama3),
        (Some("llama3"), PreTokenizer::Llama3),
        (Some("dbrx"), PreTokenizer::Dbrx),
        (Some("qwen2"), PreTokenizer::Qwen2),
        (Some("qwen35"), PreTokenizer::Qwen35),
        (Some("glm4"), PreTokenizer::ChatGlm4),
        (Some("falcon"), PreTokenizer::Falcon),
        (Some("deepseek-coder"), PreTokenizer::DeepseekCoder),
        (Some("bloom"), PreTokenizer::Bloom),
    ];
    for (name, family) in families {
        let tok = build(Spec { pre: name, ..Spec::default() }).unwrap();
        assert_eq!(tok.pre_tokenizer(), Some(family), "{name:?}");
        assert!(tok.pre_tokenizer_recognized());
        let ids = tok.encode(SAMPLE, false, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), SAMPLE, "{name:?}");
    }
}

#[test]
fn unknown_pre_tokenizer_falls_back_to_gpt2() {
    let tok = build(Spec { pre: Some("something-new"), ..Spec::default() }).unwrap();
    assert_eq!(tok.pre_tokenizer(), Some(PreTokenizer::Gpt2));
    assert!(!tok.pre_tokenizer_recognized());
    let ids = tok.encode(SAMPLE, false, false).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), SAMPLE);
}

#[test]
fn merges_and_digit_splitting_apply() {
    let gpt2 = build(Spec::default()).unwrap();
    let the = gpt2.token_id("Ġthe").unwrap();
    let twelve = gpt2.token_id("12").unwrap();
    assert_eq!(gpt2.encode(" the", false, false).unwrap(), [the]);
    assert_eq!(gpt2.encode("12", false, false).unwrap(), [twelve]);
    // StarCoder/SmolLM split every digit before BPE, so "12" cannot merge.
    let smollm = build(Spec { pre: Some("smollm"), ..Spec::default() }).unwrap();
    assert_eq!(smollm.encode("12", false, false).unwrap().len(), 2);
    // Llama 3 adds BOS by default.
    let llama3 = build(Spec { pre: Some("llama-bpe"), ..Spec::default() }).unwrap();
    assert!(llama3.adds_bos());
    assert_eq!(llama3.encode("x", true, false).unwrap()[0], 260);
    assert!(!gpt2.adds_bos());
}

#[test]
fn missing_tokens_key_is_an_error() {
    let err = build(Spec { tokens: false, ..Spec::default() }).unwrap_err();
    assert_eq!(err, TokenizerError::Gguf(GgufError::MissingKey("tokenizer.ggml.tokens".into())));
}

#[test]
fn missing_merges_key_is_an_error() {
    let err = build(Spec { merges: None, ..Spec::default() }).unwrap_err();
    assert_eq!(err, TokenizerError::Gguf(GgufError::MissingKey("tokenizer.ggml.merges".into())));
}

#[test]
fn malformed_merges_are_errors() {
    let err = build(Spec { merges: Some(vec!["Ġ t", "he"]), ..Spec::default() }).unwrap_err();
    assert!(matches!(err, TokenizerError::BadMerge { index: 1, .. }), "{err}");
    let err = build(Spec { merges: Some(vec!["", "h e"]), ..Spec::default() }).unwrap_err();
    assert!(matches!(err, TokenizerError::BadMerge { index: 0, .. }), "{err}");
    let err = build(Spec { merges: Some(vec!["t h"]), ..Spec::default() }).unwrap_err();
    assert!(matches!(&err, TokenizerError::BadMerge { reason, .. } if reason.contains("\"th\"")), "{err}");
}

#[test]
fn unsupported_model_type_is_named() {
    let err = build(Spec { model: "bert", ..Spec::default() }).unwrap_err();
    assert_eq!(err, TokenizerError::Unsupported("bert".into()));
    assert!(err.to_string().contains("\"bert\""));
}

#[test]
fn wrong_metadata_types_are_errors() {
    let mut w = GgufWriter::new();
    w.metadata("tokenizer.ggml.model", Value::String("llama".into()))
        .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(vec!["a".into(), "b".into()])))
        .metadata("tokenizer.ggml.scores", Value::Array(Array::String(vec!["x".into(), "y".into()])));
    let err = Tokenizer::from_gguf(&Gguf::parse(&w.to_bytes()).unwrap()).unwrap_err();
    assert!(matches!(&err, TokenizerError::BadMetadata { key, .. } if key == "tokenizer.ggml.scores"), "{err}");

    let mut w = GgufWriter::new();
    w.metadata("tokenizer.ggml.model", Value::String("llama".into()))
        .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(vec!["a".into(), "a".into()])));
    let err = Tokenizer::from_gguf(&Gguf::parse(&w.to_bytes()).unwrap()).unwrap_err();
    assert!(matches!(err, TokenizerError::DuplicateToken { first: 0, second: 1, .. }), "{err}");

    // SentencePiece adds BOS by default, so a vocabulary too small for the default id 1 fails.
    let mut w = GgufWriter::new();
    w.metadata("tokenizer.ggml.model", Value::String("llama".into()))
        .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(vec!["a".into()])));
    let err = Tokenizer::from_gguf(&Gguf::parse(&w.to_bytes()).unwrap()).unwrap_err();
    assert!(matches!(&err, TokenizerError::BadMetadata { key, .. } if key == "tokenizer.ggml.add_bos_token"), "{err}");
}

/// A byte-level BPE GGUF with `extra` tokens after the 256 byte tokens (of type `extra_type`)
/// and `merges`.
fn with_tokens(extra: Vec<String>, extra_type: i32, merges: Vec<String>) -> Result<Tokenizer, TokenizerError> {
    let mut tokens = byte_chars();
    let mut types = vec![1i32; tokens.len()];
    types.extend(std::iter::repeat_n(extra_type, extra.len()));
    tokens.extend(extra);
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()))
        .metadata("tokenizer.ggml.model", Value::String("gpt2".into()))
        .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
        .metadata("tokenizer.ggml.token_type", Value::Array(Array::I32(types)))
        .metadata("tokenizer.ggml.merges", Value::Array(Array::String(merges)));
    Tokenizer::from_gguf(&Gguf::parse(&w.to_bytes()).unwrap())
}

fn too_large(result: Result<Tokenizer, TokenizerError>) -> (u64, u64) {
    match result {
        Err(TokenizerError::TooLarge { size, limit, .. }) => (size, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn tokenizer_metadata_is_bounded() {
    use confidant_tokenizer::limits::{MAX_MERGES, MAX_SPECIAL_TOKENS, MAX_TOKEN_BYTES, MAX_VOCAB_TOKENS};
    // Within every limit, a vocabulary builds.
    assert!(with_tokens(vec!["x".repeat(MAX_TOKEN_BYTES)], 1, vec![]).is_ok());
    let specials: Vec<String> = (0..MAX_SPECIAL_TOKENS - 8).map(|i| format!("<s{i}>")).collect();
    assert!(with_tokens(specials, 3, vec![]).is_ok());

    let (size, limit) = too_large(with_tokens(vec!["x".repeat(MAX_TOKEN_BYTES + 1)], 1, vec![]));
    assert_eq!((size, limit), (MAX_TOKEN_BYTES as u64 + 1, MAX_TOKEN_BYTES as u64));
    let specials: Vec<String> = (0..=MAX_SPECIAL_TOKENS).map(|i| format!("<s{i}>")).collect();
    assert_eq!(too_large(with_tokens(specials, 3, vec![])).1, MAX_SPECIAL_TOKENS as u64);
    let many: Vec<String> = (0..MAX_VOCAB_TOKENS).map(|i| format!("t{i}")).collect();
    assert_eq!(too_large(with_tokens(many, 1, vec![])).1, MAX_VOCAB_TOKENS as u64);
    let merges = vec!["Ġ t".to_string(); MAX_MERGES + 1];
    assert_eq!(too_large(with_tokens(vec!["Ġt".into()], 1, merges)).1, MAX_MERGES as u64);
}
