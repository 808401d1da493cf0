//! Continue (the latest reply grows: the model picks up after its text, only the new part
//! streams, the same message is stored with its memories written again) and impersonate (a
//! draft of the user's next message, in the user's voice, returned and never stored), with the
//! scripted model.

mod common;

use common::{ScriptedModel, WordHashEmbedder, garden_card};
use engine::{ChatEngine, ChatStore, EngineSettings, InMemoryChatStore, ReplyOptions, TurnEvent};
use llm::SamplingParams;
use memory::{InMemoryStore, ListFilter, Memory, MemoryConfig};

/// Every event until the turn ends.
async fn drain(chat: &mut ChatEngine<InMemoryChatStore>, model: &mut ScriptedModel, mem: &mut Memory<WordHashEmbedder, InMemoryStore>) -> Vec<TurnEvent> {
    let mut events = Vec::new();
    while let Some(event) = chat.next_event(model, mem).await.expect("event") {
        events.push(event);
    }
    events
}

fn streamed(events: &[TurnEvent]) -> String {
    events.iter().filter_map(|e| if let TurnEvent::Text { text, .. } = e { Some(text.as_str()) } else { None }).collect()
}

#[test]
fn continue_extends_the_reply_in_place_and_impersonate_drafts_without_storing() {
    pollster::block_on(async {
        let script = ["Mira smiles.] (waves) Hello there, the roses", " are blooming and the fern is tall.", "I would love to see the fern, Mira!"];
        let mut model = ScriptedModel::new(2048, script.iter().map(|s| s.to_string()).collect());
        let mut mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
        let character = chat.import_character(&garden_card(true)).await.expect("import");
        let sid = chat.create_session(&character.id, "Sam", 0).await.expect("session").id;
        let options = ReplyOptions { max_tokens: 50, sampling: SamplingParams::greedy() };

        // Nothing to continue while the user spoke last.
        chat.begin_send(&mut model, &sid, "Hi Mira, how is the garden?", &options).await.expect("send");
        assert!(chat.begin_continue(&mut model, &sid, &options).await.is_err(), "busy while a reply runs");
        let events = drain(&mut chat, &mut model, &mut mem).await;
        let Some(TurnEvent::Done { message: Some(first), .. }) = events.last() else { panic!("a reply") };
        assert_eq!(first.text, "Hello there, the roses");

        chat.begin_continue(&mut model, &sid, &options).await.expect("continue");
        let events = drain(&mut chat, &mut model, &mut mem).await;
        // The model was given the reply so far as the start of its turn, not as history.
        let prompt = model.prompts.last().expect("prompt").clone();
        assert!(prompt.ends_with("<|im_start|>assistant [Mira smiles.] (waves) Hello there, the roses"), "{prompt}");
        assert_eq!(prompt.matches("Hello there, the roses").count(), 1, "{prompt}");
        assert_eq!(streamed(&events).trim(), "are blooming and the fern is tall.");
        let Some(TurnEvent::Done { message: Some(grown), draft: None, .. }) = events.last() else { panic!("done: {events:?}") };
        assert_eq!(grown.id, first.id);
        assert_eq!(grown.text, "Hello there, the roses are blooming and the fern is tall.");
        assert_eq!(grown.thought.as_deref(), Some("Mira smiles."));
        let stored = chat.session(&sid).await.expect("session");
        assert_eq!(stored.messages.len(), 3);
        assert_eq!(stored.messages[2], *grown);
        // Its memory is the whole text now, once.
        let records = mem.list(ListFilter { character_id: Some(character.id.clone()), ..Default::default() }).await.expect("records");
        let of_reply: Vec<&str> = records.iter().filter(|r| r.source_message_ids.contains(&grown.id)).map(|r| r.text.as_str()).collect();
        assert_eq!(of_reply, vec!["Mira: Hello there, the roses are blooming and the fern is tall."]);

        // Impersonate: the user's next line, in their voice; the chat is unchanged.
        chat.begin_impersonate(&mut model, &sid, &options).await.expect("impersonate");
        let events = drain(&mut chat, &mut model, &mut mem).await;
        let prompt = model.prompts.last().expect("prompt").clone();
        assert!(prompt.contains("Now write Sam's next message to Mira"), "{prompt}");
        assert!(prompt.ends_with("<|im_start|>assistant"), "no thought marker for the user's line: {prompt}");
        let Some(TurnEvent::Done { message: None, draft: Some(draft), .. }) = events.last() else { panic!("a draft: {events:?}") };
        assert_eq!(draft, "I would love to see the fern, Mira!");
        assert_eq!(chat.session(&sid).await.expect("session"), stored);

        // The user spoke last: nothing of the character's to continue.
        let mut user_last = chat.session(&sid).await.expect("session");
        user_last.id = "other".into();
        user_last.messages.truncate(2);
        chat.store().put_session(&user_last).await.expect("put");
        assert!(chat.begin_continue(&mut model, "other", &options).await.is_err());
    });
}
