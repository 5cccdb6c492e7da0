//! Plain-text rules shared by every field: trimming, lengths, control characters,
//! and the folding used by search so that both databases index the same words.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::Problems;

/// A trimmed string of 1..=max characters without control characters.
pub fn required_text(raw: &str, path: &str, max: usize, p: &mut Problems) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() {
        p.push(path, format!("'{path}' must not be empty."));
        return None;
    }
    optional_text(t, path, max, p)
}

/// Like [`required_text`], but an empty string reads as absent.
pub fn optional_text(raw: &str, path: &str, max: usize, p: &mut Problems) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    let mut ok = true;
    if t.chars().count() > max {
        p.push(path, format!("'{path}' must be at most {max} characters long."));
        ok = false;
    }
    if t.chars().any(char::is_control) {
        p.push(path, format!("'{path}' must not contain control characters."));
        ok = false;
    }
    if t.chars().any(is_bidi_control) {
        p.push(path, format!("'{path}' must not contain bidirectional formatting characters (such as U+202E)."));
        ok = false;
    }
    ok.then(|| t.to_owned())
}

/// Unicode's bidirectional formatting characters (embeddings, overrides,
/// isolates and marks): in a name they make what a person reads differ from
/// what is stored (`\u{202E}` turns `evil.exe` round), so no text field takes them.
/// `char::is_control`'s characters, as a regular-expression class.
const CONTROL_CLASS: &str = r"\u0000-\u001F\u007F-\u009F";
/// [`is_bidi_control`]'s characters, as a regular-expression class.
const BIDI_CLASS: &str = r"\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069";

/// [`optional_text`]'s rule as a pattern (for the OpenAPI document): no control
/// or bidirectional formatting characters.
pub fn optional_text_pattern() -> String {
    format!("^[^{CONTROL_CLASS}{BIDI_CLASS}]*$")
}

/// [`required_text`]'s rule as a pattern: also something other than spaces.
pub fn required_text_pattern() -> String {
    let refused = format!("{CONTROL_CLASS}{BIDI_CLASS}");
    format!(r"^[^{refused}]*[^\s{refused}][^{refused}]*$")
}

/// No control characters (query values, credentials), as a pattern.
pub fn no_control_pattern() -> String {
    format!("^[^{CONTROL_CLASS}]*$")
}

/// No NUL or bidirectional formatting characters (a custom string value), as a pattern.
pub fn no_nul_or_bidi_pattern() -> String {
    format!(r"^[^\u0000{BIDI_CLASS}]*$")
}

pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Lowercase, accents removed, every run of non-alphanumerics one space.
/// `"Zoë O'Brien-Smith"` → `"zoe o brien smith"`.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_strips_accents_case_and_punctuation() {
        assert_eq!(fold("  Zoë O'Brien-Smith "), "zoe o brien smith");
        assert_eq!(fold("ÉMILE"), "emile");
        assert_eq!(fold("--"), "");
    }

    #[test]
    fn text_limits() {
        let mut p = Problems::new();
        assert_eq!(required_text("  a ", "x", 3, &mut p), Some("a".into()));
        assert_eq!(required_text("   ", "x", 3, &mut p), None);
        assert_eq!(required_text("abcd", "x", 3, &mut p), None);
        assert_eq!(required_text("a\u{7}", "x", 3, &mut p), None);
        assert_eq!(p.iter().count(), 3);
        assert_eq!(required_text("\u{202E}cba", "x", 9, &mut p), None);
        assert_eq!(required_text("ab\u{2067}", "x", 9, &mut p), None);
        assert_eq!(required_text("זה שם", "x", 9, &mut p), Some("זה שם".into()), "right-to-left text itself is fine");
    }
}
