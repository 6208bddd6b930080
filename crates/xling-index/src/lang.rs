//! ISO 639-1 language codes, used to validate corpus languages and request filters.

/// All two-letter ISO 639-1 codes, sorted (binary search). Includes the withdrawn `bh`
/// because older corpora still use it.
const ISO_639_1: [&str; 184] = [
    "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bh",
    "bi", "bm", "bn", "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da",
    "de", "dv", "dz", "ee", "el", "en", "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr",
    "fy", "ga", "gd", "gl", "gn", "gu", "gv", "ha", "he", "hi", "ho", "hr", "ht", "hu", "hy", "hz",
    "ia", "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", "ja", "jv", "ka", "kg", "ki", "kj",
    "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky", "la", "lb", "lg", "li", "ln",
    "lo", "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", "na", "nb",
    "nd", "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os", "pa", "pi",
    "pl", "ps", "pt", "qu", "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "si", "sk",
    "sl", "sm", "sn", "so", "sq", "sr", "ss", "st", "su", "sv", "sw", "ta", "te", "tg", "th", "ti",
    "tk", "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty", "ug", "uk", "ur", "uz", "ve", "vi", "vo",
    "wa", "wo", "xh", "yi", "yo", "za", "zh", "zu",
];

/// True for a two-letter ISO 639-1 code in lowercase (`en`, `zh`); `EN`, `eng`, `zz` are not.
pub fn is_iso639_1(code: &str) -> bool {
    ISO_639_1.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(ISO_639_1.windows(2).all(|w| w[0] < w[1]));
        assert!(ISO_639_1
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_lowercase())));
    }

    #[test]
    fn accepts_codes_and_rejects_others() {
        for code in [
            "en", "de", "zh", "ar", "hi", "th", "tr", "vi", "ru", "el", "es", "aa", "zu",
        ] {
            assert!(is_iso639_1(code), "{code}");
        }
        for code in [
            "", "e", "EN", "En", "eng", "zz", "xx", "en-US", "zh_CN", " en",
        ] {
            assert!(!is_iso639_1(code), "{code:?}");
        }
    }
}
