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
        user_profile: &[],
        persona_notes: &[],
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
    let memories = [MemoryItem::new("2024-05-01", "Sam is allergic to lilies.")];
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
    assert!(p.messages[n - 3].content.contains("Mira Vale knows these facts for certain (they are true even where the description above says otherwise):\n- 2024-05-01: Sam is allergic to lilies."));
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
        // History is dropped from the oldest, in steps, and the latest message is kept (the last
        // step may stop short, at it).
        assert!(p.history_start % 4 == 0 || p.history_start == history.len() - 1, "budget {budget}: history from {}", p.history_start);
        assert_eq!(p.messages[p.messages.len() - 2].content, "And what about the one by the door?");
        if let Some((prev_start, prev_examples)) = last {
            assert!(p.history_start >= prev_start && p.examples_kept <= prev_examples);
        }
        last = Some((p.history_start, p.examples_kept));
    }
    assert!(seen_examples_dropped_with_full_history);
    assert!(last.unwrap().0 > 60, "small budgets drop most history");
}

fn summary_text(p: &persona::AssembledPrompt) -> Option<&str> {
    p.sections.iter().find(|s| s.kind == SectionKind::Summary).map(|s| s.text.as_str())
}

#[test]
fn summaries_always_stand_in_for_the_messages_they_cover() {
    let c = Character::new("Bo");
    let history = conversation(30); // 62 messages
    let big = PromptOptions::default();
    let summaries = [
        HistorySummary { start: 0, end: 10, text: "Sam asked about ten plants.".into() },
        HistorySummary { start: 0, end: 20, text: "Sam asked about twenty plants.".into() },
        HistorySummary { start: 20, end: 40, text: "Then twenty more.".into() },
    ];
    let p = assemble_prompt(&PromptInput { summaries: &summaries, ..input(&c, &history) }, &big, &WordCounter);
    // Everything fits, yet the covered messages are replaced: the widest summaries, in order.
    assert_eq!(p.history_start, 40);
    assert_eq!(summary_text(&p), Some("Earlier in this conversation: Sam asked about twenty plants.\nThen twenty more."));
    assert_eq!(p.messages[1].role, Role::System);
    assert!(p.messages.iter().all(|m| !m.content.contains("plant 18,") && !m.content.contains("number 19:")), "a covered message is shown");
    assert!(p.messages.iter().any(|m| m.content == history[40].content), "the first message after the summaries is shown");

    // A gap: only the part covered from the first message on is replaced.
    let gap = [summaries[0].clone(), summaries[2].clone()];
    let p = assemble_prompt(&PromptInput { summaries: &gap, ..input(&c, &history) }, &big, &WordCounter);
    assert_eq!(p.history_start, 10);
    assert_eq!(summary_text(&p), Some("Earlier in this conversation: Sam asked about ten plants."));

    // A summary that would cover the latest message is not used: that message is always shown.
    let all = [HistorySummary { start: 0, end: 62, text: "Everything.".into() }];
    let p = assemble_prompt(&PromptInput { summaries: &all, ..input(&c, &history) }, &big, &WordCounter);
    assert_eq!((p.history_start, summary_text(&p)), (0, None));
}

