//! Persona notes (CharacterGPT): after each rolling summary the character writes one note in
//! its own words, kept on the character (not in its card) and shown late in its prompt; the
//! user edits them through the character patch. Scripted model.

mod common;

use common::{ScriptedModel, WordHashEmbedder};
use engine::{CardFormat, ChatEngine, EngineSettings, InMemoryChatStore, ReplyOptions, TurnEvent};
use llm::SamplingParams;
use memory::{InMemoryStore, Memory, MemoryConfig};
use persona::{ExportSpec, SectionKind};
use serde_json::json;

type Mem = Memory<WordHashEmbedder, InMemoryStore>;

async fn send(chat: &mut ChatEngine<InMemoryChatStore>, model: &mut ScriptedModel, mem: &mut Mem, sid: &str, text: &str, options: &ReplyOptions) {
    chat.begin_send(model, sid, text, options).await.expect("send");
    while let Some(event) = chat.next_event(model, mem).await.expect("event") {
        assert!(!matches!(event, TurnEvent::Done { message: None, .. }));
    }
}

#[test]
fn a_note_follows_each_summary_reaches_the_prompt_and_can_be_edited() {
    pollster::block_on(async {
        let card = json!({
            "spec": "chara_card_v3", "spec_version": "3.0",
            "data": { "name": "Mira", "description": "{{char}} keeps a garden.", "personality": "", "scenario": "", "first_mes": "Hello {{user}}.",
                      "mes_example": "", "alternate_greetings": [], "group_only_greetings": [] }
        });
        let mut model = ScriptedModel::new(2048, vec!["The roses are fine.".to_string(); 20]);
        let mut mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let settings = EngineSettings { summarize_every: 4, keep_recent: 2, ..EngineSettings::default() };
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), settings);
        let character = chat.import_character(&serde_json::to_vec(&card).expect("json")).await.expect("import");
        let sid = chat.create_session(&character.id, "Sam", 0).await.expect("session").id;
        let options = &ReplyOptions { max_tokens: 20, sampling: SamplingParams::greedy() };
        for text in ["Hi Mira.", "How are the roses?", "Can I help with the weeding?", "Thank you for the tea."] {
            send(&mut chat, &mut model, &mut mem, &sid, text, options).await;
            while chat.background_step(&mut model, &mut mem).await.expect("background") {}
        }
        assert!(model.summaries_written >= 1, "a summary was written");
        let stored = chat.character(&character.id).await.expect("character");
        assert_eq!(stored.notes.len(), model.summaries_written, "one note per summary: {:?}", stored.notes);
        assert_eq!(stored.notes[0].text, "I trust Sam more now.", "the first sentence only");
        assert_eq!(stored.notes[0].session_id.as_deref(), Some(sid.as_str()));
        // The note prompt asked in the character's voice, and did not use up a reply.
        assert!(model.prompts.iter().any(|p| p.contains("You are Mira.") && p.contains("how things between you have changed")));

        // In the next prompt; not in the exported card.
        send(&mut chat, &mut model, &mut mem, &sid, "See you tomorrow.", options).await;
        let debug = chat.debug_prompt(&sid).expect("prompt");
        let notes = debug.sections.iter().find(|s| s.kind == SectionKind::PersonaNotes).expect("notes section");
        assert!(notes.message > 0, "late, not in the cached system message");
        assert!(notes.text.starts_with("Mira's own notes on how things stand with Sam:\n- I trust Sam more now."), "{}", notes.text);
        let exported = String::from_utf8(chat.export_character(&character.id, CardFormat::Json, ExportSpec::V3).await.expect("export")).expect("utf8");
        assert!(!exported.contains("I trust Sam"), "{exported}");

        // The user rewrites the first note and drops the rest; the view and the prompt follow.
        let first = chat.character(&character.id).await.expect("character").notes[0].clone();
        let view = chat
            .update_character(&character.id, &json!({ "notes": [{ "id": first.id, "text": "Sam is a friend." }, { "text": "Sam likes roses." }] }))
            .await
            .expect("edit")
            .view()
            .expect("view");
        assert_eq!(view["notes"][0]["text"], "Sam is a friend.");
        assert_eq!(view["notes"][0]["createdAt"], json!(first.created_at));
        assert_eq!(view["notes"][1]["text"], "Sam likes roses.");
        assert!(chat.update_character(&character.id, &json!({ "notes": [{ "text": " " }] })).await.is_err());
        send(&mut chat, &mut model, &mut mem, &sid, "Good night.", options).await;
        let text = &chat.debug_prompt(&sid).expect("prompt").text;
        assert!(text.contains("- Sam is a friend.\n- Sam likes roses.") && !text.contains("I trust Sam"), "{text}");
    });
}
