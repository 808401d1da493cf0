//! Prompt assembly: budget, drop order, stable prefix across turns, sections.

mod common;

use common::{WordCounter, chatml, fixture};
use persona::{
    Character, ChatMessage, HistorySummary, InnerThoughts, LoreEntry, LorePlacement, Lorebook, MemoryItem, PromptInput,
    PromptOptions, Role, SectionKind, TokenCounter, assemble_prompt, import_card,
};

fn mira() -> Character {
    import_card(&fixture("v2_mira.json")).unwrap().character
}

fn input<'a>(c: &'a Character, history: &'a [ChatMessage]) -> PromptInput<'a> {
    PromptInput {
        character: c,
        user_name: "Sam",
        history,
        summaries: &[],
        memories: &[],
        global_lorebooks: &[],
        global_system_prompt: None,
    }
}

fn exact_total(messages: &[ChatMessage], options: &PromptOptions, counter: &dyn TokenCounter) -> usize {
    messages.iter().map(|m| counter.count(&m.content) + options.message_overhead_tokens).sum::<usize>()
        + options.message_overhead_tokens
}

/// A conversation of `turns` exchanges after the greeting, ending with a user message.
fn conversation(turns: usize) -> Vec<ChatMessage> {
    let mut h = vec![ChatMessage::assistant("Oh! You startled me. Mind the ferns, Sam.")];
    for i in 0..turns {
        h.push(ChatMessage::user(format!(
            "Question number {i}: what is this plant over here, the one with red leaves?"
        )));
        h.push(ChatMessage::assistant(format!(
            "[Sam is curious.] (points) That is plant {i}, a rare fern from the hills."
        )));
    }
    h.push(ChatMessage::user("And what about the one by the door?"));
    h
}

#[test]
fn layout_and_sections() {
    let c = mira();
    let history = conversation(1);
    let memories = [MemoryItem { label: "2024-05-01".into(), text: "Sam is allergic to lilies.".into() }];
    let p = assemble_prompt(
        &PromptInput { memories: &memories, ..input(&c, &history) },
        &PromptOptions::default(),
        &WordCounter,
    );
    assert!(!p.over_budget);
    let sys = &p.messages[0];
    assert_eq!(sys.role, Role::System);
    // The card's system prompt with {{original}} = the default, macros replaced.
    assert!(sys.content.starts_with("You are Mira Vale. You are talking with Sam."), "{}", sys.content);
    assert!(sys.content.contains("Mira Vale loves plants more than people, but is kind to Sam."));
    assert!(sys.content.contains("Mira Vale is a botanist"));
    assert!(sys.content.contains("Mira Vale's personality: warm, curious"));
    assert!(sys.content.contains("Mira Vale's nature:\n- Very curious and imaginative"));
    assert!(sys.content.contains("Scenario: A rainy afternoon"));
    assert!(sys.content.contains("Example conversation:\nSam: What are you growing?\nMira Vale: Moonflowers."));
    assert!(sys.content.contains("leaks in three places"), "constant lore sits in the system message");
    assert!(!sys.content.contains("{{"), "no macro left");
    assert!(!sys.content.contains("Not</b> markup"), "creator notes stay out of prompts");
    // Thoughts are on for Mira: the format is asked for, and stripped from old replies.
    assert!(sys.content.contains("[Mira Vale's private thought]"));
    assert!(p.messages.iter().all(|m| !m.content.contains("[Sam is curious.]")));
    assert!(p.messages.iter().any(|m| m.content == "(points) That is plant 0, a rare fern from the hills."));
    // Memories go right before the latest message; post-history instructions last.
    let n = p.messages.len();
    assert_eq!(p.messages[n - 1].role, Role::System);
    assert!(
        p.messages[n - 1]
            .content
            .starts_with("Reply as Mira Vale. Stay in character and keep it short. Mention a plant")
    );
    assert_eq!(p.messages[n - 2], ChatMessage::user("And what about the one by the door?"));
    assert!(p.messages[n - 3].content.contains("Mira Vale remembers:\n- 2024-05-01: Sam is allergic to lilies."));
    // Every section is labelled, counted, and the messages are exactly the sections.
    for (i, m) in p.messages.iter().enumerate() {
        let joined: Vec<&str> = p.sections.iter().filter(|s| s.message == i).map(|s| s.text.as_str()).collect();
        assert_eq!(joined.join("\n\n"), m.content);
    }
    for s in &p.sections {
        assert_eq!(s.tokens, WordCounter.count(&s.text));
        assert!(!s.label.is_empty());
    }
    let kinds: Vec<SectionKind> = p.sections.iter().map(|s| s.kind).collect();
    for k in [
        SectionKind::SystemPrompt,
        SectionKind::Description,
        SectionKind::Profile,
        SectionKind::Example,
        SectionKind::Memories,
        SectionKind::PostHistory,
    ] {
        assert!(kinds.contains(&k), "{k:?}");
    }
    assert_eq!(p.total_tokens, exact_total(&p.messages, &PromptOptions::default(), &WordCounter));
    let view = p.debug_view();
    assert!(view.contains("--- Description ("));
    assert!(view.contains("=== message 0: system ==="));
}

