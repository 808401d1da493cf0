//! Everything a page does before any model is downloaded: import a card, list and edit
//! characters, open a chat (its greeting), read and trim its history, export a card and a backup,
//! restore a backup, remove and wipe. None of it may touch a model or embed a text: the embedder
//! here fails every call, and no `Generator` exists.

use engine::{CardFormat, ChatEngine, EngineSettings, InMemoryChatStore};
use memory::{Embedding, InMemoryStore, ListFilter, Memory, MemoryConfig, MemoryError, MemoryKind, MemoryRecord, TextEmbedder};
use persona::ExportSpec;
use serde_json::json;

/// An embedder that is not there: any call is a test failure (and an error, not a panic, so a
/// stray call shows up as the error it would be in the browser).
struct NoEmbedder;

impl TextEmbedder for NoEmbedder {
    async fn embed(&self, texts: &[&str]) -> memory::Result<Vec<Embedding>> {
        Err(MemoryError::BadRequest(format!("embedded {texts:?} without a model")))
    }
}

fn card(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": name,
            "description": "{{char}} mends nets on the harbour wall.",
            "personality": "patient",
            "scenario": "",
            "first_mes": "Pass me that rope, {{user}}.",
            "mes_example": "",
            "alternate_greetings": ["Tide's turning, {{user}}."]
        }
    }))
    .expect("json")
}

#[test]
fn characters_sessions_and_backups_without_a_model() {
    pollster::block_on(async {
        let mut mem = Memory::open(NoEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
        // A clock that moves: characters list in the order they were made (two imports within
        // one millisecond would otherwise be ordered by their random ids).
        let tick = std::cell::Cell::new(1_000u64);
        chat.set_clock(move || {
            tick.set(tick.get() + 1);
            tick.get()
        });

        let ada = chat.import_character(&card("Ada")).await.expect("import");
        let bo = chat.import_character(&card("Bo")).await.expect("import");
        let names: Vec<String> = chat.list_characters().await.expect("list").iter().map(|c| c.character().expect("card").name).collect();
        assert_eq!(names, ["Ada", "Bo"]);
        let edited = chat.update_character(&ada.id, &json!({ "personality": "brisk" })).await.expect("update");
        assert_eq!(edited.character().expect("card").personality, "brisk");

        // A chat opens on its greeting; the alternate one can be shown; the history reads back.
        let session = chat.create_session(&ada.id, "Sam", 0).await.expect("session");
        assert_eq!(session.messages.len(), 1);
        assert_eq!(session.messages[0].text, "Pass me that rope, Sam.");
        let greeting = chat.set_greeting(&session.id, 1).await.expect("greeting");
        assert_eq!(greeting.text, "Tide's turning, Sam.");
        assert_eq!(chat.session(&session.id).await.expect("history").messages[0].text, "Tide's turning, Sam.");

        // The card as a file, in both formats.
        let json_card = chat.export_character(&ada.id, CardFormat::Json, ExportSpec::V3).await.expect("json card");
        assert!(String::from_utf8_lossy(&json_card).contains("brisk"));
        let png = chat.export_character(&ada.id, CardFormat::Png, ExportSpec::V2).await.expect("png card");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

        // A backup holding a memory (with its vector) restores without embedding anything.
        let mut backup = chat.export_all(&mem).await.expect("export");
        let mut embedding = vec![0.0f32; memory::EMBEDDING_DIM];
        embedding[7] = 1.0;
        let record = MemoryRecord {
            id: "m1".into(),
            character_id: ada.id.clone(),
            session_id: Some(session.id.clone()),
            kind: MemoryKind::UserFact,
            text: "Sam's boat is called Heron.".into(),
            embedding,
            created_at: 1,
            last_accessed: 1,
            importance: 0.8,
            pinned: false,
            source_message_ids: Vec::new(),
        };
        let record = memory::record::encode_record(&record).expect("encode");
        backup["memories"] = json!([record]);
        chat.wipe_stored(&mut mem).await.expect("wipe");
        assert!(chat.list_characters().await.expect("list").is_empty());
        let counts = chat.import_all(&mut mem, &backup, false).await.expect("import backup");
        assert_eq!((counts.characters, counts.sessions, counts.memories), (2, 1, 1));
        let listed = mem.list(ListFilter { character_id: Some(ada.id.clone()), ..Default::default() }).await.expect("memories");
        assert_eq!(listed.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["Sam's boat is called Heron."]);

        // Removing a chat takes its memories along; removing a character its chats.
        chat.remove_session(&mut mem, &session.id).await.expect("remove session");
        assert!(mem.list(ListFilter::default()).await.expect("memories").is_empty());
        chat.remove_character(&mut mem, &bo.id).await.expect("remove character");
        assert_eq!(chat.list_characters().await.expect("list").len(), 1);
        chat.wipe_stored(&mut mem).await.expect("wipe");
        assert!(chat.list_characters().await.expect("list").is_empty());
        assert!(chat.list_sessions(None).await.expect("sessions").is_empty());
    });
}
