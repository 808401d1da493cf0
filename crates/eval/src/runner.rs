//! A chat driven by a script: the engine, a fresh memory and the model, as the demo wires them,
//! for case sets that play conversations.

use std::path::Path;

use engine::{ChatEngine, EngineSettings, InMemoryChatStore, Message, ReplyOptions, Session, TurnEvent};
use llm::Generator;
use llm::device::AdapterInfo;
use memory::{Embedder, InMemoryStore, Memory, MemoryConfig};

use crate::{Backend, CliError, load};

pub(crate) struct ChatRunner {
    model: Generator,
    memory: Memory<Embedder, InMemoryStore>,
    chat: ChatEngine<InMemoryChatStore>,
    adapter: AdapterInfo,
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Eval(format!("cannot read {}: {e}", path.display())))
}

impl ChatRunner {
    pub fn load(model: &Path, backend: Backend, context: usize, embedder: &Path) -> Result<Self, CliError> {
        let (model, adapter, _) = load(model, backend, context)?;
        let device = model.model().device().clone();
        let embedder = Embedder::load(
            &read(&embedder.join("model.safetensors"))?,
            &read(&embedder.join("tokenizer.json"))?,
            &read(&embedder.join("config.json"))?,
            &device,
        )
        .map_err(engine::EngineError::from)?;
        let memory = pollster::block_on(Memory::open(embedder, InMemoryStore::new(), MemoryConfig::default())).map_err(engine::EngineError::from)?;
        let chat = ChatEngine::new(InMemoryChatStore::new(), EngineSettings::default());
        Ok(Self { model, memory, chat, adapter })
    }

    /// Largest prompt + reply, in tokens.
    pub fn context(&self) -> usize {
        self.model.context_length()
    }

    /// "llvmpipe (cpu)" and the like.
    pub fn adapter(&self) -> String {
        self.adapter.summary()
    }

    /// Forget every character, chat and memory: each case starts from nothing.
    pub fn reset(&mut self) -> Result<(), CliError> {
        Ok(pollster::block_on(self.chat.wipe(&mut self.model, &mut self.memory))?)
    }

    /// Import a card (JSON, PNG or CHARX bytes); its id.
    pub fn import_card(&mut self, bytes: &[u8]) -> Result<String, CliError> {
        Ok(pollster::block_on(self.chat.import_character(bytes))?.id)
    }

    /// A new chat with greeting number `greeting` (0: the card's first message).
    pub fn start(&mut self, character_id: &str, user_name: &str, greeting: usize) -> Result<Session, CliError> {
        Ok(pollster::block_on(self.chat.create_session(character_id, user_name, greeting))?)
    }

    /// Send the user's message and run the whole reply; the stored reply (`None` when the
    /// model wrote nothing).
    pub fn send(&mut self, session_id: &str, text: &str, options: &ReplyOptions) -> Result<Option<Message>, CliError> {
        pollster::block_on(async {
            self.chat.begin_send(&mut self.model, session_id, text, options).await?;
            let mut reply = None;
            while let Some(event) = self.chat.next_event(&mut self.model, &mut self.memory).await? {
                if let TurnEvent::Done { message, .. } = event {
                    reply = message;
                }
            }
            Ok(reply)
        })
    }

    /// Change a character as `characters.update` does (e.g. `{ "userProfile": true }`).
    pub fn update_character(&mut self, id: &str, patch: &serde_json::Value) -> Result<(), CliError> {
        pollster::block_on(self.chat.update_character(id, patch))?;
        Ok(())
    }

    /// A pinned note the character always keeps in mind ("always keep in mind" in the demo).
    pub fn pin(&mut self, character_id: &str, text: &str) -> Result<(), CliError> {
        pollster::block_on(self.memory.add(memory::NewMemory::new(character_id, memory::MemoryKind::PinnedNote, text))).map_err(engine::EngineError::from)?;
        Ok(())
    }

    /// The texts of the best `k` memories for `query`, as the engine's retrieval ranks them.
    pub fn search(&mut self, character_id: &str, query: &str, k: usize) -> Result<Vec<String>, CliError> {
        let hits = pollster::block_on(self.memory.search(memory::SearchQuery::new(character_id, query, k))).map_err(engine::EngineError::from)?;
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
    pub fn option_log_likelihoods(&mut self, prompt: &str, options: &[String]) -> Result<Vec<f32>, CliError> {
        let prompt_tokens = self.model.encode_raw(prompt).map_err(engine::EngineError::from)?;
        let model = self.model.model();
        let longest = options.iter().map(|o| o.len()).max().unwrap_or(0) + 8;
        let mut cache = model.new_cache(prompt_tokens.len() + longest);
        let last = rows(model.forward(&prompt_tokens, &mut cache, false).map_err(engine::EngineError::from)?.into_data().try_to_vec::<f32>())?;
        let mut scores = Vec::new();
        for option in options {
            let tokens = self.tokens(option)?;
            if tokens.is_empty() {
                return Err(CliError::Eval(format!("option {option:?} has no tokens")));
            }
            cache.truncate(prompt_tokens.len());
            let option_logits = rows(model.forward(&tokens, &mut cache, true).map_err(engine::EngineError::from)?.into_data().try_to_vec::<f32>())?;
            let vocab = last.len();
            // The first token's logits come from the prompt's last position, each next from the option's own.
            let mut total = 0.0;
            for (i, &t) in tokens.iter().enumerate() {
                let logits = if i == 0 { &last[..] } else { &option_logits[(i - 1) * vocab..i * vocab] };
                total += log_softmax_at(logits, t as usize);
            }
            scores.push(total / tokens.len() as f32);
        }
        Ok(scores)
    }

    /// The model's tokens for `text` (as plain text: no special tokens).
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>, CliError> {
        Ok(self.model.tokenizer().encode(text, false, false).map_err(llm::LlmError::from)?)
    }
}

/// Logits read back from the device, row after row.
fn rows<E: std::fmt::Debug>(read: Result<Vec<f32>, E>) -> Result<Vec<f32>, CliError> {
    read.map_err(|e| CliError::Eval(format!("reading logits: {e:?}")))
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
