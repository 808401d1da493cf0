//! Retrieval with the real embedder: 50 chat-like messages hold 5 facts about the user; a
//! differently worded question about each fact must bring it back in the top 5.

mod common;

use memory::{InMemoryStore, Memory, MemoryConfig, MemoryKind, NewMemory, SearchQuery};
use pollster::block_on;

const FACTS: [(&str, &str); 5] = [
    ("By the way, my younger sister Clara just moved to Lisbon for her new design job.", "Which city does my sibling live in now?"),
    ("I can't eat peanuts at all, I'm seriously allergic to them.", "What food should I avoid because of my allergy?"),
    ("I finally adopted a grey kitten last weekend and named her Mochi.", "What is my pet called?"),
    ("Ugh, I have to finish my thesis on coral reef bleaching before March.", "What is the topic of the research I'm writing?"),
    ("My favourite way to relax is playing the cello after dinner.", "Which musical instrument do I play?"),
];

const CHATTER: [&str; 45] = [
    "Hey, how are you doing today?",
    "I'm good, just a bit tired from work.",
    "The weather has been so grey all week.",
    "Did you watch anything fun lately?",
    "I started a new series but I keep falling asleep halfway through.",
    "Haha, that happens to me too.",
    "What do you think about pineapple on pizza?",
    "Honestly I could go either way.",
    "My phone battery dies so fast these days.",
    "Maybe it's time for an upgrade.",
    "I went for a long walk by the river this morning.",
    "The trees are finally turning orange.",
    "Do you ever feel like the week just flies by?",
    "I need to remember to buy groceries tomorrow.",
    "Coffee or tea? I can never decide.",
    "I tried baking bread yesterday and it came out flat.",
    "Next time I'll let the dough rise longer.",
    "Traffic was terrible on the way home.",
    "I'm thinking about repainting my bedroom.",
    "Maybe a soft green colour would be nice.",
    "Tell me a joke, I need cheering up.",
    "That one was terrible, I love it.",
    "I keep forgetting to reply to emails.",
    "My neighbour's dog barks every morning at six.",
    "I should really go to bed earlier.",
    "Do you like rainy days?",
    "I found an old photo album in the attic.",
    "We used to go camping every summer when I was a kid.",
    "What's your favourite season?",
    "I'm craving something sweet right now.",
    "The new café downtown has amazing croissants.",
    "I spilled water on my keyboard, luckily it still works.",
    "Sometimes I just want to stay home all weekend.",
    "My friend recommended a podcast about history.",
    "I listened to two episodes on the train.",
    "It's funny how time changes everything.",
    "I'm trying to drink more water this month.",
    "Let's talk about something random.",
    "Do you think robots will ever dream?",
    "I saw a shooting star once, years ago.",
    "The stars are really bright tonight.",
    "I'm going to make pasta for dinner.",
    "Garlic makes everything better.",
    "Okay, I should get going now.",
    "Thanks for chatting with me, this was nice.",
];

#[test]
fn planted_facts_come_back_in_the_top_5() {
    let embedder = common::embedder();
    let mut memory = block_on(Memory::open(embedder, InMemoryStore::new(), MemoryConfig::default())).unwrap();
    // Facts spread among the chatter, as they would come up in a conversation.
    let mut messages: Vec<&str> = CHATTER.to_vec();
    for (i, (fact, _)) in FACTS.iter().enumerate() {
        messages.insert(4 + i * 10, fact);
    }
    assert_eq!(messages.len(), 50);
    let start = 1_750_000_000_000u64;
    let news: Vec<NewMemory> = messages
        .iter()
        .enumerate()
        .map(|(i, text)| NewMemory {
            session_id: Some("s1".into()),
            created_at: Some(start + i as u64 * 60_000),
            ..NewMemory::new("companion", MemoryKind::Message, *text)
        })
        .collect();
    block_on(memory.add_many(news)).unwrap();
    memory.set_clock(move || start + 3_600_000);

    for (fact, question) in FACTS {
        let hits = block_on(memory.search(SearchQuery::new("companion", question, 5))).unwrap();
        let rank = hits.iter().position(|h| h.record.text == fact);
        eprintln!("{question:?} → rank {rank:?}");
        for h in &hits {
            eprintln!("    {:.3} (cos {:.3})  {}", h.score, h.relevance, h.record.text);
        }
        assert!(rank.is_some(), "{question:?} did not retrieve {fact:?}");
    }
}
