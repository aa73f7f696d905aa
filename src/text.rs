//! Text that came from outside (fail2ban's socket, the state file, the
//! bus) on its way to places that must never see control characters:
//! systemd's `STATUS=`, the journal, the terminal, JSON.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1), line or paragraph
/// separator and invisible format character (bidirectional overrides and
/// isolates, zero-width characters, byte order mark) written as `\u{..}`,
/// and
/// cut to at most `max` bytes (on a character boundary, marked with `…`).
/// Borrowed when nothing had to change.
pub fn clean(s: &str, max: usize) -> Cow<'_, str> {
    let needs_escape = |c: char| !allowed(c);
    if s.len() <= max && !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max) + 8);
    for c in s.chars() {
        let piece: Cow<'_, str> = if needs_escape(c) {
            Cow::Owned(c.escape_unicode().to_string())
        } else {
            let mut buf = [0u8; 4];
            Cow::Owned(c.encode_utf8(&mut buf).to_owned())
        };
        if out.len() + piece.len() > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    Cow::Owned(out)
}

/// Whether `s` is printable text: no control characters, no line or
/// paragraph separators, no invisible format characters that could make
/// text read other than it is (such as a right-to-left override).
pub fn printable(s: &str) -> bool {
    s.chars().all(allowed)
}

fn allowed(c: char) -> bool {
    !(c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        ))
}

/// The error and each of its causes, joined by `: `.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(clean("fail2ban 1.0.2", 100), Cow::Borrowed(_)));
    }

    #[test]
    fn control_characters_are_escaped() {
        let s = clean("1.0.2\0\nMAINPID=1\u{7f}\u{85}", 100);
        assert_eq!(s, "1.0.2\\u{0}\\u{a}MAINPID=1\\u{7f}\\u{85}");
        assert!(printable(&s));
    }

    #[test]
    fn long_text_is_cut_on_a_boundary() {
        let long = "é".repeat(100);
        assert_eq!(clean(&long, 11), format!("{}…", "é".repeat(5)));
        let lines = "\n".repeat(100);
        let s = clean(&lines, 20);
        assert!(s.len() <= 20 + '…'.len_utf8());
        assert!(printable(&s));
    }

    #[test]
    fn printable_refuses_controls_and_separators() {
        assert!(printable("sshd nginx-1.0 é"));
        for bad in [
            "a\nb",
            "\0",
            "x\u{1b}[31m",
            "\u{2028}",
            "\u{9b}",
            "1.0\u{202e}2.0",
            "a\u{200b}b",
            "\u{feff}1",
            "x\u{2066}y",
        ] {
            assert!(!printable(bad), "{bad:?}");
        }
    }
}
