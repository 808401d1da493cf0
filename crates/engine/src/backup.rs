//! Everything in one file (`engine.exportAll` / `importAll`): characters, sessions, the user's
//! profile and memory records, with their embeddings, so a restore re-embeds nothing.

use memory::record::{decode_record, encode_record};
use memory::{Memory, Store, TextEmbedder};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{EngineError, Result};
use crate::store::ChatStore;
use crate::types::{Session, StoredCharacter};
use crate::user_profile::UserFact;

pub const BACKUP_FORMAT: &str = "confidant-backup";
/// 2: the user's profile (`userProfile`) added; version 1 backups import as before.
pub const BACKUP_VERSION: u64 = 2;

/// What an import wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    pub characters: usize,
    pub sessions: usize,
    pub memories: usize,
    #[serde(rename = "userFacts")]
    pub user_facts: usize,
}

pub(crate) async fn export_all<C: ChatStore, E: TextEmbedder, S: Store>(store: &C, memory: &Memory<E, S>, now: u64) -> Result<Value> {
    let mut characters = store.list_characters().await?;
    characters.sort_by(|a, b| a.id.cmp(&b.id));
    let mut sessions = store.list_sessions(None).await?;
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    let mut records = memory.export_records(None).await?;
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let memories = records.iter().map(encode_record).collect::<memory::Result<Vec<Value>>>()?;
    let mut user_profile = store.list_user_facts().await?;
    user_profile.sort_by(|a, b| a.id.cmp(&b.id));
    let mut backup = json!({
        "format": BACKUP_FORMAT,
        "version": BACKUP_VERSION,
        "exportedAt": now,
        "characters": characters,
        "sessions": sessions,
        "memories": memories,
        "userProfile": user_profile,
    });
    // Records that could not be read go along as they were stored, for a later recovery; an
    // import leaves them out.
    let unreadable = store.unreadable().await?;
    if !unreadable.is_empty() {
        backup["unreadable"] = serde_json::to_value(&unreadable).map_err(|e| EngineError::Storage(format!("unreadable records: {e}")))?;
    }
    Ok(backup)
}

fn list<'a>(backup: &'a Value, key: &str) -> Result<&'a [Value]> {
    match backup.get(key) {
        Some(Value::Array(items)) => Ok(items),
        None => Ok(&[]),
        Some(_) => Err(EngineError::BadRequest(format!("backup: `{key}` is not a list"))),
    }
}

pub(crate) async fn import_all<C: ChatStore, E: TextEmbedder, S: Store>(
    store: &C,
    memory: &mut Memory<E, S>,
    backup: &Value,
    replace_newer: bool,
) -> Result<ImportCounts> {
    if backup.get("format").and_then(Value::as_str) != Some(BACKUP_FORMAT) {
        return Err(EngineError::BadRequest("not a Confidant backup (no \"format\": \"confidant-backup\")".into()));
    }
    match backup.get("version").and_then(Value::as_u64) {
        Some(v) if v <= BACKUP_VERSION => {}
        Some(v) => return Err(EngineError::BadRequest(format!("the backup is version {v}; this release reads up to {BACKUP_VERSION}"))),
        None => return Err(EngineError::BadRequest("the backup has no version".into())),
    }
    // Check everything before writing anything.
    let characters: Vec<StoredCharacter> = list(backup, "characters")?
        .iter()
        .map(|c| serde_json::from_value(c.clone()).map_err(|e| EngineError::BadRequest(format!("backup: a character: {e}"))))
        .collect::<Result<_>>()?;
    for c in &characters {
        c.character().map_err(|e| EngineError::BadRequest(format!("backup: {e}")))?;
        c.avatar_bytes().map_err(|e| EngineError::BadRequest(format!("backup: {e}")))?;
    }
    let sessions: Vec<Session> = list(backup, "sessions")?
        .iter()
        .map(|s| serde_json::from_value(s.clone()).map_err(|e| EngineError::BadRequest(format!("backup: a session: {e}"))))
        .collect::<Result<_>>()?;
    let records = list(backup, "memories")?
        .iter()
        .map(|r| decode_record(r.clone()).map_err(|e| EngineError::BadRequest(format!("backup: a memory: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let user_facts: Vec<UserFact> = list(backup, "userProfile")?
        .iter()
        .map(|f| serde_json::from_value(f.clone()).map_err(|e| EngineError::BadRequest(format!("backup: a profile fact: {e}"))))
        .collect::<Result<_>>()?;
    memory::check_import(&records).map_err(|e| EngineError::BadRequest(format!("backup: {e}")))?;
    if !replace_newer {
        let mut newer = 0;
        for c in &characters {
            newer += usize::from(store.get_character(&c.id).await?.is_some_and(|here| here.updated_at > c.updated_at));
        }
        for s in &sessions {
            newer += usize::from(store.get_session(&s.id).await?.is_some_and(|here| here.updated_at > s.updated_at));
        }
        if newer > 0 {
            return Err(EngineError::NewerData { count: newer });
        }
    }
    let counts = ImportCounts { characters: characters.len(), sessions: sessions.len(), memories: records.len(), user_facts: user_facts.len() };
    if store.holds_memories() {
        // One transaction: characters, sessions and memories, all or nothing.
        store.put_all(&characters, &sessions, &user_facts, &records).await?;
        memory.unload();
    } else {
        store.put_all(&characters, &sessions, &user_facts, &[]).await?;
        memory.import_records(records).await?;
    }
    Ok(counts)
}