#[test]
fn default_system_prompt_is_never_the_assistant_persona() {
    let mut c = Character::new("Bo");
    c.description = "A fox.".into();
    let history = [ChatMessage::user("hi")];
    let p = assemble_prompt(&input(&c, &history), &PromptOptions::default(), &WordCounter);
    assert_eq!(p.messages[0].role, Role::System, "a template must never fall back to its default system prompt");
    assert!(p.messages[0].content.starts_with("You are Bo. You are talking with Sam. Stay in character"));
    assert!(p.messages[0].content.contains("Never say you are an AI"));
    // A global prompt replaces the default; a card's own replaces that, with {{original}}.
    let global = "Play {{char}} for {{user}}.";
    let p = assemble_prompt(
        &PromptInput { global_system_prompt: Some(global), ..input(&c, &history) },
        &PromptOptions::default(),
        &WordCounter,
    );
    assert!(p.messages[0].content.starts_with("Play Bo for Sam."));
    c.system_prompt = "Be brief. {{original}}".into();
    let p = assemble_prompt(
        &PromptInput { global_system_prompt: Some(global), ..input(&c, &history) },
        &PromptOptions::default(),
        &WordCounter,
    );
    assert!(p.messages[0].content.starts_with("Be brief. Play Bo for Sam."));
}

#[test]
fn stays_within_budget_dropping_examples_first_then_oldest_history() {
    let mut c = mira();
    c.mes_example = (0..6)
        .map(|i| {
            format!(
                "<START>\n{{{{user}}}}: example question {i}\n{{{{char}}}}: example answer {i} with a few more words"
            )
        })
        .collect();
    let history = conversation(40);
    let counter = WordCounter;
    let mut seen_examples_dropped_with_full_history = false;
    let mut last = None;
    for budget in (300..=2400).rev().step_by(20) {
        let options = PromptOptions { context_tokens: budget + 100, reply_tokens: 100, ..PromptOptions::default() };
        let p = assemble_prompt(&input(&c, &history), &options, &counter);
        assert!(!p.over_budget, "budget {budget}");
        assert!(p.total_tokens <= budget, "budget {budget}: {}", p.total_tokens);
        assert_eq!(p.total_tokens, exact_total(&p.messages, &options, &counter));
        // Examples go before any history does.
        if p.history_start > 0 {
            assert_eq!(p.examples_kept, 0, "budget {budget}");
        }
        if p.examples_dropped > 0 && p.history_start == 0 {
            seen_examples_dropped_with_full_history = true;
        }
        // Examples are dropped from the last.
        let examples: Vec<&str> =
            p.sections.iter().filter(|s| s.kind == SectionKind::Example).map(|s| s.text.as_str()).collect();
        for (i, e) in examples.iter().enumerate() {
            assert!(e.contains(&format!("example question {i}")));
        }
        // History is dropped from the oldest, in steps, and the latest message is kept.
        assert_eq!(p.history_start % 4, 0);
        assert_eq!(p.messages[p.messages.len() - 2].content, "And what about the one by the door?");
        if let Some((prev_start, prev_examples)) = last {
            assert!(p.history_start >= prev_start && p.examples_kept <= prev_examples);
        }
        last = Some((p.history_start, p.examples_kept));
    }
    assert!(seen_examples_dropped_with_full_history);
    assert!(last.unwrap().0 > 60, "small budgets drop most history");
}

