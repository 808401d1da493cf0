//! A chat driven by a script: the engine, a fresh memory and the model, as the demo wires them,
//! for case sets that play conversations. Everything it stores is in memory and gone with it:
//! the browser runs it beside a person's own chats without touching them.

use engine::{ChatEngine, EngineSettings, InMemoryChatStore, Message, ReplyOptions, Session, TurnEvent};
use llm::Generator;
use memory::{InMemoryStore, Memory, MemoryConfig, TextEmbedder};

use crate::{EvalError, Result};

pub struct ChatRunner<'m, E: TextEmbedder> {
    model: &'m mut Generator,
    memory: Memory<E, InMemoryStore>,
    chat: ChatEngine<InMemoryChatStore>,
    adapter: String,
    progress: Box<dyn FnMut(&str) + 'm>,
}

impl<'m, E: TextEmbedder> ChatRunner<'m, E> {
    /// A runner over a loaded `model` and `embedder`; `adapter` names where they run ("llvmpipe
    /// (cpu)" and the like) in the reports.
    pub async fn new(model: &'m mut Generator, embedder: E, adapter: String) -> Result<Self> {
        let memory = Memory::open(embedder, InMemoryStore::new(), MemoryConfig::default()).await?;
        let chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
        Ok(Self { model, memory, chat, adapter, progress: Box::new(|_| {}) })
    }

    /// Where a long set reports how far it got (a line per condition, say).
    pub fn on_progress(&mut self, progress: impl FnMut(&str) + 'm) {
        self.progress = Box::new(progress);
    }

    pub(crate) fn report_progress(&mut self, line: &str) {
        (self.progress)(line);
    }

    /// Largest prompt + reply, in tokens.
    pub fn context(&self) -> usize {
        self.model.context_length()
    }

    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// Forget every character, chat and memory: each case starts from nothing.
    pub async fn reset(&mut self) -> Result<()> {
        Ok(self.chat.wipe(self.model, &mut self.memory).await?)
    }

    /// Import a card (JSON, PNG or CHARX bytes); its id.
    pub async fn import_card(&mut self, bytes: &[u8]) -> Result<String> {
        Ok(self.chat.import_character(bytes).await?.id)
    }

    /// A new chat with greeting number `greeting` (0: the card's first message).
    pub async fn start(&mut self, character_id: &str, user_name: &str, greeting: usize) -> Result<Session> {
        Ok(self.chat.create_session(character_id, user_name, greeting).await?)
    }

    /// Send the user's message and run the whole reply; the stored reply (`None` when the
    /// model wrote nothing).
    pub async fn send(&mut self, session_id: &str, text: &str, options: &ReplyOptions) -> Result<Option<Message>> {
        self.chat.begin_send(self.model, session_id, text, options).await?;
        let mut reply = None;
        while let Some(event) = self.chat.next_event(self.model, &mut self.memory).await? {
            if let TurnEvent::Done { message, .. } = event {
                reply = message;
            }
        }
        Ok(reply)
    }

    /// Change a character as `characters.update` does (e.g. `{ "userProfile": true }`).
    pub async fn update_character(&mut self, id: &str, patch: &serde_json::Value) -> Result<()> {
        self.chat.update_character(id, patch).await?;
        Ok(())
    }

    /// A pinned note the character always keeps in mind ("always keep in mind" in the demo).
    pub async fn pin(&mut self, character_id: &str, text: &str) -> Result<()> {
        self.memory.add(memory::NewMemory::new(character_id, memory::MemoryKind::PinnedNote, text)).await?;
        Ok(())
    }

    /// The texts of the best `k` memories for `query`, as the engine's retrieval ranks them.
    pub async fn search(&mut self, character_id: &str, query: &str, k: usize) -> Result<Vec<String>> {
        let hits = self.memory.search(memory::SearchQuery::new(character_id, query, k)).await?;
        Ok(hits.into_iter().map(|h| h.record.text).collect())
    }

    /// The exact text of the prompt of the session's latest reply (chat template applied).
    pub fn last_prompt(&self, session_id: &str) -> Option<String> {
        self.chat.debug_prompt(session_id).map(|p| p.rendered.clone())
    }

    /// The labels of the lorebook entries in the prompt of the session's latest reply.
    pub fn last_lore(&self, session_id: &str) -> Vec<String> {
        self.chat.debug_prompt(session_id).map(|p| p.lore_entries.clone()).unwrap_or_default()
    }

    /// Mean log-probability per token of each option as the continuation of `prompt` (a
    /// rendered prompt, special tokens written as text): the model's preference between them.
    pub async fn option_log_likelihoods(&mut self, prompt: &str, options: &[String]) -> Result<Vec<f32>> {
        let prompt_tokens = self.model.encode_raw(prompt)?;
        let model = self.model.model();
        let longest = options.iter().map(|o| o.len()).max().unwrap_or(0) + 8;
        let mut cache = model.new_cache(prompt_tokens.len() + longest);
        let last = model.forward(&prompt_tokens, &mut cache, false)?.into_data_async().await.map_err(unreadable)?.try_into_vec::<f32>().map_err(unreadable)?;
        let mut scores = Vec::new();
        for option in options {
            let tokens = self.tokens(option)?;
            if tokens.is_empty() {
                return Err(EvalError::Case(format!("option {option:?} has no tokens")));
            }
            cache.truncate(prompt_tokens.len());
            let option_logits = model.forward(&tokens, &mut cache, true)?.into_data_async().await.map_err(unreadable)?.try_into_vec::<f32>().map_err(unreadable)?;
            let vocab = last.len();
            // The first token's logits come from the prompt's last position, each next from the option's own.
            let mut total = 0.0;
            for (i, &t) in tokens.iter().enumerate() {
                let logits = if i == 0 { &last[..] } else { option_logits.get((i - 1) * vocab..i * vocab).ok_or_else(|| EvalError::Case("fewer logits than tokens".into()))? };
                total += log_softmax_at(logits, t as usize);
            }
            scores.push(total / tokens.len() as f32);
        }
        Ok(scores)
    }

    /// The model's tokens for `text` (as plain text: no special tokens).
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.model.tokenizer().encode(text, false, false).map_err(llm::LlmError::from)?)
    }
}

/// Logits that could not be read back from the device.
fn unreadable(e: impl std::fmt::Debug) -> EvalError {
    EvalError::Device(format!("reading logits: {e:?}"))
}

/// log softmax(logits)[index], computed stably.
fn log_softmax_at(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
    logits.get(index).map_or(f32::NEG_INFINITY, |&x| x - max - sum.ln())
}

#[cfg(test)]
mod tests {
    use super::log_softmax_at;

    #[test]
    fn log_softmax_of_one_entry() {
        // Two equal logits: each has probability 1/2.
        assert!((log_softmax_at(&[3.0, 3.0], 1) - 0.5f32.ln()).abs() < 1e-6);
        // Large logits do not overflow.
        assert!((log_softmax_at(&[1000.0, 0.0], 0)).abs() < 1e-6);
        assert_eq!(log_softmax_at(&[1.0], 5), f32::NEG_INFINITY);
    }
}
