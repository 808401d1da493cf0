//! The memories a reply cites (`used_memory_ids`) never include the reply itself: regenerating
//! (again, after choosing an older version back, after a continue) and continuing retrieve
//! memories without the message being replaced or extended, nor any of its versions. The
//! message memory of a reply is stored under the reply's id and holds its text, so a search for
//! the user's question finds it first; cited, a new version would quote the one it replaces.
//! A turn's records (the message, the facts it states, the reply) are embedded in one batch.
//! With the scripted model.

mod common;

use std::collections::HashSet;

use common::{ScriptedModel, WordHashEmbedder, finish_reply as finish, garden_card};
use engine::{ChatEngine, InMemoryChatStore, Message, ReplyOptions};
use llm::SamplingParams;
use memory::{InMemoryStore, Memory, MemoryConfig};

/// Every id the message has been stored under: its shown version and all the others.
fn version_ids(message: &Message) -> HashSet<String> {
    message.swipes.iter().map(|s| s.id.clone()).chain([message.id.clone()]).collect()
}

/// No version of `message` cites a version of the same message.
fn assert_cites_no_version_of_itself(message: &Message, step: &str) {
    let own = version_ids(message);
    let cited: Vec<&String> = message.used_memory_ids.iter().chain(message.swipes.iter().flat_map(|s| &s.used_memory_ids)).filter(|id| own.contains(*id)).collect();
    assert!(cited.is_empty(), "{step}: the reply cites its own message {cited:?}: {message:#?}");
}

#[test]
fn regenerated_and_continued_replies_never_cite_their_own_message() {
    pollster::block_on(async {
        // Every reply talks about the roses, as the question does: its own memory is the
        // nearest one to the question.
        let replies = [
            "The roses by the wall are red this year.",
            "The roses by the wall bloom red, Sam.",
            "Red roses, by the wall, all summer.",
            "and the roses smell of honey.",
            "The roses by the wall are my pride.",
        ];
        let mut model = ScriptedModel::new(4096, replies.iter().map(|s| s.to_string()).collect());
        let mut mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), engine::EngineSettings::default());
        let character = chat.import_character(&garden_card(false)).await.expect("import");
        let sid = chat.create_session(&character.id, "Sam", 0).await.expect("session").id;
        let options = ReplyOptions { max_tokens: 40, sampling: SamplingParams::greedy() };

        chat.begin_send(&mut model, &sid, "What about the roses by the wall?", &options).await.expect("send");
        let first = finish(&mut chat, &mut model, &mut mem).await;
        assert!(mem.get(&first.id).await.expect("memory").is_some(), "the reply's own memory, under its id");

        // Regenerate: the version being replaced keeps its memory until the new one is
        // complete, and is not recalled for it.
        chat.begin_regenerate(&mut model, &mut mem, &sid, &options).await.expect("regenerate");
        let second = finish(&mut chat, &mut model, &mut mem).await;
        assert_eq!(second.swipes.len(), 2);
        assert!(!model.prompts.last().expect("prompt").contains("red this year"), "the replaced reply recalled: {}", model.prompts.last().expect("prompt"));
        assert_cites_no_version_of_itself(&second, "regenerate");

        // The first version back (its memory written again), then another version.
        chat.choose_swipe(&mut mem, &sid, &second.id, 0).await.expect("swipe back");
        chat.begin_regenerate(&mut model, &mut mem, &sid, &options).await.expect("regenerate");
        let third = finish(&mut chat, &mut model, &mut mem).await;
        assert_eq!(third.swipes.len(), 3);
        assert_cites_no_version_of_itself(&third, "regenerate after swiping back");

        // Continue: the reply being extended is the start of the model's turn, not a memory.
        chat.begin_continue(&mut model, &sid, &options).await.expect("continue");
        let grown = finish(&mut chat, &mut model, &mut mem).await;
        assert_eq!(grown.id, third.id);
        assert!(grown.text.ends_with("smell of honey."), "{grown:?}");
        let prompt = model.prompts.last().expect("prompt");
        assert_eq!(prompt.matches("all summer").count(), 1, "the continued reply only as the start of the turn: {prompt}");
        assert_cites_no_version_of_itself(&grown, "continue");

        // And a regenerate of the continued reply.
        chat.begin_regenerate(&mut model, &mut mem, &sid, &options).await.expect("regenerate");
        let fifth = finish(&mut chat, &mut model, &mut mem).await;
        assert_eq!(fifth.swipes.len(), 4);
        assert_cites_no_version_of_itself(&fifth, "regenerate after continue");
    });
}

/// [`WordHashEmbedder`] that notes the size of every batch it is given.
struct BatchSizes(std::rc::Rc<std::cell::RefCell<Vec<usize>>>);

impl memory::TextEmbedder for BatchSizes {
    async fn embed(&self, texts: &[&str]) -> memory::Result<Vec<memory::Embedding>> {
        self.0.borrow_mut().push(texts.len());
        WordHashEmbedder.embed(texts).await
    }
}

#[test]
fn a_turns_memories_are_embedded_in_one_batch() {
    pollster::block_on(async {
        let batches = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut mem = Memory::open(BatchSizes(batches.clone()), InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let mut model = ScriptedModel::new(4096, vec!["The roses by the wall are red this year.".into()]);
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), Default::default());
        let character = chat.import_character(&garden_card(false)).await.expect("import");
        let sid = chat.create_session(&character.id, "Sam", 0).await.expect("session").id;
        let options = ReplyOptions { max_tokens: 40, sampling: SamplingParams::greedy() };
        chat.begin_send(&mut model, &sid, "My sister is called Ana. She lives in Lisbon.", &options).await.expect("send");
        while chat.next_event(&mut model, &mut mem).await.expect("event").is_some() {}

        let stored = chat.session(&sid).await.expect("session").messages;
        let [.., sent, reply] = stored.as_slice() else { panic!("the message and its reply: {stored:#?}") };
        assert!(sent.memory_ids.len() >= 2, "the message and a fact it states: {sent:#?}");
        assert_eq!(reply.memory_ids.len(), 1, "the reply's own record: {reply:#?}");
        // The last pass of the embedder wrote the turn: the message, its facts and the reply.
        assert_eq!(batches.borrow().last(), Some(&(sent.memory_ids.len() + reply.memory_ids.len())), "batches: {:?}", batches.borrow());
    });
}