#[test]
fn summaries_stand_in_for_dropped_turns() {
    let c = Character::new("Bo");
    let history = conversation(30); // 62 messages
    let summaries = [
        HistorySummary { start: 0, end: 10, text: "Sam asked about ten plants.".into() },
        HistorySummary { start: 0, end: 20, text: "Sam asked about twenty plants.".into() },
        HistorySummary { start: 20, end: 40, text: "Then twenty more.".into() },
        HistorySummary { start: 40, end: 61, text: "And the rest.".into() },
    ];
    let mut starts = Vec::new();
    for budget in (100..=1400).rev().step_by(10) {
        let options = PromptOptions { context_tokens: budget + 100, reply_tokens: 100, ..PromptOptions::default() };
        let p = assemble_prompt(&PromptInput { summaries: &summaries, ..input(&c, &history) }, &options, &WordCounter);
        assert!(p.over_budget || p.total_tokens <= budget, "budget {budget}");
        let summary = p.sections.iter().find(|s| s.kind == SectionKind::Summary).map(|s| s.text.as_str());
        let s = p.history_start;
        // The widest summaries wholly inside the dropped part, in order.
        let expected = match s {
            0..10 => None,
            10..20 => Some("Earlier in this conversation: Sam asked about ten plants."),
            20..40 => Some("Earlier in this conversation: Sam asked about twenty plants."),
            40..61 => Some("Earlier in this conversation: Sam asked about twenty plants.\nThen twenty more."),
            _ => Some("Earlier in this conversation: Sam asked about twenty plants.\nThen twenty more.\nAnd the rest."),
        };
        assert_eq!(summary, expected, "history from {s}");
        if let Some(summary) = summary {
            assert_eq!(p.messages[1].role, Role::System);
            assert_eq!(p.messages[1].content, summary);
        }
        starts.push(s);
    }
    for range in [0..10, 12..20, 20..40, 40..61] {
        assert!(starts.iter().any(|s| range.contains(s)), "{range:?} not reached: {starts:?}");
    }
}

#[test]
fn stable_prefix_is_byte_identical_across_turns() {
    let c = mira();
    let options = PromptOptions::default();
    let mut history = conversation(2);
    let mut previous: Option<(Vec<ChatMessage>, usize)> = None;
    let user_turns = [
        "Tell me about the moonflowers.",
        "And your grandmother?",
        "Nice weather today.",
        "Does the glass leak?",
        "Goodbye!",
    ];
    for (turn, text) in user_turns.iter().enumerate() {
        history.push(ChatMessage::user(*text));
        let memories = [MemoryItem { label: String::new(), text: format!("memory for turn {turn}") }];
        let p = assemble_prompt(&PromptInput { memories: &memories, ..input(&c, &history) }, &options, &WordCounter);
        assert_eq!(p.history_start, 0);
        if let Some((prev, stable)) = &previous {
            assert!(*stable >= 2, "system message and history are stable");
            assert_eq!(&p.messages[..*stable], &prev[..*stable], "turn {turn}");
            // As the engine sees it: the rendered text of the stable part is a byte prefix.
            let before = chatml(&prev[..*stable]);
            assert!(chatml(&p.messages).starts_with(&before));
        }
        // Lore that the latest message triggers is in the prompt, but not in the cached part.
        // (The book scans the last 3 messages.)
        let has_moonflower = p.messages.iter().any(|m| m.content.contains("smell of lemon"));
        let mentioned = history[history.len() - 3..].iter().any(|m| m.content.contains("moonflower"));
        assert_eq!(has_moonflower, mentioned, "turn {turn}");
        if turn == 0 {
            assert!(has_moonflower);
        }
        assert!(p.messages[..p.stable_messages].iter().all(|m| !m.content.contains("smell of lemon")));
        previous = Some((p.messages.clone(), p.stable_messages));
        history.push(ChatMessage::assistant(format!("[thinking {turn}] Reply {turn}.")));
    }
}

