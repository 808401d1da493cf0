//! Two turns besides a reply: continuing the latest reply (the model picks up where it
//! stopped, and the same message grows) and impersonating (the model drafts the user's next
//! message, which is returned, not stored).

use persona::{Character, InnerThoughts};

use super::{PendingTurn, ReplyOptions};
use crate::chat::ChatEngine;
use crate::error::{EngineError, Result};
use crate::model::ChatModel;
use crate::store::ChatStore;
use crate::types::Speaker;

/// Put after the history in place of the card's post-history instructions when drafting the
/// user's turn: a small model needs it said plainly, last.
pub const IMPERSONATE_INSTRUCTION: &str = "Now write {{user}}'s next message to {{char}}, as {{user}} would say it, in one or two sentences. \
Write only {{user}}'s words, not {{char}}'s.";

/// The reply a continuation extends.
pub(super) struct Continued {
    pub message_id: String,
    /// Its text as the model wrote it, `[thought] (action) speech`: the start of the new one.
    pub raw: String,
    /// Its memory records, written again for the longer text when the continuation ends.
    pub memory_ids: Vec<String>,
}

impl<C: ChatStore> ChatEngine<C> {
    /// Extend the latest reply: the model continues its text, the pieces stream as events, and
    /// the same message is stored longer (its memories written again). Then call
    /// [`Self::next_event`] until it returns `None`. Only for the character's latest message.
    pub async fn begin_continue<M: ChatModel>(&mut self, model: &mut M, session_id: &str, options: &ReplyOptions) -> Result<()> {
        self.ensure_idle()?;
        self.cancel_background(model);
        let session = self.session(session_id).await?;
        let character = self.character(&session.character_id).await?.character()?;
        let last = session.messages.last().ok_or_else(|| EngineError::BadRequest("the session has no reply to continue".into()))?;
        if last.role != Speaker::Assistant || last.raw.trim().is_empty() {
            return Err(EngineError::BadRequest("only the character's latest reply can be continued".into()));
        }
        let continued = Continued { message_id: last.id.clone(), raw: last.raw.trim_end().to_string(), memory_ids: last.memory_ids.clone() };
        let reply_id = last.id.clone();
        let mut turn = PendingTurn::new(session, character, options.clone(), None);
        turn.reply_id = reply_id;
        turn.continues = Some(continued);
        turn.last_save = self.now();
        self.turn = Some(turn);
        Ok(())
    }

    /// Draft the user's next message in their voice (a suggestion to edit and send): the
    /// pieces stream as events and `Done` carries the `draft`; nothing is stored. Then call
    /// [`Self::next_event`] until it returns `None`.
    pub async fn begin_impersonate<M: ChatModel>(&mut self, model: &mut M, session_id: &str, options: &ReplyOptions) -> Result<()> {
        self.ensure_idle()?;
        self.cancel_background(model);
        let session = self.session(session_id).await?;
        let character = impersonating(self.character(&session.character_id).await?.character()?);
        let mut turn = PendingTurn::new(session, character, options.clone(), None);
        turn.impersonating = true;
        self.turn = Some(turn);
        Ok(())
    }
}

/// The character as the prompt sees it while the user's turn is drafted: the last instruction
/// asks for the user's words, and no thought format.
fn impersonating(mut character: Character) -> Character {
    character.post_history_instructions = IMPERSONATE_INSTRUCTION.to_string();
    character.set_inner_thoughts(InnerThoughts { enabled: false, ..character.inner_thoughts() });
    character
}
