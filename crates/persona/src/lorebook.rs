//! Lorebooks (the card's `character_book`, and global "world info" books) as data: reading and
//! writing them losslessly, in the V2/V3 `character_book` shape or SillyTavern's world-info
//! file shape. Activation lives in [`crate::lore_scan`].

use serde_json::{Map, Value};

use crate::card::ExportSpec;
use crate::error::{CardError, Result};
use crate::fields::{FieldReader, FieldWriter};
use crate::limits::{MAX_CARD_JSON_BYTES, MAX_KEYS_PER_BOOK, MAX_KEYS_PER_ENTRY, MAX_LORE_ENTRIES};

/// A lorebook: `{name?, description?, scan_depth?, token_budget?, recursive_scanning?,
/// extensions, entries[]}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lorebook {
    pub name: Option<String>,
    pub description: Option<String>,
    /// How many of the latest messages are scanned for keys.
    pub scan_depth: Option<i64>,
    /// Tokens all activated entries may take together.
    pub token_budget: Option<i64>,
    /// Whether activated entries' content can activate further entries.
    pub recursive_scanning: Option<bool>,
    pub extensions: Map<String, Value>,
    pub entries: Vec<LoreEntry>,
    pub extra: Map<String, Value>,
}

/// One lorebook entry. `extensions` holds SillyTavern's per-entry settings, which
/// [`crate::lore_scan`] honours: `position` (0–6), `depth`, `role`, `selectiveLogic`,
/// `match_whole_words`, `case_sensitive`, `scan_depth`, `exclude_recursion`,
/// `prevent_recursion`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoreEntry {
    pub keys: Vec<String>,
    pub content: String,
    pub extensions: Map<String, Value>,
    pub enabled: bool,
    /// Lower values are inserted earlier in the prompt.
    pub insertion_order: i64,
    pub case_sensitive: Option<bool>,
    /// V3: every key is a regular expression.
    pub use_regex: Option<bool>,
    /// Always active (while enabled).
    pub constant: Option<bool>,
    pub name: Option<String>,
    /// Over the token budget, lower priorities are dropped first.
    pub priority: Option<i64>,
    /// A number (V2) or a number or string (V3).
    pub id: Option<Value>,
    pub comment: Option<String>,
    /// When true, a secondary key must match as well.
    pub selective: Option<bool>,
    pub secondary_keys: Option<Vec<String>>,
    /// `before_char` or `after_char`.
    pub position: Option<String>,
    pub extra: Map<String, Value>,
}

impl Default for LoreEntry {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            content: String::new(),
            extensions: Map::new(),
            enabled: true,
            insertion_order: 0,
            case_sensitive: None,
            use_regex: None,
            constant: None,
            name: None,
            priority: None,
            id: None,
            comment: None,
            selective: None,
            secondary_keys: None,
            position: None,
            extra: Map::new(),
        }
    }
}

impl LoreEntry {
    /// An enabled entry with keys and content.
    pub fn new(keys: &[&str], content: impl Into<String>) -> Self {
        Self { keys: keys.iter().map(|k| (*k).to_owned()).collect(), content: content.into(), ..Self::default() }
    }

    /// A label for debugging views: the name, else the comment, else the first key.
    pub fn label(&self) -> String {
        [self.name.as_deref(), self.comment.as_deref(), self.keys.first().map(String::as_str)]
            .into_iter()
            .flatten()
            .find(|s| !s.trim().is_empty())
            .unwrap_or("(unnamed entry)")
            .to_owned()
    }

    pub(crate) fn from_map(map: Map<String, Value>) -> Result<Self> {
        let mut f = FieldReader::new(map);
        let entry = Self {
            keys: f.strings("keys").unwrap_or_default(),
            content: f.string("content").unwrap_or_default(),
            extensions: f.object("extensions").unwrap_or_default(),
            enabled: f.bool("enabled").unwrap_or(true),
            insertion_order: f.int("insertion_order").unwrap_or(0),
            case_sensitive: f.bool("case_sensitive"),
            use_regex: f.bool("use_regex"),
            constant: f.bool("constant"),
            name: f.string("name"),
            priority: f.int("priority"),
            id: f.id("id"),
            comment: f.string("comment"),
            selective: f.bool("selective"),
            secondary_keys: f.strings("secondary_keys"),
            position: f.string("position"),
            extra: f.into_extra(),
        };
        let keys = entry.keys.len() + entry.secondary_keys.as_ref().map_or(0, Vec::len);
        if keys > MAX_KEYS_PER_ENTRY {
            return Err(CardError::TooMany {
                what: "keys of a lorebook entry",
                count: keys,
                limit: MAX_KEYS_PER_ENTRY,
            });
        }
        Ok(entry)
    }

