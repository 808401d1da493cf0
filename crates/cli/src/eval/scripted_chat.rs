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

    /// The model's tokens for `text` (as plain text: no special tokens).
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>, CliError> {
        Ok(self.model.tokenizer().encode(text, false, false).map_err(llm::LlmError::from)?)
    }
}
