//! Lorebook triggering, after the V2/V3 specs and SillyTavern's world info.

mod common;

use common::{WordCounter, fixture};
use persona::{
    ApproxTokenCounter, LoreActivation, LoreEntry, LorePosition, LoreScanOptions, LoreSource, Lorebook, MacroContext,
    Role, Trigger, activate_lore, import_card,
};
use serde_json::json;

fn scan_with(book: &Lorebook, messages: &[&str], options: &LoreScanOptions) -> LoreActivation {
    activate_lore(&[(LoreSource::Character, book)], messages, options, &MacroContext::new("Mira", "Sam"), &WordCounter)
}

fn scan(book: &Lorebook, messages: &[&str]) -> LoreActivation {
    scan_with(book, messages, &LoreScanOptions::default())
}

fn labels(a: &LoreActivation) -> Vec<String> {
    a.entries.iter().map(|e| e.label.clone()).collect()
}

fn book(entries: Vec<LoreEntry>) -> Lorebook {
    Lorebook { entries, ..Lorebook::default() }
}

fn named(mut e: LoreEntry, name: &str) -> LoreEntry {
    e.name = Some(name.into());
    e
}

#[test]
fn keys_match_case_insensitively_by_default() {
    let b = book(vec![named(LoreEntry::new(&["Dragon"], "x"), "dragon")]);
    assert_eq!(labels(&scan(&b, &["I saw a DRAGON!"])), ["dragon"]);
    assert!(scan(&b, &["nothing here"]).entries.is_empty());
    let mut e = LoreEntry::new(&["Dragon"], "x");
    e.case_sensitive = Some(true);
    let b = book(vec![e]);
    assert!(scan(&b, &["a dragon"]).entries.is_empty());
    assert_eq!(scan(&b, &["a Dragon"]).entries.len(), 1);
}

#[test]
fn constant_and_disabled_entries() {
    let mut constant = named(LoreEntry::new(&[], "always"), "constant");
    constant.constant = Some(true);
    let mut disabled = named(LoreEntry::new(&["hello"], "never"), "disabled");
    disabled.enabled = false;
    let mut disabled_constant = named(LoreEntry::new(&[], "never either"), "disabled constant");
    disabled_constant.enabled = false;
    disabled_constant.constant = Some(true);
    let b = book(vec![constant, disabled, disabled_constant]);
    let a = scan(&b, &["hello"]);
    assert_eq!(labels(&a), ["constant"]);
    assert_eq!(a.entries[0].trigger, Trigger::Constant);
}

#[test]
fn selective_secondary_keys_and_logic_variants() {
    let mut e = named(LoreEntry::new(&["castle"], "c"), "castle");
    e.selective = Some(true);
    e.secondary_keys = Some(vec!["night".into(), "ghost".into()]);
    let b = book(vec![e.clone()]);
    // AND ANY (the spec's rule and SillyTavern's default).
    assert!(scan(&b, &["the castle"]).entries.is_empty());
    assert_eq!(scan(&b, &["the castle at night"]).entries.len(), 1);
    assert!(scan(&b, &["a ghost at night"]).entries.is_empty(), "primary key required");
    // Selective with no secondary keys behaves as a plain entry.
    let mut plain = e.clone();
    plain.secondary_keys = Some(vec![]);
    assert_eq!(scan(&book(vec![plain]), &["castle"]).entries.len(), 1);
    // Not selective: secondary keys are ignored.
    let mut off = e.clone();
    off.selective = Some(false);
    assert_eq!(scan(&book(vec![off]), &["castle"]).entries.len(), 1);
    let with_logic = |logic: i64| {
        let mut x = e.clone();
        x.extensions.insert("selectiveLogic".into(), json!(logic));
        book(vec![x])
    };
    // NOT ALL: not every secondary key may be present.
    assert_eq!(scan(&with_logic(1), &["castle at night"]).entries.len(), 1);
    assert!(scan(&with_logic(1), &["castle, night, ghost"]).entries.is_empty());
    // NOT ANY.
    assert_eq!(scan(&with_logic(2), &["castle"]).entries.len(), 1);
    assert!(scan(&with_logic(2), &["castle ghost"]).entries.is_empty());
    // AND ALL.
    assert!(scan(&with_logic(3), &["castle ghost"]).entries.is_empty());
    assert_eq!(scan(&with_logic(3), &["castle ghost night"]).entries.len(), 1);
}

