//! Hostile cards through the engine: a name over the cap is refused with `card_format`; a
//! greeting of 100k `{{char}}` with the longest allowed name starts a chat whose greeting
//! stays within the macro cap instead of growing to hundreds of megabytes.

use engine::{ChatEngine, EngineSettings, InMemoryChatStore};
use persona::limits::{MAX_MACRO_GROWTH_BYTES, MAX_NAME_BYTES};
use serde_json::json;

fn card(name: &str, greeting: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"spec": "chara_card_v2", "data": {"name": name, "first_mes": greeting}})).unwrap()
}

#[test]
fn greetings_and_names_are_capped() {
    pollster::block_on(async {
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
        let err = chat.import_character(&card(&"N".repeat(MAX_NAME_BYTES + 1), "hi")).await.unwrap_err();
        assert_eq!(err.code(), "card_format");

        let greeting = "{{char}}".repeat(100_000);
        let character = chat.import_character(&card(&"N".repeat(MAX_NAME_BYTES), &greeting)).await.unwrap();
        let started = std::time::Instant::now();
        let session = chat.create_session(&character.id, "Sam", 0).await.unwrap();
        assert!(started.elapsed().as_secs() < 5);
        let raw = &session.messages[0].raw;
        assert!(raw.len() <= greeting.len() + MAX_MACRO_GROWTH_BYTES, "{} bytes", raw.len());
        // A patch cannot sneak a long name in either.
        let err = chat.update_character(&character.id, &json!({"name": "N".repeat(MAX_NAME_BYTES + 1)})).await.unwrap_err();
        assert_eq!(err.code(), "card_format");
    });
}
