//! Where characters and sessions live: the [`ChatStore`] trait, and [`InMemoryChatStore`] for
//! native use and tests. The browser's IndexedDB implementation is in `crates/web`, in the same
//! database as the memory records.
//!
//! Like the memory store, the trait is shaped for IndexedDB: async, `&self`, futures that need
//! not be `Send`. Each method is one transaction; removing a character removes its sessions in
//! the same one. Several tabs may share the store: a session is changed with
//! [`ChatStore::update_session`], which reads and writes it in one transaction, never by writing
//! back a copy read earlier.

use std::cell::RefCell;
use std::collections::BTreeMap;

use memory::MemoryRecord;

use crate::error::{EngineError, Result};
use crate::types::{Session, StoredCharacter, UnreadableRecord};
use crate::user_profile::UserFact;

#[allow(async_fn_in_trait)]
pub trait ChatStore {
    async fn list_characters(&self) -> Result<Vec<StoredCharacter>>;
    async fn get_character(&self, id: &str) -> Result<Option<StoredCharacter>>;
    async fn put_character(&self, character: &StoredCharacter) -> Result<()>;
    /// The character and all its sessions, atomically.
    async fn delete_character(&self, id: &str) -> Result<()>;

    /// Sessions of one character, or of all; each with its messages.
    async fn list_sessions(&self, character_id: Option<&str>) -> Result<Vec<Session>>;
    async fn get_session(&self, id: &str) -> Result<Option<Session>>;
    /// Store a new session (or replace one wholesale: only for sessions no one else knows yet).
    async fn put_session(&self, session: &Session) -> Result<()>;
    /// Read session `id`, apply `change`, write it back, all in one read-write transaction, so
    /// a change made meanwhile elsewhere (another tab, a background summary) is never
    /// overwritten. `NotFound` if the session is gone; an error from `change` writes nothing.
    async fn update_session<R>(&self, id: &str, change: impl FnOnce(&mut Session) -> Result<R>) -> Result<R>;
    async fn delete_session(&self, id: &str) -> Result<()>;

    /// The user's profile: every fact, superseded ones included.
    async fn list_user_facts(&self) -> Result<Vec<UserFact>>;
    /// Store facts (new ones, or changed ones replacing theirs by id), in one transaction.
    async fn put_user_facts(&self, facts: &[UserFact]) -> Result<()>;
    /// Delete facts by id, in one transaction.
    async fn delete_user_facts(&self, ids: &[String]) -> Result<()>;

    /// Whether the memory records live in this store's database, so that [`Self::put_all`]
    /// writes them in its transaction and [`Self::clear`] deletes them (IndexedDB); otherwise
    /// the caller writes them to its memory store.
    fn holds_memories(&self) -> bool {
        false
    }
    /// Several characters, sessions, profile facts and (see [`Self::holds_memories`]) memory
    /// records written in one transaction: importing a backup, all of it or none.
    async fn put_all(&self, characters: &[StoredCharacter], sessions: &[Session], user_facts: &[UserFact], memories: &[MemoryRecord]) -> Result<()>;
    /// Delete every character, session and profile fact (and with [`Self::holds_memories`], everything else in
    /// the database, unreadable records included), in one transaction.
    async fn clear(&self) -> Result<()>;

    /// Stored records that could not be read and were set aside (a store that cannot hold a
    /// corrupt record has none).
    async fn unreadable(&self) -> Result<Vec<UnreadableRecord>> {
        Ok(Vec::new())
    }
}

/// Characters and sessions in memory (gone with the process).
#[derive(Default)]
pub struct InMemoryChatStore {
    characters: RefCell<BTreeMap<String, StoredCharacter>>,
    sessions: RefCell<BTreeMap<String, Session>>,
    user_facts: RefCell<BTreeMap<String, UserFact>>,
}

impl InMemoryChatStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl ChatStore for InMemoryChatStore {
    async fn list_characters(&self) -> Result<Vec<StoredCharacter>> {
        Ok(self.characters.borrow().values().cloned().collect())
    }

    async fn get_character(&self, id: &str) -> Result<Option<StoredCharacter>> {
        Ok(self.characters.borrow().get(id).cloned())
    }

    async fn put_character(&self, character: &StoredCharacter) -> Result<()> {
        self.characters.borrow_mut().insert(character.id.clone(), character.clone());
        Ok(())
    }

    async fn delete_character(&self, id: &str) -> Result<()> {
        self.characters.borrow_mut().remove(id);
        self.sessions.borrow_mut().retain(|_, s| s.character_id != id);
        Ok(())
    }

    async fn list_sessions(&self, character_id: Option<&str>) -> Result<Vec<Session>> {
        Ok(self.sessions.borrow().values().filter(|s| character_id.is_none_or(|c| s.character_id == c)).cloned().collect())
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        Ok(self.sessions.borrow().get(id).cloned())
    }

    async fn put_session(&self, session: &Session) -> Result<()> {
        self.sessions.borrow_mut().insert(session.id.clone(), session.clone());
        Ok(())
    }

    async fn update_session<R>(&self, id: &str, change: impl FnOnce(&mut Session) -> Result<R>) -> Result<R> {
        let mut copy = self.sessions.borrow().get(id).cloned().ok_or_else(|| EngineError::not_found("session", id))?;
        let result = change(&mut copy)?;
        self.sessions.borrow_mut().insert(id.to_string(), copy);
        Ok(result)
    }

    async fn delete_session(&self, id: &str) -> Result<()> {
        self.sessions.borrow_mut().remove(id);
        Ok(())
    }

    async fn list_user_facts(&self) -> Result<Vec<UserFact>> {
        Ok(self.user_facts.borrow().values().cloned().collect())
    }

    async fn put_user_facts(&self, facts: &[UserFact]) -> Result<()> {
        let mut stored = self.user_facts.borrow_mut();
        for f in facts {
            stored.insert(f.id.clone(), f.clone());
        }
        Ok(())
    }

    async fn delete_user_facts(&self, ids: &[String]) -> Result<()> {
        let mut stored = self.user_facts.borrow_mut();
        for id in ids {
            stored.remove(id);
        }
        Ok(())
    }

    async fn put_all(&self, characters: &[StoredCharacter], sessions: &[Session], user_facts: &[UserFact], _memories: &[MemoryRecord]) -> Result<()> {
        self.put_user_facts(user_facts).await?;
        let mut stored = self.characters.borrow_mut();
        for c in characters {
            stored.insert(c.id.clone(), c.clone());
        }
        let mut stored = self.sessions.borrow_mut();
        for s in sessions {
            stored.insert(s.id.clone(), s.clone());
        }
        Ok(())
    }

    async fn clear(&self) -> Result<()> {
        self.characters.borrow_mut().clear();
        self.sessions.borrow_mut().clear();
        self.user_facts.borrow_mut().clear();
        Ok(())
    }
}
