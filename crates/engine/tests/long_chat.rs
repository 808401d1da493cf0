//! A 200-turn chat through the engine with a scripted fake model (no weights) and a word-hash
//! embedder, at 2k and 4k context: on every turn the latest rolling summary is in the prompt in
//! place of the messages it covers, the pinned memories are there, no memory is there twice (nor
//! a message the history already shows), and each reply keeps the ids of the memories its
//! prompt used. Then inner thoughts: the reply is pre-started with the thought marker when the
//! option is on, and brackets are speech when it is off.

mod common;

use common::{ScriptedModel, WordHashEmbedder};
use std::collections::HashSet;

use engine::{ChatEngine, EngineSettings, InMemoryChatStore, Message, ReplyOptions, TurnEvent};
use llm::SamplingParams;
use memory::{InMemoryStore, Memory, MemoryConfig, MemoryKind, NewMemory};
use persona::SectionKind;
use serde_json::json;

fn card(thoughts: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": "Mira",
            "description": "{{char}} keeps a small garden by the sea and knows every plant in it.",
            "personality": "warm, patient",
            "scenario": "{{user}} visits the garden.",
            "first_mes": "Oh, hello {{user}}! Mind the seedlings.",
            "mes_example": "",
            "alternate_greetings": [],
            "group_only_greetings": [],
            "extensions": { "confidant": { "inner_thoughts": { "enabled": thoughts, "strip_from_history": true } } }
        }
    }))
    .expect("json")
}

type Mem = Memory<WordHashEmbedder, InMemoryStore>;

async fn reply(chat: &mut ChatEngine<InMemoryChatStore>, model: &mut ScriptedModel, mem: &mut Mem, session: &str, text: &str) -> (Message, Vec<TurnEvent>) {
    chat.begin_send(model, session, text, &ReplyOptions { max_tokens: 450, sampling: SamplingParams::greedy() }).await.expect("send");
    let mut events = Vec::new();
    while let Some(event) = chat.next_event(model, mem).await.expect("event") {
        events.push(event);
    }
    match events.last() {
        Some(TurnEvent::Done { message: Some(m), .. }) => (m.clone(), events),
        other => panic!("no reply: {other:?}"),
    }
}

/// The history indices the prompt shows, from its section labels ("History 12 (user)").
fn shown_history(sections: &[persona::PromptSection]) -> Vec<usize> {
    sections
        .iter()
        .filter(|s| s.kind == SectionKind::History)
        .filter_map(|s| s.label.strip_prefix("History ")?.split(' ').next()?.parse().ok())
        .collect()
}

