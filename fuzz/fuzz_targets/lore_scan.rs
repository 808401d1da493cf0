//! Lorebook scanning: books read from JSON bytes and books built out of the input (plain,
//! `/regex/flags` and V3-regex keys, decorators, selective logic, positions, scan depths,
//! recursion), scanned against any chat with any names. Errors and warnings are fine; panics,
//! hangs and unbounded memory are not. What comes out stays within the caps: kept content
//! under `MAX_LORE_TEXT_BYTES`, tokens within the budget, only enabled entries.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use persona::limits::MAX_LORE_TEXT_BYTES;
use persona::{ApproxTokenCounter, LoreEntry, LoreScanOptions, LoreSource, Lorebook, MacroContext, activate_lore};
use serde_json::{Map, Value};

#[derive(Arbitrary, Debug)]
struct Entry {
    keys: Vec<String>,
    secondary: Option<Vec<String>>,
    content: String,
    /// Repeats `content`, so that large books are reached from short inputs.
    repeat: u8,
    decorators: Vec<(u8, String)>,
    enabled: bool,
    constant: Option<bool>,
    selective: Option<bool>,
    use_regex: Option<bool>,
    case_sensitive: Option<bool>,
    insertion_order: i64,
    priority: Option<i64>,
    position: Option<u8>,
    extensions: Vec<(u8, i64)>,
    copies: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    json: Vec<u8>,
    entries: Vec<Entry>,
    scan_depth: Option<i64>,
    token_budget: Option<i64>,
    recursive: Option<bool>,
    options_depth: u8,
    options_budget: Option<u16>,
    options_recursive: Option<bool>,
    max_recursion: u8,
    case_sensitive: bool,
    whole_words: bool,
    messages: Vec<String>,
    char_name: String,
    user_name: String,
}

const DECORATORS: [&str; 9] =
    ["activate", "dont_activate", "depth", "scan_depth", "role", "additional_keys", "exclude_keys", "position", "@"];
const EXTENSIONS: [&str; 9] = [
    "position", "depth", "role", "selectiveLogic", "scan_depth", "case_sensitive", "match_whole_words",
    "exclude_recursion", "prevent_recursion",
];

fn entry(e: &Entry) -> LoreEntry {
    let mut content: String =
        e.decorators.iter().take(8).map(|(d, v)| format!("@@{} {v}\n", DECORATORS[usize::from(*d) % DECORATORS.len()])).collect();
    content.push_str(&e.content.repeat(usize::from(e.repeat).max(1)));
    let mut extensions = Map::new();
    for (k, v) in e.extensions.iter().take(8) {
        let key = EXTENSIONS[usize::from(*k) % EXTENSIONS.len()];
        let value = if key.contains("case") || key.contains("whole") || key.contains("recursion") {
            Value::Bool(v % 2 == 0)
        } else {
            Value::from(*v)
        };
        extensions.insert(key.into(), value);
    }
    LoreEntry {
        keys: e.keys.iter().take(16).cloned().collect(),
        secondary_keys: e.secondary.as_ref().map(|s| s.iter().take(16).cloned().collect()),
        content,
        extensions,
        enabled: e.enabled,
        insertion_order: e.insertion_order,
        case_sensitive: e.case_sensitive,
        use_regex: e.use_regex,
        constant: e.constant,
        priority: e.priority,
        selective: e.selective,
        position: e.position.map(|p| ["before_char", "after_char", "other"][usize::from(p % 3)].into()),
        ..LoreEntry::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary(&mut arbitrary::Unstructured::new(data)) else { return };
    let mut entries = Vec::new();
    for e in input.entries.iter().take(64) {
        let built = entry(e);
        for _ in 0..=usize::from(e.copies % 32) {
            entries.push(built.clone());
        }
    }
    let built = Lorebook {
        entries,
        scan_depth: input.scan_depth,
        token_budget: input.token_budget,
        recursive_scanning: input.recursive,
        ..Lorebook::default()
    };
    let from_json = Lorebook::from_json_bytes(&input.json).ok();
    let mut books = vec![(LoreSource::Character, &built)];
    if let Some(book) = &from_json {
        books.push((LoreSource::Global(0), book));
    }
    let options = LoreScanOptions {
        scan_depth: usize::from(input.options_depth),
        token_budget: input.options_budget.map(usize::from),
        recursive: input.options_recursive,
        max_recursion: usize::from(input.max_recursion),
        case_sensitive: input.case_sensitive,
        match_whole_words: input.whole_words,
    };
    let messages: Vec<&str> = input.messages.iter().take(64).map(String::as_str).collect();
    let macros = MacroContext::new(&input.char_name, &input.user_name);
    let a = activate_lore(&books, &messages, &options, &macros, &ApproxTokenCounter);
    let kept: usize = a.entries.iter().chain(&a.dropped).map(|e| e.content.len()).sum();
    assert!(kept <= MAX_LORE_TEXT_BYTES);
    if let Some(budget) = options.token_budget {
        assert!(a.tokens <= budget);
    }
    for e in &a.entries {
        let book = if e.source == LoreSource::Character { &built } else { from_json.as_ref().expect("a second book") };
        assert!(book.entries[e.entry].enabled, "a disabled entry activated");
    }
});
