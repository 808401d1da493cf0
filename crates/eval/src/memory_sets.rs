//! Case sets of what the character knows (issue 15, item 8): chats played through the engine,
//! then questions whose answer was planted earlier. Each question is scored four ways:
//!
//! - retrieval: the answer is in one of the best `k` memories the engine's retrieval returns
//!   for the question (recall@k; no model involved);
//! - in the prompt: the answer is somewhere in the prompt the reply was written from (the
//!   memory block, the profile, or the history still shown);
//! - in the reply: the reply to the question contains the answer (case-insensitive);
//! - by likelihood: of the question's options (the true answer and distractors, as things the
//!   character could say), the true one has the highest mean log-probability per token as the
//!   continuation of that prompt (multiple choice, as PersonaMem scores it).
//!
//! Groups: `recall` (facts stated at turns 1…50, asked at the end), `control` (a pinned memory
//! that contradicts the card must win: PsyMem's counterfactual memory), `preference` (a
//! preference replaced later in the chat, with the user profile on), `persona` (the answer that
//! fits the card's profile over one that does not). Every reply of the run is also checked for
//! an identity leak: a word such as "AI", "assistant", "chatbot", a model's name, or "language
//! model", "trained by" (a character in role has no use for them; a false alarm is possible).

use std::collections::BTreeMap;

use engine::ReplyOptions;
use llm::SamplingParams;
use serde::Deserialize;
use serde_json::{Value, json};

use memory::TextEmbedder;

use crate::{CaseChat, ChatRunner, Limits, Report, Result, bad, rate, v3_card};

#[derive(Deserialize)]
struct MemorySet {
    description: String,
    max_tokens: usize,
    /// Retrieval is scored at this many memories.
    k: usize,
    chats: Vec<ChatCase>,
}

#[derive(Deserialize)]
struct ChatCase {
    #[serde(flatten)]
    chat: CaseChat,
    /// Share the user's profile with the character.
    #[serde(default)]
    user_profile: bool,
    /// Pinned notes ("always keep in mind").
    #[serde(default)]
    pinned: Vec<String>,
    turns: Vec<String>,
    questions: Vec<Question>,
}

#[derive(Deserialize)]
struct Question {
    ask: String,
    /// A word or phrase the right reply contains; absent where only the options are scored.
    #[serde(default)]
    answer: Option<String>,
    /// The true option first, then distractors.
    options: Vec<String>,
    /// For `recall`: the turn (1-based) the fact was stated at.
    #[serde(default)]
    planted_at: Option<usize>,
}

/// Words a character in role should not use of itself: it is no AI, assistant or model.
const LEAK_WORDS: &[&str] = &["ai", "assistant", "chatbot", "smollm", "gemma", "qwen", "llama"];
/// Phrases of the same kind.
const LEAK_PHRASES: &[&str] = &["language model", "hugging face", "trained by", "artificial intelligence"];

pub fn leaks(reply: &str) -> bool {
    let lower = reply.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
    LEAK_WORDS.iter().any(|w| words.contains(w)) || LEAK_PHRASES.iter().any(|p| lower.contains(p))
}

