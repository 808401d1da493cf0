//! What the engine stores while a reply is written, with SmolLM2-135M on the CPU (greedy, a few
//! tokens) and a word-hash embedder: the reply saved unfinished as it streams; regenerate keeping
//! the old reply as a version until the new one is complete, and choosing a version back (its
//! memories follow); a message stored by another tab during a reply kept; an import that would
//! replace newer data refused unless asked; a full disk (a store that refuses writes, as
//! IndexedDB does at its quota) during a send, a reply and an import: nothing half-applied, the
//! error `storage_quota`, and the next turn works. The browser side of the same (IndexedDB,
//! reloads, two tabs) is in tests/browser/storage.test.mjs.

mod common;

use common::{WordHashEmbedder, finish_reply as finish, read};
use std::cell::Cell;
use std::rc::Rc;

use engine::{ChatEngine, ChatStore, EngineError, EngineSettings, InMemoryChatStore, Message, ReplyOptions, Session, Speaker, StoredCharacter, TurnEvent, UserFact};
use llm::{Generator, SamplingParams};
use memory::{InMemoryStore, Memory, MemoryConfig, MemoryRecord};
use serde_json::json;

type Mem = Memory<WordHashEmbedder, InMemoryStore>;

fn card() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Mira",
            "description": "{{char}} runs a small bakery by the sea and likes to talk about bread.",
            "personality": "warm, chatty",
            "scenario": "",
            "first_mes": "Welcome in, {{user}}!",
            "mes_example": "",
            "alternate_greetings": []
        }
    }))
    .expect("json")
}

fn greedy(max_tokens: usize) -> ReplyOptions {
    ReplyOptions { max_tokens, sampling: SamplingParams::greedy() }
}

/// Run the turn until its first piece of text; what was streamed.
async fn until_text(chat: &mut ChatEngine<InMemoryChatStore>, model: &mut Generator, mem: &mut Mem) -> String {
    loop {
        match chat.next_event(model, mem).await.expect("event") {
            Some(TurnEvent::Text { text, .. } | TurnEvent::Thought { text, .. } | TurnEvent::Action { text, .. }) => return text,
            Some(TurnEvent::Done { .. }) | None => panic!("the reply ended before any text"),
            Some(_) => {}
        }
    }
}

async fn last_message(chat: &ChatEngine<InMemoryChatStore>, session: &str) -> Message {
    chat.session(session).await.expect("session").messages.last().cloned().expect("a message")
}

