//! The user's profile shared across characters, with the scripted model: facts come from the
//! user's messages only (a character's reply that says things about the user adds nothing),
//! only in chats with characters that opted in; a newer fact supersedes an older one, which
//! leaves the prompt and stays as history; the profile is in every opted-in character's prompt
//! and in no other; editing the message takes its facts back; the user's own edits, and a
//! backup, keep it.

mod common;

use common::{ScriptedModel, WordHashEmbedder};
use engine::{ChatEngine, EngineSettings, InMemoryChatStore, Message, ReplyOptions, TurnEvent, UserFact};
use llm::SamplingParams;
use memory::{InMemoryStore, ListFilter, Memory, MemoryConfig, MemoryKind};
use persona::SectionKind;
use serde_json::json;

type Mem = Memory<WordHashEmbedder, InMemoryStore>;
type Chat = ChatEngine<InMemoryChatStore>;

fn card(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": name,
            "description": "{{char}} runs the harbour café.",
            "personality": "curious",
            "scenario": "",
            "first_mes": "Hello {{user}}.",
            "mes_example": "",
            "alternate_greetings": [],
            "group_only_greetings": []
        }
    }))
    .expect("json")
}

async fn reply(chat: &mut Chat, model: &mut ScriptedModel, mem: &mut Mem, session: &str, text: &str) -> Message {
    chat.begin_send(model, session, text, &ReplyOptions { max_tokens: 100, sampling: SamplingParams::greedy() }).await.expect("send");
    let mut last = None;
    while let Some(event) = chat.next_event(model, mem).await.expect("event") {
        last = Some(event);
    }
    match last {
        Some(TurnEvent::Done { message: Some(m), .. }) => m,
        other => panic!("no reply: {other:?}"),
    }
}

/// The current facts as "subject: value", in prompt order.
fn current(profile: &[UserFact]) -> Vec<String> {
    profile.iter().filter(|f| f.is_current()).map(|f| format!("{}: {}", f.subject, f.value)).collect()
}

fn section(chat: &Chat, session: &str, kind: SectionKind) -> Option<String> {
    chat.debug_prompt(session).expect("a prompt").sections.iter().find(|s| s.kind == kind).map(|s| s.text.clone())
}