    pub(crate) fn to_value(&self, spec: ExportSpec) -> Value {
        let mut w = FieldWriter::new(&self.extra);
        w.strings("keys", &self.keys);
        w.string("content", &self.content);
        w.put("extensions", Value::Object(self.extensions.clone()), self.extensions.is_empty());
        w.put("enabled", Value::Bool(self.enabled), self.enabled);
        w.put("insertion_order", Value::from(self.insertion_order), self.insertion_order == 0);
        w.opt("case_sensitive", &self.case_sensitive);
        match (spec, self.use_regex) {
            // Required in V3.
            (ExportSpec::V3, None) => w.put("use_regex", Value::Bool(false), true),
            (_, value) => w.opt("use_regex", &value),
        }
        w.opt("constant", &self.constant);
        w.opt("name", &self.name);
        w.opt("priority", &self.priority);
        w.opt("id", &self.id);
        w.opt("comment", &self.comment);
        w.opt("selective", &self.selective);
        w.opt_strings("secondary_keys", &self.secondary_keys);
        w.opt("position", &self.position);
        Value::Object(w.finish())
    }
}

impl Lorebook {
    /// Read a lorebook file: the V2/V3 `character_book` shape (`entries` is an array), or a
    /// SillyTavern world-info file (`entries` is an object keyed by uid), converted the way
    /// SillyTavern converts world info into a character book (its own settings go to each
    /// entry's `extensions`).
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_CARD_JSON_BYTES {
            return Err(CardError::TooLarge { what: "lorebook JSON", size: bytes.len(), limit: MAX_CARD_JSON_BYTES });
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| CardError::NotUtf8 { what: "lorebook JSON", valid_up_to: e.valid_up_to() })?;
        let value: Value = serde_json::from_str(text.strip_prefix('\u{feff}').unwrap_or(text))?;
        let Value::Object(mut map) = value else {
            return Err(CardError::NotACard("a lorebook must be a JSON object".into()));
        };
        // A whole card given as a lorebook: take its book.
        if let Some(Value::Object(data)) = map.get("data")
            && let Some(Value::Object(book)) = data.get("character_book")
        {
            return Self::from_map(book.clone());
        }
        match map.get("entries") {
            Some(Value::Array(_)) => Self::from_map(map),
            Some(Value::Object(_)) => {
                let Some(Value::Object(entries)) = map.remove("entries") else {
                    return Err(CardError::NotACard("lorebook `entries` vanished".into()));
                };
                from_world_info(map, entries)
            }
            _ => Err(CardError::NotACard("a lorebook needs `entries`".into())),
        }
    }

    pub(crate) fn from_map(map: Map<String, Value>) -> Result<Self> {
        let mut f = FieldReader::new(map);
        let count = f_peek_entries_len(&mut f).unwrap_or_default();
        if count > MAX_LORE_ENTRIES {
            return Err(CardError::TooMany { what: "lorebook entries", count, limit: MAX_LORE_ENTRIES });
        }
        let mut entries = Vec::new();
        let mut failure = None;
        let _ = f.with("entries", |v| match v {
            Value::Array(items) if items.iter().all(Value::is_object) => {
                for item in items {
                    if let Value::Object(m) = item {
                        match LoreEntry::from_map(m) {
                            Ok(e) => entries.push(e),
                            Err(e) => {
                                failure = Some(e);
                                break;
                            }
                        }
                    }
                }
                Ok(())
            }
            other => Err(other),
        });
        if let Some(e) = failure {
            return Err(e);
        }
        check_total_keys(&entries)?;
        Ok(Self {
            name: f.string("name"),
            description: f.string("description"),
            scan_depth: f.int("scan_depth"),
            token_budget: f.int("token_budget"),
            recursive_scanning: f.bool("recursive_scanning"),
            extensions: f.object("extensions").unwrap_or_default(),
            entries,
            extra: f.into_extra(),
        })
    }

    /// The lorebook in the V2/V3 `character_book` shape.
    pub fn to_value(&self, spec: ExportSpec) -> Value {
        let mut w = FieldWriter::new(&self.extra);
        w.opt("name", &self.name);
        w.opt("description", &self.description);
        w.opt("scan_depth", &self.scan_depth);
        w.opt("token_budget", &self.token_budget);
        w.opt("recursive_scanning", &self.recursive_scanning);
        w.put("extensions", Value::Object(self.extensions.clone()), self.extensions.is_empty());
        let entries = self.entries.iter().map(|e| e.to_value(spec)).collect();
        w.put("entries", Value::Array(entries), self.entries.is_empty());
        Value::Object(w.finish())
    }
}

