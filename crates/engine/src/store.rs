//! Where characters and sessions live: the [`ChatStore`] trait, and [`InMemoryChatStore`] for
//! native use and tests. The browser's IndexedDB implementation is in `crates/web`, in the same
//! database as the memory records.
//!
//! Like the memory store, the trait is shaped for IndexedDB: async, `&self`, futures that need
//! not be `Send`. Each method is one transaction; removing a character removes its sessions in
//! the same one.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::error::Result;
use crate::types::{Session, StoredCharacter};

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
    async fn put_session(&self, session: &Session) -> Result<()>;
    async fn delete_session(&self, id: &str) -> Result<()>;

    /// Several characters and sessions written in one transaction (importing a backup).
    async fn put_all(&self, characters: &[StoredCharacter], sessions: &[Session]) -> Result<()>;
    /// Delete every character and session.
    async fn clear(&self) -> Result<()>;
}

/// Characters and sessions in memory (gone with the process).
#[derive(Default)]
pub struct InMemoryChatStore {
    characters: RefCell<BTreeMap<String, StoredCharacter>>,
    sessions: RefCell<BTreeMap<String, Session>>,
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

    async fn delete_session(&self, id: &str) -> Result<()> {
        self.sessions.borrow_mut().remove(id);
        Ok(())
    }

    async fn put_all(&self, characters: &[StoredCharacter], sessions: &[Session]) -> Result<()> {
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
        Ok(())
    }
}
