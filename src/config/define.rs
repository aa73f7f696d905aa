//! The shape of a setting's one definition, and the macro that turns the
//! list in [`super::settings`] into everything else.
//!
//! From one entry (doc comment, key, raw type, default, value name, group)
//! the macro makes a field of [`super::Settings`], which derives both
//! `clap::Args` (the `run` flags) and `serde::Deserialize` (the file's
//! keys), and a [`Setting`] in [`super::SETTINGS`], which the help, the man
//! pages, the commented default file and the README's table are rendered
//! from. Nothing about a setting is written anywhere else, except its
//! validation (one function per group, in the group's module).

/// What a setting is about; its validator lives in the module of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// How fail2ban is reached and followed (`fail2ban.rs`).
    Fail2ban,
    /// Probe intervals, the crash window and graces (`timing.rs`).
    Timing,
    /// Who besides root may act (`access.rs`).
    Access,
    /// How rollbacks and trials act on fail2ban (`rollback.rs`).
    Rollback,
    /// Files the daemon writes (`files.rs`).
    Files,
    /// The bus served on (`bus.rs`).
    Bus,
    /// Where logs go (`logging.rs`).
    Logging,
}

impl Group {
    /// Every group, in the order of the documentation.
    pub const ALL: [Group; 7] = [
        Group::Fail2ban,
        Group::Timing,
        Group::Access,
        Group::Rollback,
        Group::Files,
        Group::Bus,
        Group::Logging,
    ];

    /// The heading of its part of the documentation.
    pub fn title(self) -> &'static str {
        match self {
            Group::Fail2ban => "fail2ban",
            Group::Timing => "Timing",
            Group::Access => "Access",
            Group::Rollback => "Rollback and trials",
            Group::Files => "Files",
            Group::Bus => "D-Bus",
            Group::Logging => "Logging",
        }
    }
}

/// A setting's default, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// This string.
    Str(&'static str),
    /// This boolean.
    Bool(bool),
    /// No value. `shown` says what that means (in the documentation's
    /// default column); `example` is the value shown, commented out, in
    /// the default file.
    Unset {
        /// What no value means, e.g. "none".
        shown: &'static str,
        /// A value for the commented default file.
        example: &'static str,
    },
}

impl DefaultValue {
    /// The default as a TOML value, or the example when there is none.
    pub fn toml(self) -> toml::Value {
        match self {
            DefaultValue::Str(s) | DefaultValue::Unset { example: s, .. } => toml::Value::from(s),
            DefaultValue::Bool(b) => toml::Value::from(b),
        }
    }

    /// The default in words: the TOML value, or what no value means.
    pub fn shown(self) -> String {
        match self {
            DefaultValue::Unset { shown, .. } => shown.to_owned(),
            other => other.toml().to_string(),
        }
    }
}

/// The raw types a setting may have; a default must be of its type (a
/// test checks every one).
pub trait RawValue: Sized {
    /// Whether the type is `bool` (else `String`).
    const IS_BOOL: bool;
    /// The default as a value of this type; `None` when it has none or is
    /// of another type.
    fn from_default(default: DefaultValue) -> Option<Self>;
    /// The value as TOML.
    fn to_toml(&self) -> toml::Value;
}

impl RawValue for String {
    const IS_BOOL: bool = false;
    fn from_default(default: DefaultValue) -> Option<Self> {
        match default {
            DefaultValue::Str(s) => Some(s.to_owned()),
            _ => None,
        }
    }
    fn to_toml(&self) -> toml::Value {
        toml::Value::from(self.as_str())
    }
}

impl RawValue for bool {
    const IS_BOOL: bool = true;
    fn from_default(default: DefaultValue) -> Option<Self> {
        match default {
            DefaultValue::Bool(b) => Some(b),
            _ => None,
        }
    }
    fn to_toml(&self) -> toml::Value {
        toml::Value::from(*self)
    }
}

/// One setting, as the documentation renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The file's key; the flag is `--` and the key with `-` for `_`.
    pub key: &'static str,
    /// What it is about.
    pub group: Group,
    /// The doc comment's lines; a blank line separates paragraphs, the
    /// first paragraph is the summary. `code` is in backquotes.
    pub doc: &'static [&'static str],
    /// Its default.
    pub default: DefaultValue,
    /// The flag's value name in the help, e.g. `DURATION`.
    pub value_name: &'static str,
    /// Whether it is a boolean (else a string).
    pub is_bool: bool,
}

impl Setting {
    /// The command-line flag, e.g. `--probe-interval`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// The doc's paragraphs, each on one line.
    pub fn paragraphs(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        for line in self.doc.iter().map(|l| l.trim()) {
            if line.is_empty() {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            } else {
                if !current.is_empty() {
                    current.push(' ');
                }
                current.push_str(line);
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    /// The help of the flag: the doc without backquotes, and the default.
    pub fn long_help(&self) -> String {
        let mut text = self.paragraphs().join("\n\n").replace('`', "");
        text.push_str("\n\nDefault: ");
        text.push_str(&self.default.shown().replace('`', ""));
        text
    }
}

/// Defines every setting once: see the module's doc. Each entry is
/// `/// doc` then `key: Type = default, "VALUE_NAME", Group;`.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $key:ident : $ty:ty = $default:expr, $value_name:literal, $group:ident;
    )*) => {
        /// Settings as written, every one optional: the file's keys and
        /// the `run` flags of the same names.
        #[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[command(mut_args = $crate::config::settings::with_help)]
        pub struct Settings {
            $(
                $(#[doc = $doc])+
                #[arg(long, value_name = $value_name)]
                pub $key: Option<$ty>,
            )*
        }

        /// Every setting, in the documentation's order.
        pub const SETTINGS: &[$crate::config::define::Setting] = &[$(
            $crate::config::define::Setting {
                key: stringify!($key),
                group: $crate::config::define::Group::$group,
                doc: &[$($doc),+],
                default: $default,
                value_name: $value_name,
                is_bool: <$ty as $crate::config::define::RawValue>::IS_BOOL,
            },
        )*];

        impl Settings {
            /// Every setting that has a default, set to it.
            pub fn defaults() -> Settings {
                use $crate::config::define::RawValue as _;
                Settings {
                    $($key: <$ty>::from_default($default),)*
                }
            }

            /// These settings, each replaced by `over`'s where it has one.
            #[must_use]
            pub fn overridden_by(self, over: Settings) -> Settings {
                Settings {
                    $($key: over.$key.or(self.$key),)*
                }
            }

            /// Each key with its value as TOML, if it has one.
            pub fn values(&self) -> Vec<(&'static str, Option<toml::Value>)> {
                use $crate::config::define::RawValue as _;
                vec![$((stringify!($key), self.$key.as_ref().map(|v| v.to_toml())),)*]
            }
        }
    };
}

pub(crate) use settings;