fn check_total_keys(entries: &[LoreEntry]) -> Result<()> {
    let count: usize = entries.iter().map(|e| e.keys.len() + e.secondary_keys.as_ref().map_or(0, Vec::len)).sum();
    if count > MAX_KEYS_PER_BOOK {
        return Err(CardError::TooMany { what: "keys in one lorebook", count, limit: MAX_KEYS_PER_BOOK });
    }
    Ok(())
}

fn f_peek_entries_len(f: &mut FieldReader) -> Option<usize> {
    let mut len = None;
    let _: Option<()> = f.with("entries", |v| {
        len = v.as_array().map(Vec::len);
        Err(v)
    });
    len
}

/// SillyTavern world info: `{entries: {"0": {uid, key, keysecondary, content, comment,
/// constant, selective, selectiveLogic, order, position, disable, depth, role, …}}}`.
fn from_world_info(rest: Map<String, Value>, entries: Map<String, Value>) -> Result<Lorebook> {
    if entries.len() > MAX_LORE_ENTRIES {
        return Err(CardError::TooMany { what: "lorebook entries", count: entries.len(), limit: MAX_LORE_ENTRIES });
    }
    let mut converted = Vec::with_capacity(entries.len());
    for (uid, raw) in entries {
        let Value::Object(raw) = raw else { continue };
        let mut f = FieldReader::new(raw);
        let keys = f.strings("key").unwrap_or_default();
        let secondary = f.strings("keysecondary").unwrap_or_default();
        if keys.len() + secondary.len() > MAX_KEYS_PER_ENTRY {
            return Err(CardError::TooMany {
                what: "keys of a lorebook entry",
                count: keys.len() + secondary.len(),
                limit: MAX_KEYS_PER_ENTRY,
            });
        }
        let position_number = f.int("position").unwrap_or(0);
        let mut extensions = Map::new();
        extensions.insert("position".into(), Value::from(position_number));
        // SillyTavern's camelCase settings under the snake_case names it uses in cards.
        for (from, to) in [
            ("excludeRecursion", "exclude_recursion"),
            ("preventRecursion", "prevent_recursion"),
            ("displayIndex", "display_index"),
            ("scanDepth", "scan_depth"),
            ("matchWholeWords", "match_whole_words"),
            ("caseSensitive", "case_sensitive"),
            ("selectiveLogic", "selectiveLogic"),
            ("probability", "probability"),
            ("useProbability", "useProbability"),
            ("depth", "depth"),
            ("role", "role"),
            ("group", "group"),
        ] {
            if let Some(v) = f.with(from, Ok) {
                extensions.insert(to.into(), v);
            }
        }
        let uid_number = f.int("uid").or_else(|| uid.parse().ok());
        let entry = LoreEntry {
            keys,
            secondary_keys: Some(secondary),
            content: f.string("content").unwrap_or_default(),
            comment: f.string("comment"),
            constant: f.bool("constant"),
            selective: f.bool("selective"),
            insertion_order: f.int("order").unwrap_or(100),
            enabled: !f.bool("disable").unwrap_or(false),
            position: Some(if position_number == 0 { "before_char" } else { "after_char" }.into()),
            id: uid_number.map(Value::from),
            extensions: {
                // Anything else SillyTavern stores stays with the entry.
                for (k, v) in f.into_extra() {
                    extensions.entry(k).or_insert(v);
                }
                extensions
            },
            ..LoreEntry::default()
        };
        converted.push(entry);
    }
    check_total_keys(&converted)?;
    // World-info objects are keyed by uid; keep a stable order.
    converted.sort_by_key(|e| e.id.as_ref().and_then(Value::as_i64).unwrap_or(i64::MAX));
    let mut f = FieldReader::new(rest);
    Ok(Lorebook {
        name: f.string("name"),
        description: f.string("description"),
        entries: converted,
        extra: f.into_extra(),
        ..Lorebook::default()
    })
}