#[test]
fn replies_are_saved_as_they_stream_and_regenerate_keeps_the_old_reply() {
    pollster::block_on(async {
        let device = llm::device::init_cpu().0;
        let mut model = Generator::from_gguf(&read("models/SmolLM2-135M-Instruct-Q4_1.gguf"), &device, 1024).expect("model");
        let mut mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        // Saved after every token, so the test sees the unfinished reply without waiting.
        let settings = EngineSettings { partial_save_ms: 0, ..EngineSettings::default() };
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), settings);
        let clock = Rc::new(Cell::new(1_000u64));
        let ticks = clock.clone();
        chat.set_clock(move || {
            ticks.set(ticks.get() + 1);
            ticks.get()
        });
        let character = chat.import_character(&card()).await.expect("import");
        let sid = chat.create_session(&character.id, "Sam", 0).await.expect("session").id;

        // A reply is in the store, marked unfinished, from its first piece on.
        chat.begin_send(&mut model, &sid, "Hello! What bread do you bake?", &greedy(12)).await.expect("send");
        let first = until_text(&mut chat, &mut model, &mut mem).await;
        let partial = last_message(&chat, &sid).await;
        assert_eq!(partial.role, Speaker::Assistant);
        assert!(partial.unfinished, "saved while streaming, marked unfinished: {partial:?}");
        assert!(first.trim().is_empty() || partial.raw.contains(first.trim()), "{first:?} in {partial:?}");
        let reply = finish(&mut chat, &mut model, &mut mem).await;
        assert_eq!(reply.id, partial.id, "the same message, completed");
        assert!(!reply.unfinished);
        let history = chat.session(&sid).await.expect("session").messages;
        assert_eq!(history.iter().filter(|m| m.role == Speaker::Assistant).count(), 2, "greeting and one reply: {history:?}");
        assert!(mem.get(&reply.id).await.expect("memory").is_some(), "the reply's memory");

        // Regenerate: while the new reply streams, the old one is still the one shown, the new
        // one a version beside it, unfinished.
        let old = reply;
        chat.begin_regenerate(&mut model, &mut mem, &sid, &ReplyOptions { max_tokens: 12, sampling: SamplingParams { temperature: 1.0, seed: 11, ..SamplingParams::default() } })
            .await
            .expect("regenerate");
        until_text(&mut chat, &mut model, &mut mem).await;
        let during = last_message(&chat, &sid).await;
        assert_eq!(during.id, old.id, "the old reply is shown until the new one is complete");
        assert_eq!(during.text, old.text);
        assert_eq!(during.swipes.len(), 2);
        assert_eq!(during.swipe, 0);
        assert!(during.swipes[1].unfinished && !during.swipes[0].unfinished);
        assert!(mem.get(&old.id).await.expect("memory").is_some(), "the old reply keeps its memory meanwhile");
        let new = finish(&mut chat, &mut model, &mut mem).await;
        assert_ne!(new.id, old.id);
        assert_eq!((new.swipes.len(), new.swipe), (2, 1));
        assert_eq!(new.swipes[0].id, old.id);
        assert_eq!(new.swipes[0].text, old.text);
        assert!(!new.unfinished && !new.swipes[1].unfinished);
        assert_eq!(last_message(&chat, &sid).await, new, "stored as returned");
        assert!(mem.get(&old.id).await.expect("memory").is_none(), "the shown version's memories only");
        assert!(mem.get(&new.id).await.expect("memory").is_some());

        // Back to the first version: it is what the history (and the next prompt) uses.
        let back = chat.choose_swipe(&mut mem, &sid, &new.id, 0).await.expect("swipe back");
        assert_eq!((back.id.as_str(), back.text.as_str(), back.swipe), (old.id.as_str(), old.text.as_str(), 0));
        assert_eq!(last_message(&chat, &sid).await.id, old.id);
        assert!(mem.get(&old.id).await.expect("memory").is_some());
        assert!(mem.get(&new.id).await.expect("memory").is_none());
        let bad = chat.choose_swipe(&mut mem, &sid, &old.id, 5).await.expect_err("no such version");
        assert_eq!(bad.code(), "bad_request");

        // Another tab stores a message while this one answers: both are kept, each once.
        chat.settings_mut().partial_save_ms = u64::MAX;
        chat.begin_send(&mut model, &sid, "Do you bake rye?", &greedy(8)).await.expect("send");
        until_text(&mut chat, &mut model, &mut mem).await;
        chat.store()
            .update_session(&sid, |s| {
                let mut other = s.messages[1].clone();
                other.id = "from-the-other-tab".into();
                other.text = "And sourdough?".into();
                other.raw = other.text.clone();
                other.memory_ids.clear();
                s.messages.push(other);
                Ok(())
            })
            .await
            .expect("the other tab's write");
        let reply = finish(&mut chat, &mut model, &mut mem).await;
        let history = chat.session(&sid).await.expect("session").messages;
        let ids: Vec<&str> = history.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids.iter().filter(|id| **id == "from-the-other-tab").count(), 1, "{ids:?}");
        assert_eq!(ids.iter().filter(|id| **id == reply.id).count(), 1, "{ids:?}");
        assert_eq!(ids.last(), Some(&reply.id.as_str()), "stored in the order written");
        assert_eq!(history.len(), 6, "greeting, 2 × (message, reply), the other tab's message");

        // An import that would replace a session changed since the backup asks first.
        let backup = chat.export_all(&mem).await.expect("export");
        chat.delete_message(&mut mem, &sid, "from-the-other-tab").await.expect("delete");
        let refused = chat.import_all(&mut mem, &backup, false).await.expect_err("newer data here");
        assert!(matches!(refused, EngineError::NewerData { count: 1 }), "{refused:?}");
        assert_eq!(refused.code(), "newer_data");
        assert_eq!(chat.session(&sid).await.expect("session").messages.len(), 5, "nothing written");
        let counts = chat.import_all(&mut mem, &backup, true).await.expect("import, replacing");
        assert_eq!(counts.sessions, 1);
        assert_eq!(chat.session(&sid).await.expect("session").messages.len(), 6);
        assert!(clock.get() > 1_000);
    });
}

/// The in-memory store with a disk that can fill up: while `full`, every write is refused with
/// `storage_quota` and changes nothing, as an IndexedDB transaction past the quota.
#[derive(Default)]
struct FillingStore {
    inner: InMemoryChatStore,
    full: Cell<bool>,
}

impl FillingStore {
    fn check(&self) -> engine::Result<()> {
        if self.full.get() { Err(EngineError::Quota("the disk is full".into())) } else { Ok(()) }
    }
}

