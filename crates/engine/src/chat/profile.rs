//! The user's profile in the engine (see [`crate::user_profile`]): learned from the user's
//! messages in chats with characters that share it, edited by the user, and put in those
//! characters' prompts.

use memory::{Memory, Store, TextEmbedder};
use persona::{Character, MemoryItem};

use super::ChatEngine;
use crate::error::{EngineError, Result};
use crate::facts::profile_statements;
use crate::store::ChatStore;
use crate::types::{Message, Session, Speaker};
use crate::user_profile::{Merge, UserFact, embedded_text, merge, prompt_order};

/// Longest subject and value accepted from the user, in bytes.
const MAX_SUBJECT_BYTES: usize = 60;
const MAX_VALUE_BYTES: usize = 300;

fn check_fact(subject: &str, value: &str) -> Result<()> {
    if subject.trim().is_empty() || value.trim().is_empty() {
        return Err(EngineError::BadRequest("a profile fact needs a subject and a value".into()));
    }
    if subject.len() > MAX_SUBJECT_BYTES || value.len() > MAX_VALUE_BYTES {
        return Err(EngineError::BadRequest(format!("a profile fact's subject is at most {MAX_SUBJECT_BYTES} bytes and its value {MAX_VALUE_BYTES}")));
    }
    Ok(())
}

impl<C: ChatStore> ChatEngine<C> {
    /// The user's profile: current facts first (in prompt order), then the superseded ones,
    /// newest first. Embeddings left out.
    pub async fn user_profile(&self) -> Result<Vec<UserFact>> {
        let facts = self.store.list_user_facts().await?;
        let mut out: Vec<UserFact> = prompt_order(&facts).into_iter().map(UserFact::view).collect();
        let mut history: Vec<&UserFact> = facts.iter().filter(|f| !f.is_current()).collect();
        history.sort_by(|a, b| b.superseded_at.cmp(&a.superseded_at).then(b.created_at.cmp(&a.created_at)));
        out.extend(history.into_iter().map(UserFact::view));
        Ok(out)
    }

    /// Add facts to the profile: each one merged as [`crate::user_profile::merge`] says (a
    /// repeat refreshes the stored fact, a replacement makes the old one history). Returns the
    /// facts as stored (the refreshed one for a repeat).
    async fn merge_user_facts<E: TextEmbedder, S: Store>(&self, memory: &Memory<E, S>, mut new: Vec<UserFact>) -> Result<Vec<UserFact>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<String> = new.iter().map(UserFact::embedded_text).collect();
        let embeddings = memory.embed(&texts.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        for (fact, embedding) in new.iter_mut().zip(embeddings) {
            fact.embedding = embedding.to_vec();
        }
        let mut facts = self.store.list_user_facts().await?;
        let mut changed: Vec<usize> = Vec::new();
        let mut result: Vec<usize> = Vec::new();
        for fact in new {
            match merge(&facts, &fact) {
                Merge::Duplicate(i) => {
                    facts[i].updated_at = fact.updated_at.max(facts[i].updated_at);
                    changed.push(i);
                    result.push(i);
                }
                Merge::Add { supersedes } => {
                    for i in supersedes {
                        facts[i].superseded_by = Some(fact.id.clone());
                        facts[i].superseded_at = Some(fact.created_at);
                        changed.push(i);
                    }
                    facts.push(fact);
                    changed.push(facts.len() - 1);
                    result.push(facts.len() - 1);
                }
            }
        }
        changed.sort_unstable();
        changed.dedup();
        let writes: Vec<UserFact> = changed.iter().map(|&i| facts[i].clone()).collect();
        self.store.put_user_facts(&writes).await?;
        Ok(result.into_iter().map(|i| facts[i].view()).collect())
    }

    /// Facts the user states in `message` (theirs, in a chat with a character that shares the
    /// profile), merged into the profile. Returns the sentences they came from: those need no
    /// memory record of their own, the profile is in every prompt.
    pub(super) async fn learn_user_facts<E: TextEmbedder, S: Store>(
        &self,
        memory: &Memory<E, S>,
        session: &Session,
        character: &Character,
        message: &Message,
    ) -> Result<Vec<String>> {
        // Only the user's own words: what a character says about the user may be made up.
        if message.role != Speaker::User || !character.shares_user_profile() {
            return Ok(Vec::new());
        }
        let statements = profile_statements(&message.text);
        let sentences: Vec<String> = statements.iter().map(|s| s.sentence.clone()).collect();
        let new: Vec<UserFact> = statements
            .into_iter()
            .map(|s| UserFact {
                statement: s.sentence,
                character_id: Some(session.character_id.clone()),
                session_id: Some(session.id.clone()),
                message_id: Some(message.id.clone()),
                ..UserFact::new(s.subject, s.value, message.created_at)
            })
            .collect();
        self.merge_user_facts(memory, new).await?;
        Ok(sentences)
    }

