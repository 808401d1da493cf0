//! A real five-turn conversation with SmolLM2-135M and all-MiniLM-L6-v2 through the engine
//! (greedy decoding, on the CPU backend: the engine's logic, not the kernels, is under test here;
//! crates/llm's tests check both backends' kernels): the greeting comes from the card, a lore
//! entry is in the prompt exactly when its key is mentioned, a fact planted in turn 1 is
//! retrieved into the prompt of turn 5, the second turn prefills only what changed; then
//! regenerate, edit and delete with their memory records, a background summary, and
//! export → wipe → import.

mod common;

use common::read;
use llm::Device;
use engine::{ChatEngine, EngineSettings, InMemoryChatStore, ReplyOptions, Speaker, TurnEvent};
use llm::{Generator, SamplingParams};
use memory::{Embedder, InMemoryStore, ListFilter, Memory, MemoryConfig, MemoryKind};
use persona::SectionKind;
use serde_json::json;

fn device() -> Device {
    llm::device::init_cpu().0
}

fn card() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Mira",
            "description": "{{char}} is a cheerful baker who runs a small bakery by the sea.",
            "personality": "warm, curious, chatty",
            "scenario": "{{user}} walks into {{char}}'s bakery on a rainy morning.",
            "first_mes": "Welcome in, {{user}}! The bread is still warm.",
            "mes_example": "",
            "alternate_greetings": ["Oh, hello {{user}}! Mind the flour on the floor."],
            "character_book": {
                "scan_depth": 1,
                "entries": [{
                    "keys": ["lighthouse"],
                    "content": "The old lighthouse on the cliff has been dark for ten years; Mira's grandfather kept it.",
                    "enabled": true,
                    "insertion_order": 10,
                    "name": "Lighthouse"
                }]
            },
            "extensions": { "some_other_tool": { "kept": true } }
        }
    }))
    .expect("json")
}

fn greedy(max_tokens: usize) -> ReplyOptions {
    ReplyOptions { max_tokens, sampling: SamplingParams::greedy() }
}

struct Turn {
    events: Vec<TurnEvent>,
    streamed: String,
}

async fn drain(chat: &mut ChatEngine<InMemoryChatStore>, model: &mut Generator, mem: &mut Memory<Embedder, InMemoryStore>) -> Turn {
    let mut events = Vec::new();
    let mut streamed = String::new();
    while let Some(event) = chat.next_event(model, mem).await.expect("a turn event") {
        if let TurnEvent::Thought { text, .. } | TurnEvent::Action { text, .. } | TurnEvent::Text { text, .. } = &event {
            streamed.push_str(text);
        }
        events.push(event);
    }
    Turn { events, streamed }
}

fn done(turn: &Turn) -> (&engine::Message, &engine::Usage) {
    match turn.events.last() {
        Some(TurnEvent::Done { message: Some(m), usage, .. }) => (m, usage),
        other => panic!("the turn did not end with a stored reply: {other:?}"),
    }
}

fn has_lore(chat: &ChatEngine<InMemoryChatStore>, session: &str) -> bool {
    chat.debug_prompt(session).expect("a prompt").sections.iter().any(|s| s.kind == SectionKind::Lore && s.text.contains("lighthouse"))
}

fn memories_section(chat: &ChatEngine<InMemoryChatStore>, session: &str) -> String {
    chat.debug_prompt(session).expect("a prompt").sections.iter().filter(|s| s.kind == SectionKind::Memories).map(|s| s.text.clone()).collect()
}

