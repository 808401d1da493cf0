//! Shared by the engine tests: a stand-in embedder and the repository's files.

#![allow(dead_code)]

use memory::{EMBEDDING_DIM, Embedding, TextEmbedder};

mod scripted;
#[allow(unused_imports)] // not every test file drives a model
pub use scripted::ScriptedModel;

/// Each word lights one dimension: enough for memories to be written and found.
pub struct WordHashEmbedder;

impl TextEmbedder for WordHashEmbedder {
    async fn embed(&self, texts: &[&str]) -> memory::Result<Vec<Embedding>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = [0.0f32; EMBEDDING_DIM];
                for word in t.split_whitespace() {
                    let h = word.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                    v[(h % EMBEDDING_DIM as u64) as usize] += 1.0;
                }
                v[0] += 0.01;
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.map(|x| x / norm)
            })
            .collect())
    }
}

/// A file from the repository (a model fetched by models/fetch.sh, a fixture).
pub fn read(relative: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run models/fetch.sh first", path.display()))
}
