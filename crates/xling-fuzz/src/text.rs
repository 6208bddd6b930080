//! Hostile text: mixed scripts, combining marks, zero-width and bidi controls, ASCII controls,
//! odd whitespace, emoji sequences, random scalar values, and now and then a huge repeat.

use rand::rngs::StdRng;
use rand::Rng;

/// Pieces that have broken text pipelines before: normalization, byte/char offsets, whitespace
/// trimming, grapheme clusters, right-to-left text.
const PIECES: &[&str] = &[
    "",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\0",
    "\u{7}",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{a0}",
    "\u{3000}",
    "\u{200b}",
    "\u{200d}",
    "\u{feff}",
    "\u{202e}",
    "\u{2028}",
    "\u{fffd}",
    "\u{e000}",
    "\u{10ffff}",
    "e\u{301}",
    "\u{301}\u{301}\u{301}",
    "Z\u{324}\u{354}\u{367}\u{311}\u{313}",
    "mountain",
    "Warum ist der Mars rot?",
    "¿Cuál es la capital de Perú?",
    "山",
    "カカオの原産地",
    "世界上最高的山是哪座？",
    "Привет, мир",
    "مرحبا بالعالم",
    "שָׁלוֹם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "안녕하세요",
    "Ελληνικά",
    "👩\u{200d}👩\u{200d}👧\u{200d}👦",
    "🇩🇪",
    "▁talent",
    "</s>",
    "<pad>",
    "<unk>",
    "query: ",
    "passage: ",
    "ﬁ",
    "Ⅻ",
    "１２３",
];

/// A random text of up to a few hundred pieces; one in `1/HUGE_ONE_IN` is tens of KB or more.
pub fn text(rng: &mut StdRng) -> String {
    const HUGE_ONE_IN: u32 = 64;
    let mut out = String::new();
    for _ in 0..rng.gen_range(0..12) {
        out.push_str(&piece(rng));
    }
    if rng.gen_ratio(1, HUGE_ONE_IN) {
        let unit = piece(rng);
        out.push_str(&unit.repeat(rng.gen_range(1_000..20_000)));
    }
    out
}

/// One piece: from the table, a random scalar value, or a run of ASCII.
pub fn piece(rng: &mut StdRng) -> String {
    match rng.gen_range(0..4) {
        0 => scalar(rng).to_string(),
        1 => (0..rng.gen_range(1..40))
            .map(|_| rng.gen_range(0x20u8..0x7f) as char)
            .collect(),
        _ => PIECES[rng.gen_range(0..PIECES.len())].to_string(),
    }
}

/// A random Unicode scalar value, skewed towards the planes text actually uses.
fn scalar(rng: &mut StdRng) -> char {
    let max = match rng.gen_range(0..3) {
        0 => 0x80,
        1 => 0x1_0000,
        _ => 0x11_0000,
    };
    // Surrogates are not scalar values; map them to the replacement character.
    char::from_u32(rng.gen_range(0..max)).unwrap_or('\u{fffd}')
}