#[test]
fn lore_placement_and_depth() {
    let mut c = Character::new("Bo");
    let mut before = LoreEntry::new(&["apple"], "Apples grow in the north.");
    before.position = Some("before_char".into());
    let mut deep = LoreEntry::new(&["pear"], "Pears are sacred.");
    deep.extensions.insert("position".into(), serde_json::json!(4));
    deep.extensions.insert("depth".into(), serde_json::json!(2));
    c.character_book = Some(Lorebook { entries: vec![before, deep], ..Lorebook::default() });
    c.description = "A fox.".into();
    let history = [
        ChatMessage::assistant("Hello."),
        ChatMessage::user("Hi."),
        ChatMessage::assistant("What now?"),
        ChatMessage::user("An apple and a pear."),
    ];
    // Default: triggered lore near the end; at-depth lore two messages from the end.
    let p = assemble_prompt(&input(&c, &history), &PromptOptions::default(), &WordCounter);
    let contents: Vec<&str> = p.messages.iter().map(|m| m.content.as_str()).collect();
    assert!(!contents[0].contains("Apples"));
    let apple = contents.iter().position(|m| m.contains("Apples")).unwrap();
    let pear = contents.iter().position(|m| m.contains("Pears")).unwrap();
    let last_user = contents.iter().position(|m| *m == "An apple and a pear.").unwrap();
    assert_eq!(apple, last_user - 1);
    assert_eq!(contents[pear + 1], "What now?");
    assert_eq!(p.stable_messages, pear);
    // InSystem: at its spec position, before the description.
    let options = PromptOptions { lore_placement: LorePlacement::InSystem, ..PromptOptions::default() };
    let p = assemble_prompt(&input(&c, &history), &options, &WordCounter);
    let sys = &p.messages[0].content;
    assert!(sys.find("Apples").unwrap() < sys.find("A fox.").unwrap());
    // Global lorebooks are scanned too.
    let global = [Lorebook { entries: vec![LoreEntry::new(&["pear"], "Global pear fact.")], ..Lorebook::default() }];
    let p = assemble_prompt(
        &PromptInput { global_lorebooks: &global, ..input(&c, &history) },
        &PromptOptions::default(),
        &WordCounter,
    );
    assert!(p.messages.iter().any(|m| m.content.contains("Global pear fact.")));
}

#[test]
fn memories_are_capped_and_dropped_before_giving_up() {
    let c = Character::new("Bo");
    let history = [ChatMessage::user("hi")];
    let memories: Vec<MemoryItem> =
        (0..5).map(|i| MemoryItem { label: format!("m{i}"), text: format!("fact number {i} about Sam") }).collect();
    let p = assemble_prompt(
        &PromptInput { memories: &memories, ..input(&c, &history) },
        &PromptOptions::default(),
        &WordCounter,
    );
    assert_eq!(p.memories_used, 3);
    assert!(p.messages.iter().any(|m| m.content.contains("fact number 2")));
    assert!(!p.messages.iter().any(|m| m.content.contains("fact number 3")));
    // Tiny budget: memories go; then it is over budget but still well-formed.
    let tiny = PromptOptions { context_tokens: 160, reply_tokens: 100, ..PromptOptions::default() };
    let p = assemble_prompt(&PromptInput { memories: &memories, ..input(&c, &history) }, &tiny, &WordCounter);
    assert!(p.memories_used < 3);
    let tiniest = PromptOptions { context_tokens: 110, reply_tokens: 100, ..PromptOptions::default() };
    let p = assemble_prompt(&PromptInput { memories: &memories, ..input(&c, &history) }, &tiniest, &WordCounter);
    assert!(p.over_budget);
    assert_eq!(p.memories_used, 0);
    assert_eq!(p.messages[p.messages.len() - 2].content, "hi");
}

#[test]
fn thoughts_option_controls_stripping() {
    let mut c = Character::new("Bo");
    let history = [ChatMessage::assistant("[secret] Hello."), ChatMessage::user("hi")];
    let p = assemble_prompt(&input(&c, &history), &PromptOptions::default(), &WordCounter);
    assert!(p.messages.iter().any(|m| m.content == "[secret] Hello."), "option off: history as stored");
    c.set_inner_thoughts(InnerThoughts { enabled: true, strip_from_history: false });
    let p = assemble_prompt(&input(&c, &history), &PromptOptions::default(), &WordCounter);
    assert!(p.messages.iter().any(|m| m.content == "[secret] Hello."));
    assert!(p.messages.last().unwrap().content.contains("[thought] (action) speech"));
    c.set_inner_thoughts(InnerThoughts { enabled: true, strip_from_history: true });
    let p = assemble_prompt(&input(&c, &history), &PromptOptions::default(), &WordCounter);
    assert!(p.messages.iter().any(|m| m.content == "Hello."));
}

#[test]
fn empty_history_and_empty_card_work() {
    let c = Character::default();
    let p = assemble_prompt(&input(&c, &[]), &PromptOptions::default(), &WordCounter);
    assert_eq!(p.messages.len(), 2);
    assert_eq!(p.stable_messages, 1);
    assert!(!p.over_budget);
}