#[test]
fn the_profile_comes_from_the_users_words_in_opted_in_chats_and_reaches_only_their_prompts() {
    pollster::block_on(async {
        // The character's replies state "facts" about the user and itself: none may count.
        let made_up = "You are 34 and you live in Berlin, I am sure. My name is Ada. I'm vegan.";
        let mut model = ScriptedModel::new(2048, vec![made_up.to_string(); 12]);
        let mut mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
        let mira = chat.import_character(&card("Mira")).await.expect("import");
        let cal = chat.import_character(&card("Cal")).await.expect("import");
        let bo = chat.import_character(&card("Bo")).await.expect("import");
        for c in [&mira, &cal] {
            let view = chat.update_character(&c.id, &json!({ "userProfile": true })).await.expect("opt in").view().expect("view");
            assert_eq!(view["userProfile"], json!(true));
        }
        assert_eq!(chat.character(&bo.id).await.expect("bo").view().expect("view")["userProfile"], json!(false));
        let with_mira = chat.create_session(&mira.id, "Sam", 0).await.expect("session").id;
        let with_cal = chat.create_session(&cal.id, "Sam", 0).await.expect("session").id;
        let with_bo = chat.create_session(&bo.id, "Sam", 0).await.expect("session").id;

        let first = reply(&mut chat, &mut model, &mut mem, &with_mira, "I live in Paris. I'm vegetarian, and I have a dog named Rex.").await;
        let profile = chat.user_profile().await.expect("profile");
        assert_eq!(current(&profile), vec!["home city: Paris", "diet: vegetarian", "pets: dog named Rex"]);
        assert!(profile.iter().all(|f| f.session_id.as_deref() == Some(with_mira.as_str()) && f.embedding.is_empty()));
        // Nothing from the reply: no age, no Berlin, no name, no vegan; no fact record from it.
        let records = mem.list(ListFilter { character_id: Some(mira.id.clone()), ..Default::default() }).await.expect("records");
        let from_reply: Vec<&str> =
            records.iter().filter(|r| r.source_message_ids.contains(&first.id)).map(|r| r.text.as_str()).collect();
        assert_eq!(from_reply.len(), 1, "only the reply's own message record: {from_reply:?}");
        assert!(records.iter().all(|r| !matches!(r.kind, MemoryKind::UserFact | MemoryKind::CharacterFact) || !r.text.contains("Berlin")));
        // The profile's sentences are not also fact records: the profile is in every prompt.
        assert!(!records.iter().any(|r| r.kind == MemoryKind::UserFact && r.text.contains("Paris")), "{records:#?}");

        // Said again in other words: still one diet; a bit of small talk: nothing new.
        reply(&mut chat, &mut model, &mut mem, &with_mira, "As I said, I'm vegetarian. Do you like tea?").await;
        let block = section(&chat, &with_mira, SectionKind::UserProfile).expect("profile in Mira's prompt");
        assert!(block.contains("Mira knows these facts about Sam for certain:") && block.contains("- home city: Paris"), "{block}");
        assert_eq!(current(&chat.user_profile().await.expect("profile")).len(), 3);

        // Moving supersedes the old city, which stays as history and leaves the prompt.
        let moved = reply(&mut chat, &mut model, &mut mem, &with_mira, "Big news: I moved to Rome.").await;
        let moved_id = chat.session(&with_mira).await.expect("session").messages.iter().rev().find(|m| m.text.starts_with("Big news")).expect("sent").id.clone();
        let profile = chat.user_profile().await.expect("profile");
        assert_eq!(current(&profile), vec!["home city: Rome", "diet: vegetarian", "pets: dog named Rex"]);
        let rome = profile.iter().find(|f| f.value == "Rome").expect("rome");
        let paris = profile.iter().find(|f| f.value == "Paris").expect("Paris kept as history");
        assert_eq!(paris.superseded_by.as_deref(), Some(rome.id.as_str()));
        assert_eq!(moved.role, engine::Speaker::Assistant);
        reply(&mut chat, &mut model, &mut mem, &with_mira, "Where do I live now?").await;
        let block = section(&chat, &with_mira, SectionKind::UserProfile).expect("profile");
        assert!(block.contains("Rome") && !block.contains("Paris"), "{block}");
        let memories = section(&chat, &with_mira, SectionKind::Memories).unwrap_or_default();
        assert!(!memories.contains("Paris"), "the outdated statement is recalled: {memories}");

        // Another character that opted in knows it all, and nothing outdated.
        reply(&mut chat, &mut model, &mut mem, &with_cal, "Hi Cal, what should I cook tonight?").await;
        let rendered = chat.debug_prompt(&with_cal).expect("prompt").rendered.clone();
        assert!(rendered.contains("- home city: Rome") && rendered.contains("- diet: vegetarian") && rendered.contains("- pets: dog named Rex"), "{rendered}");
        assert!(!rendered.contains("Paris"), "{rendered}");

        // A character that did not opt in sees none of it, and its chat adds nothing.
        reply(&mut chat, &mut model, &mut mem, &with_bo, "I'm 34, and my favourite colour is green.").await;
        assert_eq!(section(&chat, &with_bo, SectionKind::UserProfile), None);
        let rendered = chat.debug_prompt(&with_bo).expect("prompt").rendered.clone();
        assert!(!rendered.contains("Rome") && !rendered.contains("vegetarian"), "{rendered}");
        assert_eq!(current(&chat.user_profile().await.expect("profile")).len(), 3);

        // Editing the message takes its fact back: Paris is current again.
        chat.edit_message(&mut mem, &with_mira, &moved_id, "Big news: I visited Rome.").await.expect("edit");
        assert_eq!(current(&chat.user_profile().await.expect("profile")), vec!["home city: Paris", "diet: vegetarian", "pets: dog named Rex"]);

        // The user's own edits: add (superseding like a stated fact), change, delete.
        let diet = chat.add_user_fact(&mem, "Diet", "vegan").await.expect("add");
        assert_eq!(diet.subject, "diet");
        let profile = chat.user_profile().await.expect("profile");
        assert_eq!(current(&profile), vec!["home city: Paris", "diet: vegan", "pets: dog named Rex"]);
        assert!(profile.iter().any(|f| f.value == "vegetarian" && f.superseded_by.as_deref() == Some(diet.id.as_str())));
        let rex = profile.iter().find(|f| f.subject == "pets").expect("pets").id.clone();
        chat.update_user_fact(&mem, &rex, None, Some("a dog named Rex and a cat named Pip")).await.expect("update");
        chat.remove_user_fact(&diet.id).await.expect("remove");
        assert!(chat.remove_user_fact(&diet.id).await.is_err());
        assert!(chat.add_user_fact(&mem, " ", "x").await.is_err());
        let profile = chat.user_profile().await.expect("profile");
        assert_eq!(current(&profile), vec!["home city: Paris", "pets: a dog named Rex and a cat named Pip"]);

        // A backup carries the profile, history included.
        let backup = chat.export_all(&mem).await.expect("export");
        assert_eq!(backup["userProfile"].as_array().map(Vec::len), Some(profile.len()));
        let mut restored = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
        let mut restored_mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let counts = restored.import_all(&mut restored_mem, &backup, false).await.expect("import");
        assert_eq!(counts.user_facts, profile.len());
        assert_eq!(restored.user_profile().await.expect("profile"), profile);
    });
}
