//! The inner-thoughts parser on clean, malformed and streamed output.

use persona::{Segment, SegmentKind, ThoughtParser, parse_reply, strip_thoughts};

fn seg(kind: SegmentKind, text: &str) -> Segment {
    Segment { kind, text: text.into() }
}
use SegmentKind::{Action, Speech, Thought};

#[test]
fn clean_dual_layer_reply() {
    let r = parse_reply("[She hopes he stays.] (pours tea) Sit down, the rain won't stop soon.");
    assert_eq!(
        r.segments,
        [
            seg(Thought, "She hopes he stays."),
            seg(Action, "pours tea"),
            seg(Speech, "Sit down, the rain won't stop soon.")
        ]
    );
    assert_eq!(r.thought(), "She hopes he stays.");
    assert_eq!(r.action(), "pours tea");
    assert_eq!(r.speech(), "Sit down, the rain won't stop soon.");
    assert_eq!(r.to_text(false), "(pours tea) Sit down, the rain won't stop soon.");
    assert_eq!(r.to_text(true), "[She hopes he stays.] (pours tea) Sit down, the rain won't stop soon.");
}

#[test]
fn missing_parts() {
    assert_eq!(parse_reply("Just words.").segments, [seg(Speech, "Just words.")]);
    assert_eq!(parse_reply("[only a thought]").segments, [seg(Thought, "only a thought")]);
    assert_eq!(parse_reply("*waves*").segments, [seg(Action, "waves")]);
    assert!(parse_reply("").segments.is_empty());
    assert!(parse_reply("[] () **  ").segments.is_empty());
}

#[test]
fn unbalanced_and_odd_brackets() {
    // Unclosed thought: ends at the line break.
    let r = parse_reply("[I should not say this\nHello there.");
    assert_eq!(r.segments, [seg(Thought, "I should not say this"), seg(Speech, "Hello there.")]);
    // Unclosed at the very end: the rest is the thought.
    assert_eq!(parse_reply("Hi. [and then").segments, [seg(Speech, "Hi."), seg(Thought, "and then")]);
    // Stray closers are dropped.
    assert_eq!(parse_reply("Hello] world) !").speech(), "Hello world !");
    // Nested brackets stay inside.
    assert_eq!(parse_reply("[a [b] c] d").segments, [seg(Thought, "a [b] c"), seg(Speech, "d")]);
    assert_eq!(parse_reply("(a (b) c) d").segments, [seg(Action, "a (b) c"), seg(Speech, "d")]);
    // Other brackets inside a thought or action are text.
    assert_eq!(parse_reply("[(not an action)] x").segments, [seg(Thought, "(not an action)"), seg(Speech, "x")]);
    assert_eq!(parse_reply("(lifts [the] cup) x").segments, [seg(Action, "lifts [the] cup"), seg(Speech, "x")]);
    // Several of each.
    let r = parse_reply("[one] A. [two] (nods) B.");
    assert_eq!(r.thought(), "one two");
    assert_eq!(r.speech(), "A. B.");
    // Unicode is fine.
    assert_eq!(parse_reply("[ça va?] Ja, 好的 🌙").speech(), "Ja, 好的 🌙");
}

#[test]
fn streaming_gives_the_same_result_at_every_split() {
    let texts = [
        "[She hopes he stays.] (pours tea) Sit down.\n*smiles* [hm [nested]] ok",
        "[unclosed\nnext (also unclosed",
        "no markup at all ] ) stray",
    ];
    for text in texts {
        let whole = parse_reply(text);
        let chars: Vec<char> = text.chars().collect();
        for split in 0..=chars.len() {
            let (a, b): (String, String) = (chars[..split].iter().collect(), chars[split..].iter().collect());
            let mut p = ThoughtParser::new();
            let mut deltas = p.push(&a);
            deltas.extend(p.push(&b));
            assert_eq!(p.finish(), whole, "split at {split} of {text:?}");
            // The deltas, regrouped, are the segments.
            let mut regrouped: Vec<Segment> = Vec::new();
            for d in deltas {
                match regrouped.last_mut() {
                    Some(last) if !d.opens => {
                        assert_eq!(last.kind, d.kind);
                        last.text.push_str(&d.text);
                    }
                    _ => regrouped.push(Segment { kind: d.kind, text: d.text }),
                }
            }
            let tidy: Vec<Segment> = regrouped
                .into_iter()
                .filter(|s| !s.text.trim().is_empty())
                .map(|s| Segment { kind: s.kind, text: s.text.trim().to_owned() })
                .collect();
            assert_eq!(tidy, whole.segments);
        }
    }
}

#[test]
fn char_by_char_streaming_reports_kinds_as_they_come() {
    let mut p = ThoughtParser::new();
    let mut kinds = Vec::new();
    for c in "[hm] (sits) Hi".chars() {
        for d in p.push(&c.to_string()) {
            kinds.push((d.kind, d.opens));
        }
    }
    assert_eq!(kinds[0], (Thought, true));
    assert_eq!(kinds[1], (Thought, false));
    assert!(kinds.contains(&(Action, true)));
    assert_eq!(kinds.iter().filter(|(_, o)| *o).count(), 4, "thought, space, action, speech");
}

#[test]
fn strip_thoughts_for_history() {
    assert_eq!(strip_thoughts("[secret plan] (smiles) Hello!"), "(smiles) Hello!");
    assert_eq!(strip_thoughts("*smiles* Hello [she lies] friend."), "(smiles) Hello friend.");
    assert_eq!(strip_thoughts("Line one.\n\nLine two."), "Line one.\n\nLine two.");
    assert_eq!(strip_thoughts("[only thinking]"), "");
}

#[test]
fn without_thoughts_only_stars_are_markup() {
    // A parenthesis or a bracket in ordinary speech stays speech when the option is off.
    let text = "I left (well, ran) before the [loud] bell. *waves* See you.";
    let r = persona::parse_reply_with(text, false);
    assert_eq!(
        r.segments,
        [seg(Speech, "I left (well, ran) before the [loud] bell."), seg(Action, "waves"), seg(Speech, "See you.")]
    );
    assert_eq!(r.thought(), "");
    // Written back with stars, so parsing it again the same way gives the same reply.
    assert_eq!(r.to_text(true), "I left (well, ran) before the [loud] bell. *waves* See you.");
    assert_eq!(persona::parse_reply_with(&r.to_text(true), false), r);
    // Unmatched closers are kept as text too.
    assert_eq!(persona::parse_reply_with("a) b]", false).segments, [seg(Speech, "a) b]")]);
    // With the option on, the same text has a thought and two actions.
    let on = persona::parse_reply_with(text, true);
    assert_eq!(on.thought(), "loud");
    assert_eq!(on.action(), "well, ran waves");
    // Streaming gives the same pieces as a whole parse.
    let mut p = ThoughtParser::without_thoughts();
    let mut streamed = Vec::new();
    for c in text.chars() {
        streamed.extend(p.push(&c.to_string()));
    }
    assert!(streamed.iter().all(|d| d.kind != Thought));
    assert_eq!(p.finish(), r);
}
