//! The chat turn of Confidant: characters, sessions and memories tied to the model.
//!
//! Follow one turn in [`chat`]: user text → memories and lore → prompt ([`persona`]) → tokens
//! and streamed reply ([`llm`]) → thoughts parsed → reply stored → memory records and facts
//! ([`memory`], [`facts`]) → a rolling summary in the background ([`summary`]).
//!
//! * [`types`]: what is stored — characters (cards as V3 JSON), sessions, messages.
//! * [`store`]: the [`ChatStore`] trait (IndexedDB in `crates/web`) and an in-memory store.
//! * [`backup`]: export and import of everything as one JSON document.
//! * [`model`]: the [`ChatModel`] trait the engine drives (the real generator, or a scripted
//!   fake in tests).
//!
//! Nothing here knows about the browser.

pub mod backup;
pub mod chat;
pub mod error;
pub mod facts;
pub mod model;
pub mod store;
pub mod summary;
pub mod types;
pub mod user_profile;

pub use backup::{BACKUP_FORMAT, BACKUP_VERSION, ImportCounts};
pub use chat::{CardFormat, ChatEngine, EngineSettings, PromptDebug, ReplyOptions, Timings, TokenWork, TurnEvent, Usage};
pub use error::{EngineError, Result};
pub use model::ChatModel;
pub use store::{ChatStore, InMemoryChatStore};
pub use user_profile::UserFact;
pub use types::{PersonaNote, Message, Session, SessionSummary, Speaker, StoredCharacter, Swipe, UnreadableRecord};
