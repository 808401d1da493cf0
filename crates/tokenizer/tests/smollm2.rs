//! The real default model (SmolLM2-135M-Instruct, byte-level BPE with the "smollm"
//! pre-tokenizer) against llama.cpp's ids and jinja2's template renderings, recorded by
//! tests/fixtures/make_token_fixture.py.

mod common;

use std::sync::OnceLock;

use common::{check_token_cases, check_vocab_facts, fixture, ids};
use confidant_tokenizer::{ChatMessage, ChatTemplate, ModelKind, PreTokenizer, Tokenizer};
use gguf::Gguf;
use serde_json::Value as Json;

fn model() -> &'static Gguf {
    static MODEL: OnceLock<Gguf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/SmolLM2-135M-Instruct-Q4_1.gguf");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; run models/fetch.sh first"));
        Gguf::parse(&bytes).unwrap()
    })
}

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| Tokenizer::from_gguf(model()).unwrap())
}

fn smollm2_fixture() -> &'static Json {
    static FIXTURE: OnceLock<Json> = OnceLock::new();
    FIXTURE.get_or_init(|| fixture("smollm2_tokens.json"))
}

fn messages(value: &Json) -> Vec<ChatMessage> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

#[test]
fn token_ids_match_llama_cpp() {
    check_token_cases(tokenizer(), smollm2_fixture());
}

#[test]
fn vocabulary_facts_match_llama_cpp() {
    let tok = tokenizer();
    check_vocab_facts(tok, smollm2_fixture());
    assert_eq!(tok.model_kind(), ModelKind::Bpe);
    assert_eq!(tok.pre_tokenizer(), Some(PreTokenizer::StarCoder));
    assert!(tok.pre_tokenizer_recognized());
    assert_eq!(tok.token_text(1), Some("<|im_start|>"));
    assert_eq!(tok.token_id("<|im_end|>"), Some(2));
    assert_eq!(tok.token_text(49152), None);
}

#[test]
fn end_of_turn_is_im_end() {
    // llama.cpp picks whichever EOT-looking token its hash map yields first (here
    // <|endoftext|>, as the fixture records); the chat turn terminator is what a chat needs.
    let tok = tokenizer();
    assert_eq!(smollm2_fixture()["eot"].as_u64(), Some(0));
    assert_eq!(tok.eot_id(), tok.token_id("<|im_end|>"));
    for text in ["<|im_end|>", "<|endoftext|>"] {
        assert!(tok.is_end_of_generation(tok.token_id(text).unwrap()), "{text}");
    }
    assert!(!tok.is_end_of_generation(tok.token_id("<|im_start|>").unwrap()));
}

#[test]
fn text_round_trips_through_encode_and_decode() {
    let tok = tokenizer();
    for case in smollm2_fixture()["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        // Without special-token parsing every character is ordinary text.
        let plain = tok.encode(text, false, false).unwrap();
        assert_eq!(tok.decode(&plain, false).unwrap(), text);
        assert_eq!(tok.decode(&plain, true).unwrap(), text);
        // With it, control tokens come back as their text unless skipped.
        let parsed = tok.encode(text, false, true).unwrap();
        assert_eq!(tok.decode(&parsed, false).unwrap(), text);
    }
}

#[test]
fn special_tokens_are_single_ids_only_when_parsed() {
    let tok = tokenizer();
    assert_eq!(tok.encode("<|im_start|>", false, true).unwrap(), [1]);
    assert!(tok.encode("<|im_start|>", false, false).unwrap().len() > 1);
    let ids = tok.encode("<|im_start|>user\nHi<|im_end|>", false, true).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHi");
}

#[test]
fn stream_decoder_holds_back_split_characters() {
    let tok = tokenizer();
    // Byte-level BPE spells this emoji with pieces that are not whole UTF-8 sequences.
    let ids = tok.encode("🇫🇷🙂", false, false).unwrap();
    assert!(ids.len() > 2);
    let mut stream = confidant_tokenizer::StreamDecoder::new(true);
    let pieces: Vec<String> = ids.iter().map(|&id| stream.push(tok, id).unwrap()).collect();
    assert!(pieces.iter().any(String::is_empty), "some piece waited for the rest of a character: {pieces:?}");
    assert!(!stream.has_pending());
    assert_eq!(pieces.concat(), "🇫🇷🙂");
    // Out-of-range ids are an error, not a panic.
    assert!(stream.push(tok, 1_000_000).is_err());
    assert!(tok.decode(&[1_000_000], false).is_err());
}

#[test]
fn chat_template_matches_jinja2() {
    let template = ChatTemplate::from_gguf(model()).unwrap();
    assert!(!template.is_fallback());
    let cases = smollm2_fixture()["chat_template"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let rendered =
            template.render(&messages(&case["messages"]), case["add_generation_prompt"].as_bool().unwrap()).unwrap();
        assert_eq!(rendered, case["expected"].as_str().unwrap(), "{}", case["name"]);
    }
}

#[test]
fn system_user_prompt_renders_and_tokenizes_like_llama_cpp() {
    let template = ChatTemplate::from_gguf(model()).unwrap();
    let prompt = template
        .render(
            &[
                ChatMessage::new("system", "You are Mira, a cheerful travel companion."),
                ChatMessage::new("user", "Where should I go in Lisbon? 🙂"),
            ],
            true,
        )
        .unwrap();
    assert!(prompt.ends_with("<|im_start|>assistant\n"));
    let case = smollm2_fixture()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["text"].as_str() == Some(prompt.as_str()))
        .expect("the fixture tokenizes the rendered prompt");
    assert_eq!(tokenizer().encode(&prompt, true, true).unwrap(), ids(&case["add_special=true,parse_special=true"]));
}

#[test]
fn template_features_match_jinja2() {
    let feature = &smollm2_fixture()["feature_template"];
    let template = ChatTemplate::new(feature["source"].as_str().unwrap(), "<s>", "</s>").unwrap();
    for case in feature["cases"].as_array().unwrap() {
        let rendered =
            template.render(&messages(&case["messages"]), case["add_generation_prompt"].as_bool().unwrap()).unwrap();
        assert_eq!(rendered, case["expected"].as_str().unwrap(), "{}", case["name"]);
    }
}
