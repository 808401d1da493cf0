//! Inner thoughts on: the reply is pre-started with the thought marker, and when the model
//! closes its thought and stops there, the engine starts the speech for it (the model runs
//! again on the prompt, the thought and a space) so the reply has words to the user, not only a
//! thought. A reply that already speaks, or that ran out of tokens inside its thought, is left as
//! it is. With the scripted model.

mod common;

use common::{ScriptedModel, WordHashEmbedder, garden_card};
use engine::{ChatEngine, EngineSettings, InMemoryChatStore, Message, ReplyOptions, TurnEvent};
use llm::SamplingParams;
use memory::{InMemoryStore, Memory, MemoryConfig};

type Mem = Memory<WordHashEmbedder, InMemoryStore>;

/// Send `text` and run the reply to its end: the stored reply and the streamed speech.
async fn reply(chat: &mut ChatEngine<InMemoryChatStore>, model: &mut ScriptedModel, mem: &mut Mem, sid: &str, text: &str, max_tokens: usize) -> (Message, String, usize) {
    let options = ReplyOptions { max_tokens, sampling: SamplingParams::greedy() };
    chat.begin_send(model, sid, text, &options).await.expect("send");
    let (mut stored, mut speech, mut completion) = (None, String::new(), 0);
    while let Some(event) = chat.next_event(model, mem).await.expect("event") {
        match event {
            TurnEvent::Text { text, .. } => speech.push_str(&text),
            TurnEvent::Done { message, usage, .. } => {
                stored = message;
                completion = usage.completion_tokens;
            }
            _ => {}
        }
    }
    (stored.expect("a stored reply"), speech, completion)
}

#[test]
fn the_speech_is_started_after_a_thought_the_model_stopped_at() {
    pollster::block_on(async {
        let script = [
            // Stops right after its thought: the speech is started for it, and the next
            // scripted text is what it writes after "] ".
            "Mira hopes he stays.]",
            "Stay for tea, Sam.",
            // Speaks on its own: run once.
            "Rain again.] (looks up) The roses love it.",
            // Runs out of tokens inside its thought: nothing to start.
            "So many weeds to pull before the",
            "never asked for",
        ];
        let mut model = ScriptedModel::new(4096, script.iter().map(|s| s.to_string()).collect());
        let mut mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
        let character = chat.import_character(&garden_card(true)).await.expect("import");
        let sid = chat.create_session(&character.id, "Sam", 0).await.expect("session").id;

        let (first, speech, completion) = reply(&mut chat, &mut model, &mut mem, &sid, "Hello Mira!", 40).await;
        assert_eq!(first.thought.as_deref(), Some("Mira hopes he stays."));
        assert_eq!(first.text, "Stay for tea, Sam.");
        assert_eq!(speech.trim(), "Stay for tea, Sam.");
        assert_eq!(completion, 4 + 4, "both runs' tokens counted");
        assert_eq!(model.prompts.len(), 2, "the model ran again for the speech");
        let again = &model.prompts[1];
        assert!(again.ends_with("<|im_start|>assistant [Mira hopes he stays.]"), "the thought, then the speech's start: {again}");
        assert!(again.starts_with(model.prompts[0].trim_end_matches(" [")), "the same prompt before the reply");

        let (second, _, _) = reply(&mut chat, &mut model, &mut mem, &sid, "Is it raining?", 40).await;
        assert_eq!((second.thought.as_deref(), second.action.as_deref(), second.text.as_str()), (Some("Rain again."), Some("looks up"), "The roses love it."));
        assert_eq!(model.prompts.len(), 3, "one run");

        let (third, _, _) = reply(&mut chat, &mut model, &mut mem, &sid, "Busy day?", 5).await;
        assert_eq!(third.thought.as_deref(), Some("So many weeds to pull"));
        assert!(third.text.is_empty());
        assert_eq!(model.prompts.len(), 4, "out of tokens: no second run");

        // With thoughts off a bracket is plain text and nothing is started.
        let plain = chat.import_character(&garden_card(false)).await.expect("import");
        let plain_sid = chat.create_session(&plain.id, "Sam", 0).await.expect("session").id;
        let mut model = ScriptedModel::new(4096, vec!["Mira waves.]".into(), "never asked for".into()]);
        let (fourth, _, _) = reply(&mut chat, &mut model, &mut mem, &plain_sid, "Hi!", 40).await;
        assert_eq!((fourth.thought.as_deref(), fourth.text.as_str()), (None, "Mira waves.]"));
        assert_eq!(model.prompts.len(), 1);
    });
}