impl ChatStore for FillingStore {
    async fn list_characters(&self) -> engine::Result<Vec<StoredCharacter>> {
        self.inner.list_characters().await
    }
    async fn get_character(&self, id: &str) -> engine::Result<Option<StoredCharacter>> {
        self.inner.get_character(id).await
    }
    async fn put_character(&self, character: &StoredCharacter) -> engine::Result<()> {
        self.check()?;
        self.inner.put_character(character).await
    }
    async fn delete_character(&self, id: &str) -> engine::Result<()> {
        self.inner.delete_character(id).await
    }
    async fn list_sessions(&self, character_id: Option<&str>) -> engine::Result<Vec<Session>> {
        self.inner.list_sessions(character_id).await
    }
    async fn get_session(&self, id: &str) -> engine::Result<Option<Session>> {
        self.inner.get_session(id).await
    }
    async fn put_session(&self, session: &Session) -> engine::Result<()> {
        self.check()?;
        self.inner.put_session(session).await
    }
    async fn update_session<R>(&self, id: &str, change: impl FnOnce(&mut Session) -> engine::Result<R>) -> engine::Result<R> {
        self.check()?;
        self.inner.update_session(id, change).await
    }
    async fn delete_session(&self, id: &str) -> engine::Result<()> {
        self.inner.delete_session(id).await
    }
    async fn list_user_facts(&self) -> engine::Result<Vec<UserFact>> {
        self.inner.list_user_facts().await
    }
    async fn put_user_facts(&self, facts: &[UserFact]) -> engine::Result<()> {
        self.check()?;
        self.inner.put_user_facts(facts).await
    }
    async fn delete_user_facts(&self, ids: &[String]) -> engine::Result<()> {
        self.inner.delete_user_facts(ids).await
    }
    async fn put_all(&self, characters: &[StoredCharacter], sessions: &[Session], user_facts: &[UserFact], memories: &[MemoryRecord]) -> engine::Result<()> {
        self.check()?;
        self.inner.put_all(characters, sessions, user_facts, memories).await
    }
    async fn clear(&self) -> engine::Result<()> {
        self.inner.clear().await
    }
}

#[test]
fn a_full_disk_during_a_send_a_reply_and_an_import_changes_nothing_and_the_next_turn_works() {
    pollster::block_on(async {
        let device = llm::device::init_cpu().0;
        let mut model = Generator::from_gguf(&read("models/SmolLM2-135M-Instruct-Q4_1.gguf"), &device, 1024).expect("model");
        let mut mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let settings = EngineSettings { partial_save_ms: 0, ..EngineSettings::default() };
        let mut chat = ChatEngine::new(FillingStore::default(), settings);
        let character = chat.import_character(&card()).await.expect("import");
        let sid = chat.create_session(&character.id, "Sam", 0).await.expect("session").id;
        let history = |chat: &ChatEngine<FillingStore>| {
            let session = pollster::block_on(chat.session(&sid)).expect("session");
            session.messages.iter().map(|m| (m.role, m.text.clone(), m.unfinished)).collect::<Vec<_>>()
        };
        let before = history(&chat);

        // A send: refused, nothing stored, no turn left behind.
        chat.store().full.set(true);
        let refused = chat.begin_send(&mut model, &sid, "Hello there!", &greedy(8)).await.expect_err("a full disk");
        assert_eq!(refused.code(), "storage_quota");
        assert_eq!(history(&chat), before);
        assert!(!chat.is_generating());

        // A reply: the message is stored, then the disk fills; partial saves and the reply's write
        // are refused, the turn ends with storage_quota, the message is there once, no reply.
        chat.store().full.set(false);
        chat.begin_send(&mut model, &sid, "Hello there!", &greedy(8)).await.expect("send");
        chat.store().full.set(true);
        let mut error = None;
        loop {
            match chat.next_event(&mut model, &mut mem).await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        assert_eq!(error.map(|e| e.code()), Some("storage_quota"));
        assert!(!chat.is_generating(), "the turn is over");
        let after = history(&chat);
        assert_eq!(after.len(), before.len() + 1, "{after:?}");
        assert_eq!(after.last().map(|m| (m.0, m.1.as_str())), Some((Speaker::User, "Hello there!")));

        // An import: refused as a whole.
        chat.store().full.set(false);
        let mut backup = chat.export_all(&mem).await.expect("export");
        backup["sessions"][0]["id"] = json!("another-session");
        chat.store().full.set(true);
        let refused = chat.import_all(&mut mem, &backup, false).await.expect_err("a full disk");
        assert_eq!(refused.code(), "storage_quota");
        assert!(chat.session("another-session").await.is_err(), "nothing of the import was stored");

        // Room again: the unanswered message gets its reply.
        chat.store().full.set(false);
        chat.begin_regenerate(&mut model, &mut mem, &sid, &greedy(8)).await.expect("answer it");
        let reply = finish(&mut chat, &mut model, &mut mem).await;
        let last = history(&chat);
        assert_eq!(last.len(), before.len() + 2);
        assert_eq!(last.last().map(|m| (m.0, m.2)), Some((Speaker::Assistant, false)));
        assert!(!reply.text.is_empty() || reply.thought.is_some() || reply.action.is_some());
    });
}

