//! all-MiniLM-L6-v2 on burn, on the GPU and on the CPU, against sentence-transformers (fixture
//! made by `fixtures/make_embedding_fixture.py`): same token ids, cosine ≥ 0.999 per sentence,
//! and batching changes nothing.

mod common;

use common::{cosine, embedder, embedder_on};
use memory::EMBEDDING_DIM;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    max_seq_length: usize,
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    text: String,
    token_ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embedding_reference.json");
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON")
}

#[test]
fn matches_sentence_transformers_on_the_gpu() {
    matches_sentence_transformers(&embedder_on(&common::device()));
}

#[test]
fn matches_sentence_transformers_on_the_cpu() {
    matches_sentence_transformers(&embedder());
}

fn matches_sentence_transformers(model: &memory::Embedder) {
    let fixture = fixture();
    assert_eq!(model.max_tokens(), fixture.max_seq_length);
    for s in &fixture.sentences {
        assert_eq!(model.tokenize(&s.text).unwrap(), s.token_ids, "token ids of {:?}", s.text);
    }
    let texts: Vec<&str> = fixture.sentences.iter().map(|s| s.text.as_str()).collect();
    let vectors = pollster::block_on(model.embed(&texts)).unwrap();
    let mut worst = f32::INFINITY;
    for (s, v) in fixture.sentences.iter().zip(&vectors) {
        assert_eq!(s.embedding.len(), EMBEDDING_DIM);
        let c = cosine(v, &s.embedding);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let short: String = s.text.chars().take(40).collect();
        eprintln!("cosine {c:.7}  norm {norm:.6}  {} tokens  {short:?}", s.token_ids.len());
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
        assert!(c >= 0.999, "cosine {c} for {:?}", s.text);
        worst = worst.min(c);
    }
    eprintln!("lowest cosine: {worst:.7}");
}

#[test]
fn batching_changes_nothing() {
    let fixture = fixture();
    let model = embedder();
    let texts: Vec<&str> = fixture.sentences.iter().map(|s| s.text.as_str()).collect();
    let batched = pollster::block_on(model.embed(&texts)).unwrap();
    let mut worst = f32::INFINITY;
    for (text, b) in texts.iter().zip(&batched) {
        let single = pollster::block_on(model.embed(&[text])).unwrap();
        let c = cosine(&single[0], b);
        let max_diff = single[0].iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(c >= 0.99999 && max_diff < 1e-4, "{text:?}: cosine {c}, max difference {max_diff}");
        worst = worst.min(c);
    }
    eprintln!("lowest cosine batched vs one by one: {worst:.8}");
    // Order is kept however the batch is sorted internally; no texts, no vectors.
    let reversed: Vec<&str> = texts.iter().rev().copied().collect();
    let again = pollster::block_on(model.embed(&reversed)).unwrap();
    for (a, b) in again.iter().rev().zip(&batched) {
        assert!(cosine(a, b) >= 0.99999);
    }
    assert!(pollster::block_on(model.embed(&[])).unwrap().is_empty());
}

#[test]
fn rejects_broken_model_files() {
    let device = common::cpu();
    let config = std::fs::read(common::repo_path("models/all-MiniLM-L6-v2/config.json")).unwrap();
    let tokenizer = std::fs::read(common::repo_path("models/all-MiniLM-L6-v2/tokenizer.json")).unwrap();
    let err = memory::Embedder::load(b"not safetensors", &tokenizer, &config, &device).err().expect("garbage weights fail");
    assert_eq!(err.code(), "embedder_format");
    let err = memory::Embedder::load(b"", &tokenizer, b"{}", &device).err().expect("empty config fails");
    assert_eq!(err.code(), "embedder_format");
    let err = memory::Embedder::load(b"", b"{", &config, &device).err().expect("bad tokenizer fails");
    assert_eq!(err.code(), "embedder_format");
}