#[test]
fn five_turns_with_memory_lore_and_prefix_reuse() {
    pollster::block_on(async {
        let device = device();
        let mut model = Generator::from_gguf(&read("models/SmolLM2-135M-Instruct-Q4_1.gguf"), &device, 2048).expect("model");
        let embedder = Embedder::load(
            &read("models/all-MiniLM-L6-v2/model.safetensors"),
            &read("models/all-MiniLM-L6-v2/tokenizer.json"),
            &read("models/all-MiniLM-L6-v2/config.json"),
            &device,
        )
        .expect("embedder");
        let mut mem = Memory::open(embedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());

        let character = chat.import_character(&card()).await.expect("import");
        let session = chat.create_session(&character.id, "Sam", 0).await.expect("session");
        let sid = session.id.clone();
        assert_eq!(session.messages.len(), 1);
        assert_eq!(session.messages[0].text, "Welcome in, Sam! The bread is still warm.");
        assert!(session.messages[0].greeting);

        // Turn 1: a fact about the user; no lore key.
        let sent = chat.begin_send(&mut model, &sid, "Hi Mira! My sister is called Ana and she lives in Lisbon.", &greedy(16)).await.expect("send");
        // Sending only stores the message: its memories are written once the reply is out.
        let stored = chat.session(&sid).await.expect("session").messages;
        assert_eq!(stored.last().map(|m| (m.id.clone(), m.memory_ids.len())), Some((sent.id.clone(), 0)));
        let facts = mem.list(ListFilter { character_id: Some(character.id.clone()), kind: Some(MemoryKind::UserFact), ..Default::default() }).await.expect("list");
        assert!(facts.is_empty(), "no memory written before the reply: {facts:?}");
        let turn1 = drain(&mut chat, &mut model, &mut mem).await;
        let (reply1, usage1) = done(&turn1);
        // The whole prompt is read in chunks, each reported before the reply's first piece.
        let chunk = chat.settings().prefill_chunk;
        assert!(usage1.prompt_tokens > 2 * chunk, "a prompt long enough for chunks: {usage1:?}");
        let progress: Vec<(usize, usize)> = turn1.events.iter().filter_map(|e| if let TurnEvent::Progress { done, total } = e { Some((*done, *total)) } else { None }).collect();
        let expected: Vec<(usize, usize)> = (0..=(usage1.prompt_tokens - 1) / chunk).map(|i| (i * chunk, usage1.prompt_tokens)).collect();
        assert_eq!(progress, expected);
        assert!(matches!(turn1.events.get(1), Some(TurnEvent::Progress { done: 0, .. })));
        let first_piece = turn1.events.iter().position(|e| matches!(e, TurnEvent::Text { .. } | TurnEvent::Thought { .. } | TurnEvent::Action { .. }));
        assert!(first_piece > Some(expected.len()), "progress before any text: {:?}", turn1.events);
        let stored = chat.session(&sid).await.expect("session").messages;
        assert!(!stored[stored.len() - 2].memory_ids.is_empty(), "the user's message has its memories after the reply");
        assert!(!has_lore(&chat, &sid), "no lore without its key:\n{}", chat.debug_prompt(&sid).unwrap().text);
        assert!(matches!(turn1.events.first(), Some(TurnEvent::Memory { .. })));
        assert_eq!(usage1.cached_tokens, 0, "a fresh generator has nothing cached");
        let streamed_clean: String = turn1.streamed.split_whitespace().collect();
        assert!(!streamed_clean.is_empty());
        let facts = mem.list(ListFilter { character_id: Some(character.id.clone()), kind: Some(MemoryKind::UserFact), ..Default::default() }).await.expect("list");
        assert_eq!(facts.len(), 1, "one fact from turn 1: {facts:?}");
        assert!(facts[0].text.contains("My sister is called Ana"));
        assert!(facts[0].source_message_ids == vec![sent.id.clone()]);
        eprintln!("turn 1 reply: {:?}", reply1.raw);

        // Turn 2: the lore key; the prompt's stable prefix comes from the cache.
        chat.begin_send(&mut model, &sid, "Can you tell me about the lighthouse?", &greedy(16)).await.expect("send");
        let turn2 = drain(&mut chat, &mut model, &mut mem).await;
        let (_, usage2) = done(&turn2);
        assert!(has_lore(&chat, &sid), "the lore entry when its key is mentioned:\n{}", chat.debug_prompt(&sid).unwrap().text);
        let prefilled = usage2.prompt_tokens - usage2.cached_tokens;
        eprintln!("turn 2: prompt {} tokens, {} from the cache, {} prefilled", usage2.prompt_tokens, usage2.cached_tokens, prefilled);
        assert!(usage2.cached_tokens >= usage1.prompt_tokens / 2, "turn 2 reuses the cached prefix ({usage2:?} after {usage1:?})");
        assert!(prefilled < usage2.prompt_tokens / 2, "turn 2 prefills only what changed ({usage2:?})");

        // Turns 3 and 4: no key, no lore.
        for text in ["What is your favourite bread to bake?", "It is very cold and windy outside today."] {
            chat.begin_send(&mut model, &sid, text, &greedy(16)).await.expect("send");
            let turn = drain(&mut chat, &mut model, &mut mem).await;
            done(&turn);
            assert!(!has_lore(&chat, &sid), "no lore in a turn without its key ({text})");
        }

        // Turn 5: the fact from turn 1 comes back from memory.
        chat.begin_send(&mut model, &sid, "Do you remember what my sister's name is?", &greedy(16)).await.expect("send");
        let turn5 = drain(&mut chat, &mut model, &mut mem).await;
        let (reply5, _) = done(&turn5);
        let used = memories_section(&chat, &sid);
        assert!(used.contains("My sister is called Ana"), "the planted fact is in the prompt of turn 5:\n{}", chat.debug_prompt(&sid).unwrap().text);
        let Some(TurnEvent::Memory { hits }) = turn5.events.first() else { panic!("memory event first") };
        assert!(hits.iter().any(|h| h.record.text.contains("Ana")), "the memory event names the records used");
        eprintln!("turn 5 reply: {:?}", reply5.raw);

        let history = chat.session(&sid).await.expect("session").messages;
        assert_eq!(history.len(), 11, "greeting + 5 × (user, reply)");
        assert!(history.iter().skip(1).step_by(2).all(|m| m.role == Speaker::User));

        // Regenerate: the old reply and its memory record go, a new one comes.
        let old = history.last().expect("reply").clone();
        chat.begin_regenerate(&mut model, &mut mem, &sid, &ReplyOptions { max_tokens: 12, sampling: SamplingParams { temperature: 0.9, seed: 7, ..SamplingParams::default() } })
            .await
            .expect("regenerate");
        let regen = drain(&mut chat, &mut model, &mut mem).await;
        let (new_reply, _) = done(&regen);
        assert_ne!(new_reply.id, old.id);
        assert!(mem.get(&old.id).await.expect("get").is_none(), "the replaced reply's memory is gone");
        let history = chat.session(&sid).await.expect("session").messages;
        assert_eq!(history.len(), 11);
        assert_eq!(history.last().map(|m| m.id.clone()), Some(new_reply.id.clone()));

        // Edit the first user message: its message memory is re-written and its fact re-taken.
        let edited = chat.edit_message(&mut mem, &sid, &sent.id, "Hello! My brother is called Tom.").await.expect("edit");
        assert_eq!(edited.text, "Hello! My brother is called Tom.");
        let facts = mem.list(ListFilter { character_id: Some(character.id.clone()), kind: Some(MemoryKind::UserFact), ..Default::default() }).await.expect("list");
        assert_eq!(facts.len(), 1);
        assert!(facts[0].text.contains("My brother is called Tom"), "{facts:?}");
        let own = mem.get(&sent.id).await.expect("get").expect("the message's memory");
        assert_eq!(own.text, "Sam: Hello! My brother is called Tom.");

        // Delete it: the message and every record taken from it go.
        chat.delete_message(&mut mem, &sid, &sent.id).await.expect("delete");
        assert!(mem.get(&sent.id).await.expect("get").is_none());
        let facts = mem.list(ListFilter { character_id: Some(character.id.clone()), kind: Some(MemoryKind::UserFact), ..Default::default() }).await.expect("list");
        assert!(facts.is_empty());
        assert_eq!(chat.session(&sid).await.expect("session").messages.len(), 10);

        // A background summary, written by the model.
        chat.settings_mut().summarize_every = 4;
        chat.settings_mut().summary_max_tokens = 32;
        chat.want_summary(&sid);
        let mut steps = 0;
        while chat.background_step(&mut model, &mut mem).await.expect("background") {
            steps += 1;
            assert!(steps < 200, "the summary ends");
        }
        let session = chat.session(&sid).await.expect("session");
        assert_eq!(session.summaries.len(), 1, "one rolling summary");
        let summary = &session.summaries[0];
        assert!(!summary.text.trim().is_empty());
        let event = mem.get(summary.memory_id.as_deref().expect("memory id")).await.expect("get").expect("event memory");
        assert_eq!(event.kind, MemoryKind::EventSummary);
        eprintln!("summary: {:?}", summary.text);

        // Everything out, wiped, back in: the same state.
        let backup = chat.export_all(&mem).await.expect("export");
        chat.wipe(&mut model, &mut mem).await.expect("wipe");
        assert!(chat.list_characters().await.expect("list").is_empty());
        assert!(mem.export_records(None).await.expect("records").is_empty());
        let counts = chat.import_all(&mut mem, &backup, false).await.expect("import");
        assert_eq!(counts.characters, 1);
        let again = chat.export_all(&mem).await.expect("export");
        let strip = |mut v: serde_json::Value| {
            v.as_object_mut().expect("object").remove("exportedAt");
            v
        };
        assert_eq!(strip(backup), strip(again));
        let hits = mem.search(memory::SearchQuery::new(&character.id, "bread in the bakery", 3)).await.expect("search after import");
        assert!(!hits.is_empty());

        // The card keeps what other tools stored in it.
        let exported = chat.export_character(&character.id, engine::CardFormat::Json, persona::ExportSpec::V2).await.expect("export card");
        let exported: serde_json::Value = serde_json::from_slice(&exported).expect("json");
        assert_eq!(exported["data"]["extensions"]["some_other_tool"]["kept"], json!(true));
    });
}
