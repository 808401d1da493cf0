//! Case sets of how the character's card is used (issue 15, item 8), played through the engine:
//!
//! - `lore`: each user message names the lorebook entries that should be in the prompt of the
//!   reply (keywords, whole words, secondary keys, constant and disabled entries); the entries the
//!   engine actually put in (the prompt's debug view) give precision and recall. The scan is by
//!   rule, so this measures the lorebook scanner, not the model.
//! - `thoughts`: a card with inner thoughts on or off. On, a reply adheres when it has a thought
//!   of a few words and speech (the engine pre-starts the thought, the model must write it, close
//!   it and go on); off, when it has no thought markup at all. Every reply is also checked for an
//!   identity leak.

use std::collections::{BTreeMap, BTreeSet};

use engine::ReplyOptions;
use llm::SamplingParams;
use serde::Deserialize;
use serde_json::{Value, json};

use memory::TextEmbedder;

use crate::memory_sets::leaks;
use crate::{CaseChat, ChatRunner, Limits, Report, Result, bad, rate, v3_card};

#[derive(Deserialize)]
struct PersonaSet {
    description: String,
    max_tokens: usize,
    chats: Vec<ChatCase>,
}

/// A chat of the set; its card's lorebook (`character_book`) is what `lore` chats test.
#[derive(Deserialize)]
struct ChatCase {
    #[serde(flatten)]
    chat: CaseChat,
    /// For `thoughts`: the character's inner thoughts on or off.
    #[serde(default)]
    thoughts: bool,
    turns: Vec<Turn>,
}

#[derive(Deserialize)]
struct Turn {
    say: String,
    /// For `lore`: the labels (names) of the entries the reply's prompt should hold.
    #[serde(default)]
    lore: Vec<String>,
}

#[derive(Default)]
struct Tally {
    replies: usize,
    /// Lore: entries expected, in the prompt, and both.
    expected: usize,
    activated: usize,
    right: usize,
    /// Thoughts: replies in the format asked for.
    adhered: usize,
}

/// Words a thought needs to count: a small model told the format `[thought] (action) speech`
/// often writes the placeholder itself, `[thought]`, which parses as a thought and says nothing.
const THOUGHT_WORDS: usize = 3;

/// Whether a reply is in the format its card asks for: a thought (of a few words at least) and
/// speech with thoughts on; no thought, and no bracket left in the speech, with them off.
fn adheres(message: &engine::Message, thoughts: bool) -> bool {
    let thought = message.thought.as_deref().unwrap_or("");
    if thoughts {
        thought.split_whitespace().count() >= THOUGHT_WORDS && !message.text.trim().is_empty()
    } else {
        thought.trim().is_empty() && !message.text.contains('[')
    }
}

pub(crate) async fn run_set<E: TextEmbedder>(runner: &mut ChatRunner<'_, E>, value: &Value, limits: Limits, transcript: &mut Vec<Value>) -> Result<Report> {
    let set: PersonaSet = serde_json::from_value(value.clone()).map_err(|e| bad(format!("persona set: {e}")))?;
    let chats = limits.chats(&set.chats);
    let options = ReplyOptions { max_tokens: set.max_tokens, sampling: SamplingParams { temperature: 0.0, ..ReplyOptions::default().sampling } };
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let (mut replies, mut leaked) = (0, 0);
    for case in chats {
        if !matches!(case.chat.group.as_str(), "lore" | "thoughts") {
            return Err(bad(format!("chat {}: unknown group {:?}", case.chat.id, case.chat.group)));
        }
        runner.reset().await?;
        let character = runner.import_card(&serde_json::to_vec(&v3_card(&case.chat.card)).map_err(bad)?).await?;
        runner.update_character(&character, &json!({ "innerThoughts": { "enabled": case.thoughts } })).await?;
        let session = runner.start(&character, &case.chat.user_name, 0).await?;
        let tally = groups.entry(format!("{}{}", case.chat.group, if case.chat.group == "thoughts" { if case.thoughts { " on" } else { " off" } } else { "" })).or_default();
        for turn in limits.turns(&case.turns) {
            let reply = runner.send(&session.id, &turn.say, &options).await?;
            let in_prompt: BTreeSet<String> = runner.last_lore(&session.id).into_iter().collect();
            let mut scored = json!({ "chat": case.chat.id, "group": case.chat.group, "say": turn.say, "reply": reply.as_ref().map(|m| m.raw.clone()) });
            if let Some(message) = &reply {
                replies += 1;
                leaked += usize::from(leaks(&message.text));
                tally.replies += 1;
                if case.chat.group == "thoughts" {
                    let ok = adheres(message, case.thoughts);
                    tally.adhered += usize::from(ok);
                    scored["adheres"] = json!(ok);
                }
            }
            if case.chat.group == "lore" {
                let expected: BTreeSet<String> = turn.lore.iter().cloned().collect();
                tally.expected += expected.len();
                tally.activated += in_prompt.len();
                tally.right += expected.intersection(&in_prompt).count();
                scored["lore_expected"] = json!(expected);
                scored["lore_in_prompt"] = json!(in_prompt);
            }
            transcript.push(scored);
        }
    }
    let rows = groups
        .iter()
        .map(|(name, t)| {
            let lore = name == "lore";
            vec![
                name.clone(),
                t.replies.to_string(),
                if lore { rate(t.right, t.activated) } else { "–".into() },
                if lore { rate(t.right, t.expected) } else { "–".into() },
                if lore { "–".into() } else { rate(t.adhered, t.replies) },
            ]
        })
        .collect();
    let notes = vec![format!(
        "Greedy replies of at most {} tokens ({}-token context). Identity leak: {leaked} of {replies} replies ({}).",
        set.max_tokens,
        runner.context(),
        rate(leaked, replies),
    )];
    Ok(Report {
        set: String::new(),
        seconds: 0.0,
        description: set.description,
        columns: ["Group", "Replies", "Lore precision", "Lore recall", "Format adherence"].iter().map(|s| s.to_string()).collect(),
        rows,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str, thought: Option<&str>) -> engine::Message {
        serde_json::from_value(json!({ "id": "m", "role": "assistant", "text": text, "thought": thought, "raw": text, "createdAt": 0 })).expect("a message")
    }

    #[test]
    fn a_reply_adheres_with_a_thought_and_speech_when_on_and_no_thought_when_off() {
        assert!(adheres(&message("Hello there.", Some("She is tired.")), true));
        assert!(!adheres(&message("Hello there.", None), true));
        assert!(!adheres(&message("", Some("Only a thought here.")), true));
        assert!(!adheres(&message("Hello there.", Some("thought")), true), "the format's placeholder is no thought");
        assert!(adheres(&message("Hello there.", None), false));
        assert!(!adheres(&message("[thinking] Hello.", None), false));
        assert!(!adheres(&message("Hello.", Some("A thought anyway.")), false));
    }
}