#[test]
fn scan_depth_limits_how_far_back_keys_are_seen() {
    let b = book(vec![LoreEntry::new(&["lighthouse"], "x")]);
    let chat = ["the lighthouse", "hello", "how are you"];
    assert!(scan(&b, &chat).entries.is_empty(), "default depth 2 does not reach back three messages");
    let deep = Lorebook { scan_depth: Some(3), ..b.clone() };
    assert_eq!(scan(&deep, &chat).entries.len(), 1);
    // An entry's own scan depth (SillyTavern extension) beats the book's.
    let mut e = LoreEntry::new(&["lighthouse"], "x");
    e.extensions.insert("scan_depth".into(), json!(5));
    assert_eq!(scan(&book(vec![e]), &chat).entries.len(), 1);
    // And a scan depth of 0 sees nothing.
    let none = Lorebook { scan_depth: Some(0), ..b };
    assert!(scan(&none, &["lighthouse"]).entries.is_empty());
}

#[test]
fn recursive_scanning_is_bounded_and_optional() {
    let chain = vec![
        named(LoreEntry::new(&["alpha"], "mentions beta"), "a"),
        named(LoreEntry::new(&["beta"], "mentions gamma"), "b"),
        named(LoreEntry::new(&["gamma"], "mentions delta"), "c"),
        named(LoreEntry::new(&["delta"], "the end"), "d"),
    ];
    let flat = book(chain.clone());
    assert_eq!(labels(&scan(&flat, &["alpha"])), ["a"], "no recursion unless the book asks");
    let recursive = Lorebook { recursive_scanning: Some(true), ..flat.clone() };
    let a = scan(&recursive, &["alpha"]);
    assert_eq!(labels(&a), ["a", "b", "c", "d"]);
    assert_eq!(a.entries[1].trigger, Trigger::Recursion { key: "beta".into(), pass: 1 });
    // Bounded depth.
    let two = LoreScanOptions { max_recursion: 2, ..LoreScanOptions::default() };
    assert_eq!(labels(&scan_with(&recursive, &["alpha"], &two)), ["a", "b", "c"]);
    // exclude_recursion: only the chat can activate it; prevent_recursion: its content does not recurse.
    let mut excluded = chain.clone();
    excluded[1].extensions.insert("exclude_recursion".into(), json!(true));
    let b = Lorebook { recursive_scanning: Some(true), ..book(excluded) };
    assert_eq!(labels(&scan(&b, &["alpha"])), ["a"]);
    let mut prevented = chain.clone();
    prevented[1].extensions.insert("prevent_recursion".into(), json!(true));
    let b = Lorebook { recursive_scanning: Some(true), ..book(prevented) };
    assert_eq!(labels(&scan(&b, &["alpha"])), ["a", "b"]);
    // A cycle terminates.
    let cycle = Lorebook {
        recursive_scanning: Some(true),
        ..book(vec![LoreEntry::new(&["ping"], "pong"), LoreEntry::new(&["pong"], "ping")])
    };
    assert_eq!(scan(&cycle, &["ping"]).entries.len(), 2);
}