#[derive(Default)]
struct Tally {
    questions: usize,
    /// Questions with an `answer` (the reply and retrieval can be checked).
    answerable: usize,
    retrieved: usize,
    in_prompt: usize,
    in_reply: usize,
    chosen: usize,
    chance: f64,
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

pub(crate) async fn run_set<E: TextEmbedder>(runner: &mut ChatRunner<'_, E>, value: &Value, limits: Limits, transcript: &mut Vec<Value>) -> Result<Report> {
    let set: MemorySet = serde_json::from_value(value.clone()).map_err(|e| bad(format!("memory set: {e}")))?;
    let chats = limits.chats(&set.chats);
    let options = ReplyOptions { max_tokens: set.max_tokens, sampling: SamplingParams { temperature: 0.0, ..ReplyOptions::default().sampling } };
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    // Recall by how many turns lay between the fact and its question.
    let mut by_distance: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let (mut replies, mut leaked) = (0, 0);
    for case in chats {
        runner.reset().await?;
        let character = runner.import_card(&serde_json::to_vec(&v3_card(&case.chat.card)).map_err(bad)?).await?;
        if case.user_profile {
            runner.update_character(&character, &json!({ "userProfile": true })).await?;
        }
        for note in &case.pinned {
            runner.pin(&character, note).await?;
        }
        let session = runner.start(&character, &case.chat.user_name, 0).await?;
        let mut count_reply = |text: &str| {
            replies += 1;
            leaked += usize::from(leaks(text));
        };
        for text in limits.turns(&case.turns) {
            if let Some(reply) = runner.send(&session.id, text, &options).await? {
                count_reply(&reply.text);
            }
        }
        let turns = case.turns.len();
        let tally = groups.entry(case.chat.group.clone()).or_default();
        for q in &case.questions {
            if q.options.len() < 2 {
                return Err(bad(format!("chat {}: a question needs at least two options", case.chat.id)));
            }
            let found = runner.search(&character, &q.ask, set.k).await?;
            let reply = runner.send(&session.id, &q.ask, &options).await?.map(|m| m.text).unwrap_or_default();
            count_reply(&reply);
            let prompt = runner.last_prompt(&session.id).ok_or_else(|| bad("no prompt after a reply"))?;
            let scores = runner.option_log_likelihoods(&prompt, &q.options).await?;
            let best = scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
            tally.questions += 1;
            tally.chance += 1.0 / q.options.len() as f64;
            tally.chosen += usize::from(best == Some(0));
            let mut scored = json!({
                "chat": case.chat.id, "group": case.chat.group, "question": q.ask, "reply": reply, "options": q.options,
                "log_likelihoods": scores, "chosen": best,
            });
            if let Some(answer) = &q.answer {
                let retrieved = found.iter().any(|t| contains(t, answer));
                // The prompt the reply was written from, not counting the question itself.
                let in_prompt = contains(&prompt.replace(&q.ask, ""), answer);
                tally.answerable += 1;
                tally.retrieved += usize::from(retrieved);
                tally.in_prompt += usize::from(in_prompt);
                tally.in_reply += usize::from(contains(&reply, answer));
                if let Some(at) = q.planted_at {
                    let bucket = by_distance.entry((turns + 1 - at).div_ceil(10) * 10).or_default();
                    bucket.0 += 1;
                    bucket.1 += usize::from(retrieved);
                }
                scored["retrieved"] = json!(retrieved);
                scored["in_prompt"] = json!(in_prompt);
                scored["top_memories"] = json!(found);
            }
            transcript.push(scored);
        }
    }
    let k = set.k;
    let rows = groups
        .iter()
        .map(|(name, t)| {
            vec![
                name.clone(),
                t.questions.to_string(),
                rate(t.retrieved, t.answerable),
                rate(t.in_prompt, t.answerable),
                rate(t.in_reply, t.answerable),
                rate(t.chosen, t.questions),
                format!("{:.2}", t.chance / t.questions.max(1) as f64),
            ]
        })
        .collect();
    let mut notes = vec![format!(
        "Greedy replies of at most {} tokens, the engine's prompt and memory as the demo uses them ({}-token context). Identity leak: {leaked} of {replies} replies ({}).",
        set.max_tokens,
        runner.context(),
        rate(leaked, replies),
    )];
    if !by_distance.is_empty() {
        let parts: Vec<String> = by_distance.iter().map(|(d, (n, hit))| format!("≤{d} turns: {}/{n}", hit)).collect();
        notes.push(format!("Retrieval recall@{k} of planted facts by distance: {}.", parts.join(", ")));
    }
    Ok(Report {
        set: String::new(),
        seconds: 0.0,
        description: set.description,
        columns: ["Group", "Questions", &format!("Retrieval recall@{k}"), "Answer in prompt", "Answer in reply", "Log-likelihood choice", "Chance"].iter().map(|s| s.to_string()).collect(),
        rows,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_leaks_are_the_character_calling_itself_a_machine() {
        assert!(leaks("As an AI, I cannot garden."));
        assert!(leaks("I'm SmolLM, trained by Hugging Face."));
        assert!(leaks("Mira is a language assistant for creative writing."));
        assert!(!leaks("I keep a small garden by the sea, and I said it again."));
    }
}
