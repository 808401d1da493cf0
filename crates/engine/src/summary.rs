//! Rolling summaries of a session, written by the model itself in the background.
//!
//! Every `summarize_every` messages (not counting the latest few), the messages since the last
//! summary go to the model with the previous summary, and it writes a new one covering all of
//! them. The prompt is an instruction in the user turn — the form SmolLM2 follows best — with
//! no persona, so the summary is in the third person. It is stored as an event memory and on
//! the session, where it stands in for the oldest messages once they no longer fit the context
//! (SillyTavern's rolling summary; LD-Agent's event memory, research.md §4, §6).

use llm::{GenerateOptions, SamplingParams};
use persona::Character;

use crate::error::Result;
use crate::model::ChatModel;
use crate::types::{Session, Speaker};

/// Messages longer than this are cut for the summary prompt.
const MAX_MESSAGE_CHARS: usize = 600;

pub(crate) struct SummaryJob {
    pub session_id: String,
    /// The last message covered.
    pub through_id: String,
    /// The messages new in this summary.
    pub covered_ids: Vec<String>,
    /// What the model wrote so far.
    pub text: String,
}

impl SummaryJob {
    /// Build the prompt for messages `start..end` and start generating.
    pub fn begin<M: ChatModel>(model: &mut M, session: &Session, character: &Character, start: usize, end: usize, max_tokens: usize) -> Result<Self> {
        let char_name = character.display_name();
        let transcript: Vec<String> = session.messages[start..end]
            .iter()
            .map(|m| {
                let name = match m.role {
                    Speaker::User => session.user_name.as_str(),
                    Speaker::Assistant => char_name,
                };
                let text: String = m.text.chars().take(MAX_MESSAGE_CHARS).collect();
                format!("{name}: {text}")
            })
            .collect();
        let previous = session.latest_summary().map(|(_, s)| format!("Summary so far: {}\n\n", s.text)).unwrap_or_default();
        let instruction = format!(
            "{previous}Conversation between {user} and {char_name}:\n{}\n\nSummarize what happened in two or three short sentences. Keep names, facts and events. Write only the summary.",
            transcript.join("\n"),
            user = session.user_name,
        );
        let messages = [
            llm::ChatMessage::new("system", "You write short, factual summaries of conversations."),
            llm::ChatMessage::new("user", instruction),
        ];
        let tokens = model.encode_chat(&messages)?;
        model.begin(tokens, GenerateOptions { max_tokens, sampling: SamplingParams::greedy(), ignore_eos: false, cache_prompt: true })?;
        Ok(Self {
            session_id: session.id.clone(),
            through_id: session.messages[end - 1].id.clone(),
            covered_ids: session.messages[start..end].iter().map(|m| m.id.clone()).collect(),
            text: String::new(),
        })
    }

    /// The summary, trimmed, cut at its last full sentence if the model was cut off.
    pub fn cleaned_text(&self) -> String {
        let text = self.text.trim();
        let text = text.strip_prefix("Summary:").unwrap_or(text).trim();
        match text.rfind(['.', '!', '?']) {
            Some(end) if end + 1 < text.len() && end > text.len() / 2 => text[..=end].to_string(),
            _ => text.to_string(),
        }
    }
}

/// After a rolling summary, the character's own note on it (CharacterGPT: the persona grows
/// with each chapter's summary, research.md §3): one sentence in its voice, on what it now
/// thinks of the user and how things between them changed.
pub(crate) struct NoteJob {
    pub session_id: String,
    pub character_id: String,
    pub text: String,
}

/// The note prompt's request, said plainly for a small model.
pub(crate) const NOTE_REQUEST: &str = "In one short sentence, as {char}, write what you now feel about {user} and how things between you have changed. Start with \"I\".";

impl NoteJob {
    pub fn begin<M: ChatModel>(model: &mut M, session: &Session, character: &Character, summary: &str, max_tokens: usize) -> Result<Self> {
        let char_name = character.display_name();
        let who: String = character.description.chars().take(400).collect();
        let system = format!("You are {char_name}. {}", who.replace("{{char}}", char_name).replace("{{user}}", &session.user_name));
        let request = NOTE_REQUEST.replace("{char}", char_name).replace("{user}", &session.user_name);
        let messages = [
            llm::ChatMessage::new("system", system),
            llm::ChatMessage::new("user", format!("What happened between you and {}: {summary}\n\n{request}", session.user_name)),
        ];
        let tokens = model.encode_chat(&messages)?;
        model.begin(tokens, GenerateOptions { max_tokens, sampling: SamplingParams::greedy(), ignore_eos: false, cache_prompt: true })?;
        Ok(Self { session_id: session.id.clone(), character_id: session.character_id.clone(), text: String::new() })
    }

    /// The first sentence, or nothing when the model wrote none.
    pub fn cleaned_text(&self) -> String {
        let text = self.text.trim().trim_matches('"').trim();
        match text.find(['.', '!', '?']) {
            Some(end) => text[..=end].to_string(),
            None => text.to_string(),
        }
    }
}
