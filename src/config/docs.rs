//! The settings' documentation, rendered from their one definition: the
//! commented default file (`systemd/config.toml`), the README's table and
//! the file's man page (`man/fail2ban-healthd.toml.5`).
//!
//! Pure text: tests/generated.rs compares the shipped copies with these
//! and rewrites them when asked (`F2BH_BLESS=1`).

use super::define::{DefaultValue, Group, Setting};
use super::{DEFAULT_PATH, SETTINGS};

/// Width of the commented default file's lines.
const WIDTH: usize = 76;

/// `text` split into lines of at most `width` bytes (longer words alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn in_group(group: Group) -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().filter(move |s| s.group == group)
}

/// The commented default configuration file: every key commented out with
/// its default (or an example), its doc above it.
pub fn config_toml() -> String {
    let mut out = String::new();
    let intro = format!(
        "fail2ban-healthd configuration ({DEFAULT_PATH}). Every key is optional and \
         shown commented out with its default; a flag of the same name \
         (--probe-interval for probe_interval) overrides it. Durations are strings \
         such as \"30s\", \"1m\" or \"1m 30s\". See fail2ban-healthd.toml(5)."
    );
    for line in wrap(&intro, WIDTH) {
        out.push_str(&format!("# {line}\n"));
    }
    for group in Group::ALL {
        out.push_str(&format!("\n## {}\n", group.title()));
        for s in in_group(group) {
            out.push('\n');
            for (i, paragraph) in s.paragraphs().iter().enumerate() {
                if i > 0 {
                    out.push_str("#\n");
                }
                for line in wrap(&paragraph.replace('`', ""), WIDTH) {
                    out.push_str(&format!("# {line}\n"));
                }
            }
            if let DefaultValue::Unset { shown, .. } = s.default {
                let line = format!("Default: {}.", shown.replace('`', ""));
                for line in wrap(&line, WIDTH) {
                    out.push_str(&format!("# {line}\n"));
                }
            }
            out.push_str(&format!("#{} = {}\n", s.key, s.default.toml()));
        }
    }
    out
}

/// The README's table: key, flag, default, meaning.
pub fn markdown_table() -> String {
    let mut out = String::from("| key | flag | default | meaning |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let default = match s.default {
            DefaultValue::Unset { shown, .. } => shown.to_owned(),
            other => format!("`{}`", other.toml()),
        };
        out.push_str(&format!(
            "| `{}` | `{} {}` | {} | {} |\n",
            s.key,
            s.flag(),
            s.value_name,
            default,
            s.paragraphs().join(" ").replace('|', "\\|"),
        ));
    }
    out
}

/// Text for roff: backslashes and leading dots escaped, `code` in bold
/// with its hyphens as minus signs.
fn roff(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        let escaped = part.replace('\\', "\\e");
        if i % 2 == 1 {
            out.push_str(&format!("\\fB{}\\fR", escaped.replace('-', "\\-")));
        } else {
            out.push_str(&escaped);
        }
    }
    if out.starts_with(['.', '\'']) {
        out.insert_str(0, "\\&");
    }
    out
}

/// The configuration file's man page, section 5.
pub fn man_page(version: &str) -> String {
    let mut out = format!(
        ".TH FAIL2BAN\\-HEALTHD.TOML 5 \"\" \"fail2ban-healthd {version}\" \"File Formats Manual\"\n"
    );
    out.push_str(
        ".SH NAME\nfail2ban\\-healthd.toml \\- configuration file of fail2ban\\-healthd\n\
         .SH SYNOPSIS\n",
    );
    out.push_str(&format!("\\fB{}\\fR\n", roff(DEFAULT_PATH)));
    out.push_str(
        ".SH DESCRIPTION\n\
         \\fBfail2ban\\-healthd run\\fR reads this TOML file when it exists, or the file \
         given by \\fB\\-\\-config\\fR. Every key is optional; a flag of the same name \
         (\\fB\\-\\-probe\\-interval\\fR for \\fBprobe_interval\\fR) overrides it. Unknown \
         keys, wrong types and bad values are errors that name the key; the daemon then \
         does not start. Durations are strings such as \"30s\", \"1m\" or \"1m 30s\".\n",
    );
    for group in Group::ALL {
        out.push_str(&format!(
            ".SH \"{}\"\n",
            roff(&group.title().to_uppercase())
        ));
        for s in in_group(group) {
            out.push_str(&format!(
                ".TP\n\\fB{}\\fR = \\fI{}\\fR (\\fB{}\\fR)\n",
                roff(s.key),
                roff(s.value_name),
                roff(&s.flag()).replace('-', "\\-"),
            ));
            for (i, paragraph) in s.paragraphs().iter().enumerate() {
                if i > 0 {
                    out.push_str(".IP\n");
                }
                out.push_str(&roff(paragraph));
                out.push('\n');
            }
            let default = match s.default {
                DefaultValue::Unset { shown, .. } => roff(shown),
                other => format!("\\fB{}\\fR", roff(&other.toml().to_string())),
            };
            out.push_str(&format!(".IP\nDefault: {default}.\n"));
        }
    }
    out.push_str(&format!(
        ".SH EXAMPLE\n.nf\n# {}\nprobe_interval = \"30s\"\ncrash_window = \"2m\"\n\
         manage_group = \"adm\"\n.fi\n",
        roff(DEFAULT_PATH)
    ));
    out.push_str(&format!(
        ".SH FILES\n.TP\n{}\nThe configuration file; the package ships it with every key \
         commented out.\n",
        roff(DEFAULT_PATH)
    ));
    out.push_str(
        ".SH \"SEE ALSO\"\n\\fBfail2ban\\-healthd\\fR(8), \\fBfail2ban\\-client\\fR(1), \
         \\fBjail.conf\\fR(5)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_whole_within_the_width() {
        let lines = wrap("aaa bbb ccc ddddddddddd e", 7);
        assert_eq!(lines, ["aaa bbb", "ccc", "ddddddddddd", "e"]);
    }

    #[test]
    fn roff_escapes_backslashes_dots_and_code() {
        assert_eq!(roff(".x \\ `a-b`"), "\\&.x \\e \\fBa\\-b\\fR");
    }
}
