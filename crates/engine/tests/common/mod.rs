//! Shared by the engine tests: a stand-in embedder and the repository's files.

#![allow(dead_code)]

use engine::{ChatEngine, ChatModel, ChatStore, Message, TurnEvent};
use memory::{EMBEDDING_DIM, Embedding, InMemoryStore, Memory, TextEmbedder};
use serde_json::json;

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

/// Run the turn under way to its end; the reply as stored.
pub async fn finish_reply<C: ChatStore, M: ChatModel>(chat: &mut ChatEngine<C>, model: &mut M, mem: &mut Memory<WordHashEmbedder, InMemoryStore>) -> Message {
    let mut stored = None;
    while let Some(event) = chat.next_event(model, mem).await.expect("event") {
        if let TurnEvent::Done { message, .. } = event {
            stored = message;
        }
    }
    stored.expect("a stored reply")
}

/// A V3 card: Mira, who keeps a garden, with her inner thoughts on or off.
pub fn garden_card(thoughts: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": "Mira", "description": "{{char}} keeps a garden.", "personality": "", "scenario": "",
            "first_mes": "Welcome, {{user}}.", "mes_example": "", "alternate_greetings": [], "group_only_greetings": [],
            "extensions": { "confidant": { "inner_thoughts": { "enabled": thoughts, "strip_from_history": true } } }
        }
    }))
    .expect("json")
}