    /// Take back the facts learned from a message (edited or deleted): they go, and the facts
    /// they had superseded are current again.
    pub(super) async fn unlearn_user_facts(&self, message_id: &str) -> Result<()> {
        let facts = self.store.list_user_facts().await?;
        let gone: Vec<String> = facts.iter().filter(|f| f.message_id.as_deref() == Some(message_id)).map(|f| f.id.clone()).collect();
        if gone.is_empty() {
            return Ok(());
        }
        let restored: Vec<UserFact> = facts
            .iter()
            .filter(|f| f.superseded_by.as_ref().is_some_and(|by| gone.contains(by)))
            .map(|f| UserFact { superseded_by: None, superseded_at: None, ..f.clone() })
            .collect();
        self.store.put_user_facts(&restored).await?;
        self.store.delete_user_facts(&gone).await
    }

    /// Add a fact the user entered; it supersedes what it replaces, like a learned one.
    pub async fn add_user_fact<E: TextEmbedder, S: Store>(&mut self, memory: &Memory<E, S>, subject: &str, value: &str) -> Result<UserFact> {
        check_fact(subject, value)?;
        let now = self.now();
        let fact = UserFact::new(subject.trim().to_lowercase(), value.trim(), now);
        self.merge_user_facts(memory, vec![fact]).await?.pop().ok_or_else(|| EngineError::Storage("the fact was not stored".into()))
    }

    /// Change a fact's subject or value (re-embedded); it stays where it is in the history.
    pub async fn update_user_fact<E: TextEmbedder, S: Store>(
        &mut self,
        memory: &Memory<E, S>,
        id: &str,
        subject: Option<&str>,
        value: Option<&str>,
    ) -> Result<UserFact> {
        let facts = self.store.list_user_facts().await?;
        let mut fact = facts.into_iter().find(|f| f.id == id).ok_or_else(|| EngineError::not_found("profile fact", id))?;
        if let Some(subject) = subject {
            fact.subject = subject.trim().to_lowercase();
        }
        if let Some(value) = value {
            fact.value = value.trim().to_string();
        }
        check_fact(&fact.subject, &fact.value)?;
        let text = embedded_text(&fact.subject, &fact.value);
        fact.embedding = memory.embed(&[text.as_str()]).await?.into_iter().next().map(|e| e.to_vec()).unwrap_or_default();
        fact.updated_at = self.now();
        self.store.put_user_facts(std::slice::from_ref(&fact)).await?;
        Ok(fact.view())
    }

    /// Delete a fact (current or history) for good.
    pub async fn remove_user_fact(&mut self, id: &str) -> Result<()> {
        let facts = self.store.list_user_facts().await?;
        if !facts.iter().any(|f| f.id == id) {
            return Err(EngineError::not_found("profile fact", id));
        }
        self.store.delete_user_facts(&[id.to_string()]).await
    }

    /// Messages whose profile facts are all superseded: the user no longer says so.
    pub(super) async fn outdated_messages(&self, character: &Character) -> Result<std::collections::HashSet<String>> {
        if !character.shares_user_profile() {
            return Ok(Default::default());
        }
        let facts = self.store.list_user_facts().await?;
        let current: std::collections::HashSet<&str> = facts.iter().filter(|f| f.is_current()).filter_map(|f| f.message_id.as_deref()).collect();
        Ok(facts.iter().filter(|f| !f.is_current()).filter_map(|f| f.message_id.clone()).filter(|m| !current.contains(m.as_str())).collect())
    }

    /// The profile as the prompt shows it, for a character that shares it (else nothing).
    pub(super) async fn user_profile_items(&self, character: &Character) -> Result<Vec<MemoryItem>> {
        if !character.shares_user_profile() {
            return Ok(Vec::new());
        }
        let facts = self.store.list_user_facts().await?;
        Ok(prompt_order(&facts).into_iter().map(|f| MemoryItem::new(f.subject.clone(), f.value.clone())).collect())
    }
}