/// Runs the chat; how many prompts also dropped history the summary does not cover.
fn long_chat(context: usize) -> usize {
    pollster::block_on(async {
        let turns = 200;
        // Long replies (about 400 words), so at 2k context history is also dropped past the summary.
        let replies: Vec<String> = (0..turns)
            .map(|i| format!("Reply {i}: the fern number {i} is doing well, and the roses need water again. ").repeat(24))
            .collect();
        let mut model = ScriptedModel::new(context, replies);
        let mut mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
        let mut chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
        let character = chat.import_character(&card(false)).await.expect("import");
        let session = chat.create_session(&character.id, "Sam", 0).await.expect("session");
        let pinned = [
            "Sam is allergic to lilies and must never be given them.",
            "Sam's grandmother planted the old olive tree.",
        ];
        for text in pinned {
            mem.add(NewMemory::new(&character.id, MemoryKind::PinnedNote, text)).await.expect("pin");
        }
        let (mut summaries_seen, mut with_retrieved, mut dropped_past_summary, mut rewarmed) = (0, 0, 0, 0);
        let mut summary_before_turn = false;
        for turn in 0..turns {
            // Facts and plant talk, so memories are written and retrieved.
            let text = if turn % 7 == 0 {
                format!("My favourite plant this week is the fern number {turn}, I think.")
            } else {
                format!("Tell me about the fern number {} again, please.", turn / 2)
            };
            let (message, events) = reply(&mut chat, &mut model, &mut mem, &session.id, &text).await;
            let stored = chat.session(&session.id).await.expect("session");
            let debug = chat.debug_prompt(&session.id).expect("a prompt").clone();
            let shown = shown_history(&debug.sections);
            assert!(!shown.is_empty(), "turn {turn}: the latest message is shown");

            // The summary, when there is one, stands in for exactly what it covers.
            let summary_section = debug.sections.iter().find(|s| s.kind == SectionKind::Summary);
            // The prompt was assembled before this reply; the summary it used is the latest
            // one stored before the user's message.
            let before_reply = &stored.messages[..stored.messages.len() - 1];
            let latest = stored.summaries.iter().rev().find_map(|s| before_reply.iter().position(|m| m.id == s.through_id).map(|i| (i, s)));
            match latest {
                Some((covered_through, summary)) => {
                    let section = summary_section.unwrap_or_else(|| panic!("turn {turn}: no summary in the prompt\n{}", debug.text));
                    assert!(section.text.contains(summary.text.trim()), "turn {turn}: the latest summary {:?} is not the one shown: {:?}", summary.text, section.text);
                    let first = *shown.iter().min().expect("shown");
                    assert!(first > covered_through, "turn {turn}: message {first} is shown though the summary covers 0..={covered_through}");
                    dropped_past_summary += usize::from(first > covered_through + 1);
                    summaries_seen += 1;
                }
                None => assert!(summary_section.is_none(), "turn {turn}: a summary without one stored"),
            }

            // Pinned memories, always; no memory twice; no memory of a message already shown.
            let block = debug.sections.iter().find(|s| s.kind == SectionKind::Memories).map(|s| s.text.clone()).unwrap_or_default();
            for text in pinned {
                assert_eq!(block.matches(text).count(), 1, "turn {turn}: pinned memory {text:?} once in\n{block}");
            }
            let lines: Vec<&str> = block.lines().skip(1).collect();
            let unique: HashSet<&str> = lines.iter().map(|l| l.split_once(": ").map_or(*l, |(_, t)| t)).collect();
            assert_eq!(unique.len(), lines.len(), "turn {turn}: a memory twice in\n{block}");
            with_retrieved += usize::from(lines.len() > pinned.len());
            let visible: Vec<&str> = shown.iter().filter_map(|&i| stored.messages.get(i)).map(|m| m.text.as_str()).collect();
            for line in &lines {
                assert!(!visible.iter().any(|v| line.ends_with(&format!(": {v}"))), "turn {turn}: {line:?} repeats a message the prompt shows");
            }

            // The reply keeps the ids of the memories its prompt used (those of the memory event).
            let Some(TurnEvent::Memory { hits }) = events.first() else { panic!("turn {turn}: memory event first") };
            let used: Vec<String> = hits.iter().map(|h| h.record.id.clone()).collect();
            assert_eq!(message.used_memory_ids, used, "turn {turn}");
            assert_eq!(lines.len(), used.len(), "turn {turn}: every memory in the block is cited");
            assert_eq!(stored.messages.last().map(|m| m.used_memory_ids.clone()), Some(used));

            // After a background summary the persona prefix was read back: this reply found it
            // in the cache (it would be 2 tokens: the summary's prompt shares only "system You").
            if summary_before_turn {
                let Some(TurnEvent::Done { usage, .. }) = events.last() else { panic!("done last") };
                let persona_words = debug.sections.iter().filter(|s| s.message == 0).map(|s| s.tokens).sum::<usize>();
                assert!(usage.cached_tokens >= persona_words, "turn {turn}: {} tokens from the cache after a summary, the persona is {persona_words}", usage.cached_tokens);
                rewarmed += 1;
            }
            // Summaries are written in the background, between turns, as the page does.
            let written = model.summaries_written;
            while chat.background_step(&mut model, &mut mem).await.expect("background") {}
            summary_before_turn = model.summaries_written > written;
        }
        assert!(model.summaries_written >= 15, "{} summaries written", model.summaries_written);
        assert!(summaries_seen >= turns - 20, "a summary in {summaries_seen} of {turns} prompts");
        assert!(rewarmed >= 30, "the persona read back after {rewarmed} summaries");
        // Retrieved memories were there too, so "no memory twice" was put to the test.
        assert!(with_retrieved >= turns / 2, "retrieved memories in {with_retrieved} of {turns} prompts");
        eprintln!(
            "{context} context: {} summaries, one in {summaries_seen} of {turns} prompts; retrieved memories in {with_retrieved}; history dropped past the summary in {dropped_past_summary}",
            model.summaries_written
        );
        dropped_past_summary
    })
}

#[test]
fn two_hundred_turns_at_2k_context() {
    // At 2k the budget drops history beyond the summary too; the summary is still there.
    assert!(long_chat(2048) > 50);
}

#[test]
fn two_hundred_turns_at_4k_context() {
    long_chat(4096);
}

#[test]
fn thoughts_are_pre_started_when_on_and_brackets_are_speech_when_off() {
    pollster::block_on(async {
        for thoughts in [true, false] {
            // With thoughts on the model continues after "[", so the script starts inside it.
            let script = if thoughts { "She looks tired.] (waves) Hello (again) there." } else { "I said (quietly) hello [twice]. *waves*" };
            let mut model = ScriptedModel::new(2048, vec![script.to_string()]);
            let mut mem = Memory::open(WordHashEmbedder, InMemoryStore::new(), MemoryConfig::default()).await.expect("memory");
            let mut chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
            let character = chat.import_character(&card(thoughts)).await.expect("import");
            let session = chat.create_session(&character.id, "Sam", 0).await.expect("session");
            let (message, _) = reply(&mut chat, &mut model, &mut mem, &session.id, "Hi Mira").await;
            // What the model was given ends with the start of the reply (or does not).
            let prompt = model.prompts.last().expect("a prompt");
            let rendered = &chat.debug_prompt(&session.id).expect("prompt").rendered;
            if thoughts {
                assert!(prompt.ends_with("<|im_start|>assistant ["), "{prompt}");
                assert!(rendered.ends_with("<|im_start|>assistant ["), "{rendered}");
                assert_eq!(message.thought.as_deref(), Some("She looks tired."));
                assert_eq!(message.action.as_deref(), Some("waves again"));
                assert_eq!(message.text, "Hello there.");
            } else {
                assert!(prompt.ends_with("<|im_start|>assistant"), "{prompt}");
                assert_eq!(message.thought, None);
                assert_eq!(message.action.as_deref(), Some("waves"));
                assert_eq!(message.text, "I said (quietly) hello [twice].");
            }
        }
    });
}