#[test]
fn summaries_and_dropped_turns_under_a_small_budget() {
    let c = Character::new("Bo");
    let history = conversation(30);
    let summaries = [
        HistorySummary { start: 0, end: 10, text: "Sam asked about ten plants.".into() },
        HistorySummary { start: 0, end: 20, text: "Sam asked about twenty plants.".into() },
        HistorySummary { start: 30, end: 40, text: "Later, ten more.".into() },
    ];
    let mut starts = Vec::new();
    for budget in (100..=1400).rev().step_by(10) {
        let options = PromptOptions { context_tokens: budget + 100, reply_tokens: 100, ..PromptOptions::default() };
        let p = assemble_prompt(&PromptInput { summaries: &summaries, ..input(&c, &history) }, &options, &WordCounter);
        assert!(p.over_budget || p.total_tokens <= budget, "budget {budget}");
        let s = p.history_start;
        assert!(s >= 20, "what the summaries cover is never shown (history from {s})");
        // The widest summaries wholly inside the part not shown, in order.
        let expected = if s < 40 {
            "Earlier in this conversation: Sam asked about twenty plants."
        } else {
            "Earlier in this conversation: Sam asked about twenty plants.\nLater, ten more."
        };
        assert_eq!(summary_text(&p), Some(expected), "history from {s}");
        assert_eq!(p.messages[1].content, expected);
        starts.push(s);
    }
    for range in [20..21, 21..40, 40..61] {
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
        let memories = [MemoryItem::new("", format!("memory for turn {turn}"))];
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
        (0..5).map(|i| MemoryItem::new(format!("m{i}"), format!("fact number {i} about Sam"))).collect();
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
    assert!(p.messages.last().unwrap().content.contains("a short private thought of Bo in square brackets"));
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

#[test]
fn pinned_memories_always_go_in_and_no_fact_twice() {
    let c = Character::new("Bo");
    // Only the latest message, so space is made by dropping memories.
    let history = [ChatMessage::user("hi")];
    let memories = vec![
        MemoryItem::new("m0", "Sam likes tea."),
        MemoryItem::pinned("", "Sam is vegetarian."),
        MemoryItem::new("m1", "sam LIKES  tea!"), // the same fact as m0
        MemoryItem::new("m2", "Sam has a sister."),
        MemoryItem::new("m3", "Sam lives in Lisbon."),
        MemoryItem::new("m4", "Sam plays chess."), // past max_memories (3)
        MemoryItem::pinned("", "Sam is allergic to lilies."),
        MemoryItem::pinned("", "Sam is  vegetarian"), // the same pinned fact again
    ];
    let at = |options: &PromptOptions| assemble_prompt(&PromptInput { memories: &memories, ..input(&c, &history) }, options, &WordCounter);
    let p = at(&PromptOptions::default());
    // Pinned first (not counted in max_memories), then the retrieved ones; duplicates left out.
    assert_eq!(p.memory_indices, vec![1, 6, 0, 3, 4]);
    assert_eq!(p.memories_used, 5);
    let block = p.sections.iter().find(|s| s.kind == SectionKind::Memories).expect("a memory block");
    assert_eq!(
        block.text,
        "Bo knows these facts for certain (they are true even where the description above says otherwise):\n\
         - Sam is vegetarian.\n- Sam is allergic to lilies.\n- m0: Sam likes tea.\n- m2: Sam has a sister.\n- m3: Sam lives in Lisbon."
    );
    let everything: String = p.messages.iter().map(|m| m.content.to_lowercase()).collect::<Vec<_>>().join("\n");
    assert_eq!(everything.matches("likes tea").count() + everything.matches("likes  tea").count(), 1);
    assert_eq!(everything.matches("vegetarian").count(), 1);

    // A budget too small for everything: retrieved memories go, pinned ones stay.
    let full = p.total_tokens;
    let small = PromptOptions { context_tokens: full - 12 + 100, reply_tokens: 100, ..PromptOptions::default() };
    let p = at(&small);
    assert!(p.memory_indices.starts_with(&[1, 6]), "{:?}", p.memory_indices);
    assert!(p.memory_indices.len() < 5);
    let tiniest = PromptOptions { context_tokens: 110, reply_tokens: 100, ..PromptOptions::default() };
    let p = at(&tiniest);
    assert!(p.over_budget);
    assert_eq!(p.memory_indices, vec![1, 6], "pinned memories are never dropped for space");

    // The pinned budget: "Sam is vegetarian." is 3 words, the lilies 5: only the first fits 4.
    let p = at(&PromptOptions { pinned_memory_tokens: 4, ..PromptOptions::default() });
    assert_eq!(p.memory_indices, vec![1, 0, 3, 4]);
}
