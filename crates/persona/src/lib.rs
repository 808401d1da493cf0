//! Personas for Confidant: everything about a character that is not the model or the memory
//! store.
//!
//! * [`card`], [`card_io`]: Character Card V1, V2 and V3 from JSON, PNG (`chara` / `ccv3` text
//!   chunks) and CHARX, normalised to one [`Character`]; export to V2 or V3 JSON and PNG, every
//!   field kept (unknown ones included), so import → export → import is lossless.
//! * [`macros`]: `{{char}}`, `{{user}}`, `{{original}}`, `<BOT>`, `<USER>` at prompt time.
//! * [`profile`]: the optional psychological profile (Big Five and a few more indicators) and
//!   the inner-thoughts option, stored under `extensions.confidant`.
//! * [`lorebook`], [`lore_scan`]: character and global lorebooks, keyword triggering as the
//!   specs and SillyTavern do it.
//! * [`prompt`]: prompt assembly under a token budget counted by the model's tokenizer (behind
//!   [`TokenCounter`]), with a stable, cacheable prefix and a labelled debugging view.
//! * [`thoughts`]: the `[thought] (action) speech` parser, incremental for streaming.
//!
//! Hostile files give a [`CardError`], never a panic; sizes are bounded by [`limits`].
//! Card text is data: nothing here interprets HTML or scripts in it, and a front end must not
//! either.

pub mod card;
pub mod card_io;
mod charx;
pub mod chat;
pub mod error;
mod fields;
pub mod limits;
pub mod lore_scan;
pub mod lorebook;
pub mod macros;
mod png_card;
pub mod profile;
pub mod prompt;
pub mod thoughts;

pub use card::{Asset, CardSpec, Character, ExportSpec};
pub use card_io::{ImportedCard, export_card_json, export_card_png, import_card, import_card_json, import_card_png};
pub use chat::{ApproxTokenCounter, ChatMessage, Role, TokenCounter};
pub use error::{CardError, Result};
pub use lore_scan::{ActivatedLore, LoreActivation, LorePosition, LoreScanOptions, LoreSource, Trigger, activate_lore};
pub use lorebook::{LoreEntry, Lorebook};
pub use macros::MacroContext;
pub use png_card::{CCV3_KEYWORD, CHARA_KEYWORD};
pub use profile::{AttachmentStyle, ConfidantExtension, EXTENSION_KEY, HumorStyle, InnerThoughts, Profile};
pub use prompt::{
    AssembledPrompt, DEFAULT_POST_HISTORY, DEFAULT_SYSTEM_PROMPT, HistorySummary, LorePlacement, MemoryItem,
    PromptInput, PromptOptions, PromptSection, SectionKind, THOUGHTS_INSTRUCTION, THOUGHTS_REMINDER, assemble_prompt,
};
pub use thoughts::{ParsedReply, Segment, SegmentDelta, SegmentKind, ThoughtParser, parse_reply, parse_reply_with, strip_thoughts};