#[test]
fn regex_keys() {
    let b = book(vec![named(LoreEntry::new(&["/colou?r(ed)?/i"], "x"), "re")]);
    assert_eq!(scan(&b, &["the COLORED glass"]).entries.len(), 1);
    assert!(scan(&b, &["no match"]).entries.is_empty());
    // Without the `i` flag a /regex/ key is case-sensitive, as in JavaScript.
    let b = book(vec![LoreEntry::new(&["/Colou?r/"], "x")]);
    assert!(scan(&b, &["color"]).entries.is_empty());
    assert_eq!(scan(&b, &["Color"]).entries.len(), 1);
    // V3 use_regex: bare patterns.
    let mut e = LoreEntry::new(&[r"\bwatch(es)?\b"], "x");
    e.use_regex = Some(true);
    assert_eq!(scan(&book(vec![e.clone()]), &["two Watches"]).entries.len(), 1);
    assert!(scan(&book(vec![e]), &["stopwatch"]).entries.is_empty());
    // Broken and hostile patterns are reported and never match.
    let bad = book(vec![
        LoreEntry::new(&["/(?<=look)behind/"], "x"),
        LoreEntry::new(&["/((a+)+)+$/"], "fine: linear time"),
        LoreEntry::new(&["/(?:a{1000}){1000}/"], "too big"),
    ]);
    let a = scan(&bad, &["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
    assert_eq!(a.warnings.len(), 2, "{:?}", a.warnings);
    assert_eq!(a.entries.len(), 1);
    // Not regexes: a lone slash, bad flags.
    let b = book(vec![LoreEntry::new(&["/"], "x"), LoreEntry::new(&["/x/q"], "y")]);
    assert_eq!(scan(&b, &["/x/q"]).entries.len(), 2);
}

#[test]
fn whole_word_matching() {
    let mut e = LoreEntry::new(&["art"], "x");
    e.extensions.insert("match_whole_words".into(), json!(true));
    let b = book(vec![e]);
    assert!(scan(&b, &["let us start"]).entries.is_empty());
    assert_eq!(scan(&b, &["modern art, really"]).entries.len(), 1);
    // Off by default (SillyTavern's default): substrings match.
    assert_eq!(scan(&book(vec![LoreEntry::new(&["art"], "x")]), &["start"]).entries.len(), 1);
    // Global option, and multi-word keys match as substrings.
    let opts = LoreScanOptions { match_whole_words: true, ..LoreScanOptions::default() };
    let b = book(vec![LoreEntry::new(&["old town"], "x")]);
    assert_eq!(scan_with(&b, &["the old townhall"], &opts).entries.len(), 1);
}

#[test]
fn budget_drops_lowest_priority_then_lowest_insertion_order() {
    // Each content is 10 words = 10 tokens with WordCounter.
    let ten = "one two three four five six seven eight nine ten";
    let mut high = named(LoreEntry::new(&["key"], ten), "high");
    high.priority = Some(100);
    high.insertion_order = 3;
    let mut low = named(LoreEntry::new(&["key"], ten), "low");
    low.priority = Some(1);
    low.insertion_order = 1;
    let mut mid = named(LoreEntry::new(&["key"], ten), "mid");
    mid.priority = Some(50);
    mid.insertion_order = 2;
    let b = book(vec![low, high, mid]);
    let opts = LoreScanOptions { token_budget: Some(25), ..LoreScanOptions::default() };
    let a = scan_with(&b, &["key"], &opts);
    // Kept in insertion order; the lowest priority went.
    assert_eq!(labels(&a), ["mid", "high"]);
    assert_eq!(a.dropped.len(), 1);
    assert_eq!(a.dropped[0].label, "low");
    assert_eq!(a.tokens, 20);
    // Without priorities, the lowest insertion_order goes first.
    let plain: Vec<LoreEntry> = (1..=3)
        .map(|i| {
            let mut e = named(LoreEntry::new(&["key"], ten), &format!("e{i}"));
            e.insertion_order = i;
            e
        })
        .collect();
    let a = scan_with(&book(plain), &["key"], &opts);
    assert_eq!(labels(&a), ["e2", "e3"]);
    // The book's own token_budget applies when the options give none.
    let b = Lorebook { token_budget: Some(10), ..b };
    assert_eq!(scan(&b, &["key"]).entries.len(), 1);
}

#[test]
fn character_book_outranks_global_books() {
    let ten = "one two three four five six seven eight nine ten";
    let global = book(vec![named(LoreEntry::new(&["key"], ten), "global")]);
    let own = book(vec![named(LoreEntry::new(&["key"], ten), "own")]);
    let opts = LoreScanOptions { token_budget: Some(15), ..LoreScanOptions::default() };
    let a = activate_lore(
        &[(LoreSource::Global(0), &global), (LoreSource::Character, &own)],
        &["key"],
        &opts,
        &MacroContext::new("A", "B"),
        &WordCounter,
    );
    assert_eq!(labels(&a), ["own"]);
}

#[test]
fn positions_and_decorators() {
    let card = import_card(&fixture("v2_mira.json")).unwrap().character;
    let b = card.character_book.as_ref().unwrap();
    let a = scan(b, &["tell me about the moonflowers and your grandmother"]);
    let by_label = |l: &str| a.entries.iter().find(|e| e.label == l).unwrap().clone();
    assert_eq!(by_label("Moonflower").position, LorePosition::AfterChar);
    assert_eq!(by_label("Grandmother").position, LorePosition::BeforeChar);
    assert_eq!(by_label("Always: the leaky glass").trigger, Trigger::Constant);
    assert!(a.entries.iter().all(|e| e.label != "Disabled"));
    // Insertion order: glass (5), moonflower (10), grandmother (20).
    assert_eq!(labels(&a), ["Always: the leaky glass", "Moonflower", "Grandmother"]);

    let card = import_card(&fixture("v3_tobias.json")).unwrap().character;
    let b = card.character_book.as_ref().unwrap();
    let a = scan(b, &["my apprentice found a Pocket Watch"]);
    assert_eq!(a.entries.len(), 2);
    let lena = a.entries.iter().find(|e| e.label == "apprentice").unwrap();
    assert_eq!(lena.position, LorePosition::AtDepth { depth: 2, role: Role::System });
    assert!(!lena.content.contains("@@"), "decorators are stripped");
    // Macros are replaced in lore content.
    let watch = a.entries.iter().find(|e| e.label == "Watch (regex)").unwrap();
    assert!(watch.content.contains("Sam's father"));

    // SillyTavern's numeric position 4 = at depth, with role.
    let mut e = LoreEntry::new(&["x"], "y");
    e.extensions.insert("position".into(), json!(4));
    e.extensions.insert("depth".into(), json!(3));
    e.extensions.insert("role".into(), json!(1));
    let a = scan(&book(vec![e]), &["x"]);
    assert_eq!(a.entries[0].position, LorePosition::AtDepth { depth: 3, role: Role::User });
}

#[test]
fn v3_decorators_activate_exclude_and_additional_keys() {
    let b = book(vec![
        named(LoreEntry::new(&[], "@@activate\nalways here"), "activate"),
        named(LoreEntry::new(&["door"], "@@dont_activate\nnever"), "dont"),
        named(LoreEntry::new(&["door"], "@@exclude_keys window, roof\nthe door"), "exclude"),
        named(LoreEntry::new(&["door"], "@@additional_keys gate\n@@@fallback line\nthe gate"), "additional"),
    ]);
    assert_eq!(labels(&scan(&b, &["the gate"])), ["activate", "additional"]);
    assert_eq!(labels(&scan(&b, &["the door"])), ["activate", "exclude", "additional"]);
    assert_eq!(labels(&scan(&b, &["the door by the window"])), ["activate", "additional"]);
    let a = scan(&b, &["the gate"]);
    assert_eq!(a.entries[1].content, "the gate");
}

#[test]
fn sillytavern_world_info_file() {
    let wi = json!({
        "name": "World",
        "entries": {
            "0": {"uid": 0, "key": ["harbor"], "keysecondary": [], "comment": "Harbor", "content": "The harbor freezes in winter.",
                  "constant": false, "selective": false, "order": 100, "position": 0, "disable": false,
                  "excludeRecursion": false, "probability": 100, "useProbability": true, "depth": 4, "vectorized": false},
            "1": {"uid": 1, "key": ["ghost"], "keysecondary": [], "comment": "Off", "content": "x", "disable": true, "order": 50, "position": 1},
            "2": {"uid": 2, "key": ["tide"], "comment": "Deep", "content": "The tide.", "position": 4, "depth": 1, "role": 2, "order": 10}
        }
    });
    let b = Lorebook::from_json_bytes(&serde_json::to_vec(&wi).unwrap()).unwrap();
    assert_eq!(b.entries.len(), 3);
    assert_eq!(b.entries[0].comment.as_deref(), Some("Harbor"));
    assert!(!b.entries[1].enabled);
    assert_eq!(b.entries[0].extensions["vectorized"], json!(false));
    let a = activate_lore(
        &[(LoreSource::Global(0), &b)],
        &["the harbor at high tide", "ghost"],
        &LoreScanOptions::default(),
        &MacroContext::new("A", "B"),
        &ApproxTokenCounter,
    );
    assert_eq!(labels(&a), ["Deep", "Harbor"]);
    assert_eq!(a.entries[0].position, LorePosition::AtDepth { depth: 1, role: Role::Assistant });
    // A character_book-shaped file and a whole card work too.
    let card_book = Lorebook::from_json_bytes(&fixture("v2_mira.json")).unwrap();
    assert_eq!(card_book.entries.len(), 4);
}
