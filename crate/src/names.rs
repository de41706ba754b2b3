//! The name rules of the JS API, written once: WIT's kebab-case names are also reachable in
//! lowerCamelCase (jco's spelling), and an interface may be named without its `@version`.

/// Most characters of a caller's text an error message repeats (a 100 MB tag would otherwise
/// make a 100 MB message).
const SHOWN_CHARS: usize = 64;

/// The most UTF-16 units of a caller's name (a case, flag or export it means) read for a lookup
/// or a message, unless a real name is longer: a longer string names nothing and would not be
/// shown, and reading any of it makes V8 flatten all of it (a 256 MiB string took 0.2 s and as
/// many bytes to be refused).
pub fn name_units_read(longest_name: usize) -> usize {
    longest_name.max(2 * SHOWN_CHARS)
}

/// What a message says of a string that was not read.
pub fn unread(units: usize) -> String {
    format!("(a string of {units} UTF-16 units)")
}

/// What a message says of a caller's name holding a lone surrogate (no WIT name does; a lossy
/// copy could name another export, one that holds U+FFFD).
pub const LONE_SURROGATE_NAME: &str = "(a string with a lone surrogate)";

/// `text` in double quotes for an error message, cut after [`SHOWN_CHARS`] characters, written
/// as by [`escaped`].
pub fn quoted(text: &str) -> String {
    quoted_at_most(text, SHOWN_CHARS)
}

/// [`quoted`], cut after `max` characters.
pub fn quoted_at_most(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("\"{}\"… ({} characters)", escaped(&text[..end]), text.chars().count()),
        None => format!("\"{}\"", escaped(text)),
    }
}

/// `text` with its newlines and tabs written as escapes: a message of one line that quotes a
/// guest's text (wasmparser's quote names whole), so that the text cannot start lines of its own.
pub fn one_line(text: &str) -> String {
    text.replace('\n', "\\n").replace('\t', "\\t")
}

/// `text` for the inside of double quotes in a message: a quote and a backslash, and what a
/// terminal or a reader would take for layout (control characters, line and paragraph
/// separators, bidirectional controls), written as escapes. A guest's names reach messages, and a
/// name holding a newline could print a line of its own.
pub fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    matches!(c, '"' | '\\' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{2028}' | '\u{2029}')
        || c.is_control()
}

/// `text` up to `bytes` bytes, at a character boundary.
pub fn cut(text: &str, bytes: usize) -> &str {
    if text.len() <= bytes {
        return text;
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Most bytes of a guest's name that a message repeats (wasm allows 100,000 a name).
const LABEL_BYTES: usize = 200;

/// A guest's name for the inside of double quotes in a message: escaped (see [`escaped`]) and
/// cut after [`LABEL_BYTES`] bytes, for messages a service may log on every failing call.
pub fn label(text: &str) -> String {
    escaped(&shortened(text, LABEL_BYTES)).into_owned()
}

/// `text` up to `bytes` bytes (see [`cut`]), ending in `…` when that left something out.
pub fn shortened(text: &str, bytes: usize) -> std::borrow::Cow<'_, str> {
    let kept = cut(text, bytes);
    if kept.len() == text.len() {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(format!("{kept}…"))
    }
}

/// kebab-case WIT name -> lowerCamelCase JS name, as jco spells it (`first-name` -> `firstName`,
/// `u8-x` -> `u8X`), a word in capitals being a word like any other (`get-HTTP-url` ->
/// `getHttpUrl`). lib/util/names.ts has the same rule.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (index, word) in name.split('-').enumerate() {
        let acronym = word.chars().any(char::is_uppercase) && !word.chars().any(char::is_lowercase);
        for (position, c) in word.chars().enumerate() {
            if position == 0 && index > 0 {
                out.extend(c.to_uppercase());
            } else if acronym {
                out.extend(c.to_lowercase());
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// kebab-case WIT name -> UpperCamelCase JS class name (`input-stream` -> `InputStream`).
pub fn upper_camel_case(name: &str) -> String {
    let lower = camel_case(name);
    let mut chars = lower.chars();
    chars
        .next()
        .map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// `wasi:cli/run@0.2.0` -> `wasi:cli/run`.
pub fn unversioned(interface: &str) -> &str {
    interface.split_once('@').map_or(interface, |(name, _)| name)
}

/// Every path a function export answers to: `name` and `camelName` at the root;
/// `iface#name` and `iface#camelName` inside an interface, also with the interface unversioned.
pub fn export_paths(interface: Option<&str>, name: &str) -> Vec<String> {
    let prefixes = match interface {
        None => vec![String::new()],
        Some(interface) if unversioned(interface) != interface => {
            vec![format!("{interface}#"), format!("{}#", unversioned(interface))]
        }
        Some(interface) => vec![format!("{interface}#")],
    };
    let camel = camel_case(name);
    prefixes
        .iter()
        .flat_map(|prefix| [format!("{prefix}{name}"), format!("{prefix}{camel}")])
        .collect()
}

/// The keys a JS import object may use for a function import: its WIT name, then lowerCamelCase.
pub fn function_keys(name: &str) -> [String; 2] {
    [name.to_string(), camel_case(name)]
}

/// The keys a JS import object may use for an interface: its full name, then without `@version`.
pub fn interface_keys(name: &str) -> [&str; 2] {
    [name, unversioned(name)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guests_newline_in_a_one_line_message_is_escaped() {
        assert_eq!(one_line("name `x\nok: fake`\t"), "name `x\\nok: fake`\\t");
    }

    #[test]
    fn quoted_text_is_cut_after_64_characters() {
        assert_eq!(quoted("red"), "\"red\"");
        let long = "é".repeat(100);
        assert_eq!(quoted(&long), format!("\"{}\"… (100 characters)", "é".repeat(64)));
    }

    #[test]
    fn kebab_names_become_lower_camel_case() {
        assert_eq!(camel_case("first-name"), "firstName");
        assert_eq!(camel_case("roundtrip-list-u8"), "roundtripListU8");
        assert_eq!(camel_case("plain"), "plain");
        assert_eq!(upper_camel_case("input-stream"), "InputStream");
        assert_eq!(upper_camel_case(""), "");
    }

    #[test]
    fn a_word_in_capitals_is_one_word_as_jco_spells_it() {
        assert_eq!(camel_case("get-URL"), "getUrl");
        assert_eq!(camel_case("get-HTTP-url"), "getHttpUrl");
        assert_eq!(camel_case("HTTP-client"), "httpClient");
        assert_eq!(camel_case("HTTP2-x"), "http2X");
        assert_eq!(upper_camel_case("HTTP-client"), "HttpClient");
        assert_eq!(camel_case("alreadyCamel"), "alreadyCamel");
    }

    #[test]
    fn an_interface_export_answers_to_four_paths() {
        assert_eq!(
            export_paths(Some("test:x/api@0.1.0"), "get-name"),
            [
                "test:x/api@0.1.0#get-name",
                "test:x/api@0.1.0#getName",
                "test:x/api#get-name",
                "test:x/api#getName"
            ]
        );
        assert_eq!(export_paths(None, "greet"), ["greet", "greet"]);
    }
}
