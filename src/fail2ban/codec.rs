//! The wire format of fail2ban's control socket, without any I/O.
//!
//! Owns framing (`<F2B_END_COMMAND>` terminators over arbitrarily chunked
//! input, with a hard cap on a reply's size), request encoding (a pickled
//! list of strings) and reply decoding into typed values. Replies are looked
//! up by item name, never by position, and no shape is assumed without being
//! checked. This module must not touch sockets or clocks.

use serde_pickle::{DeOptions, HashableValue, SerOptions, Value};

use super::pickle_guard::Budget;
use crate::health::JailStats;

/// The terminator that ends every message in both directions.
pub const END_COMMAND: &[u8] = b"<F2B_END_COMMAND>";

/// What a polite client sends before it closes a connection (no reply comes).
pub const CLOSE_COMMAND: &[u8] = b"<F2B_CLOSE_COMMAND><F2B_END_COMMAND>";

/// Default cap on one reply's size, terminator excluded.
pub const DEFAULT_MAX_REPLY: usize = 16 * 1024 * 1024;

/// The longest version string accepted, in bytes (fail2ban's are about 10).
pub const MAX_VERSION: usize = 64;

/// How much of a text from fail2ban (an exception's message, an `ERROR:`
/// string, a decoder's complaint) is kept, in bytes.
pub const MAX_MESSAGE: usize = 256;

/// Why a reply could not be turned into a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a pickle this decoder understands.
    #[error("reply is not a valid pickle: {0}")]
    Garbage(String),
    /// fail2ban answered a bare `ERROR: ...` string: it could not read the request.
    #[error("fail2ban rejected the request: {0}")]
    Rejected(String),
    /// fail2ban answered `["SHUTDOWN"]`.
    #[error("fail2ban is shutting down")]
    ShuttingDown,
    /// The reply decoded, but not into the shape this request expects.
    #[error("unexpected reply: {0}")]
    UnexpectedShape(String),
    /// The pickle would decode into far more than any reply holds (memo
    /// references copied over and over, or nesting too deep); refused
    /// before anything was built.
    #[error("reply refused before decoding: {0}")]
    Expansive(String),
    /// The reply grew past the cap before its terminator arrived.
    #[error("reply exceeds the limit of {limit} bytes")]
    Oversize {
        /// The cap that was exceeded, in bytes.
        limit: usize,
    },
}

/// A decoded `(code, value)` reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Code 0: the command succeeded with this value.
    Ok(Value),
    /// Code 1: the command raised an exception with this message.
    Failed(String),
}

/// Encodes a request (`["status", "sshd", "short"]`) as one framed message.
///
/// ```
/// use fail2ban_healthd::fail2ban::codec;
/// let bytes = codec::encode_request(&["ping"]);
/// assert!(bytes.ends_with(codec::END_COMMAND));
/// let mut frames = codec::FrameBuffer::new(codec::DEFAULT_MAX_REPLY);
/// frames.push(&bytes).unwrap();
/// assert!(frames.next_frame().unwrap().is_some());
/// ```
pub fn encode_request(args: &[&str]) -> Vec<u8> {
    // A list of strings always serialises; the fallback keeps this total.
    let mut out = serde_pickle::to_vec(&args, SerOptions::new()).unwrap_or_default();
    out.extend_from_slice(END_COMMAND);
    out
}

/// Splits a byte stream into messages, holding at most `limit` bytes of an
/// unfinished one.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a terminator, so each byte is
    /// scanned about once however small the chunks are.
    scanned: usize,
    limit: usize,
}

impl FrameBuffer {
    /// A buffer for messages of at most `limit` bytes (terminator excluded).
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            limit,
        }
    }

    /// Appends received bytes (one read's worth: the buffer holds at most
    /// the limit, a terminator and one such chunk).
    ///
    /// # Errors
    /// [`CodecError::Oversize`] when the first buffered message is, or can
    /// only become, longer than the limit; the buffer is then cleared, so
    /// memory stays bounded.
    pub fn push(&mut self, data: &[u8]) -> Result<(), CodecError> {
        self.buf.extend_from_slice(data);
        let from = self.scanned.saturating_sub(END_COMMAND.len() - 1);
        match memchr::memmem::find(&self.buf[from..], END_COMMAND) {
            Some(rel) if from + rel <= self.limit => {
                self.scanned = from + rel;
                Ok(())
            }
            Some(_) => self.oversize(),
            // A terminator still to come would start past the limit.
            None if self.buf.len() >= self.limit + END_COMMAND.len() => self.oversize(),
            None => {
                self.scanned = self.buf.len();
                Ok(())
            }
        }
    }

    /// Takes the next complete message out of the buffer, without its
    /// terminator.
    ///
    /// # Errors
    /// [`CodecError::Oversize`] when a complete message is over the limit.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        let from = self.scanned.saturating_sub(END_COMMAND.len() - 1);
        match memchr::memmem::find(&self.buf[from..], END_COMMAND) {
            Some(rel) => {
                let pos = from + rel;
                if pos > self.limit {
                    return self.oversize().map(|()| None);
                }
                let rest = self.buf.split_off(pos + END_COMMAND.len());
                let mut frame = std::mem::replace(&mut self.buf, rest);
                frame.truncate(pos);
                self.scanned = 0;
                Ok(Some(frame))
            }
            None => {
                self.scanned = self.buf.len();
                Ok(None)
            }
        }
    }

    /// Bytes held for an unfinished message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn clear(&mut self) {
        self.buf = Vec::new();
        self.scanned = 0;
    }

    fn oversize(&mut self) -> Result<(), CodecError> {
        self.clear();
        Err(CodecError::Oversize { limit: self.limit })
    }
}

/// Decodes one message (terminator already removed) into a [`Reply`],
/// within a budget of its own (see [`decode_reply_within`]).
///
/// ```
/// use fail2ban_healthd::fail2ban::codec::{self, CodecError};
/// // fail2ban's answer while it shuts down: the pickle of ["SHUTDOWN"].
/// let frame = b"\x80\x03]q\x00X\x08\x00\x00\x00SHUTDOWNq\x01a.";
/// assert_eq!(codec::decode_reply(frame), Err(CodecError::ShuttingDown));
/// ```
///
/// # Errors
/// As [`decode_reply_within`].
pub fn decode_reply(frame: &[u8]) -> Result<Reply, CodecError> {
    decode_reply_within(frame, &Budget::default())
}

/// Decodes one message (terminator already removed) into a [`Reply`],
/// charging what it builds to `budget`, which spans a whole probe.
///
/// # Errors
/// [`CodecError::Expansive`] for a pickle that would pass the budget or
/// holds an integer that is too long, [`CodecError::Garbage`] for bytes
/// that are no pickle, [`CodecError::Rejected`] for fail2ban's `ERROR:`
/// string, [`CodecError::ShuttingDown`] for `["SHUTDOWN"]`, and
/// [`CodecError::UnexpectedShape`] for anything else that is not a
/// `(code, value)` pair with code 0 or 1.
pub fn decode_reply_within(frame: &[u8], budget: &Budget) -> Result<Reply, CodecError> {
    admit(frame, budget)?;
    decode_admitted(frame)
}

/// The first half of [`decode_reply_within`]: the pickle guard's verdict
/// on `frame`, charged to `budget`. A caller with a deadline may look at
/// the clock between the halves.
///
/// # Errors
/// [`CodecError::Expansive`] or [`CodecError::Garbage`].
pub fn admit(frame: &[u8], budget: &Budget) -> Result<(), CodecError> {
    use super::pickle_guard::{Refusal, check};
    check(frame, budget).map_err(|e| match e {
        Refusal::Limit(m) => CodecError::Expansive(m),
        Refusal::Malformed(m) => CodecError::Garbage(m),
    })?;
    Ok(())
}

/// The second half of [`decode_reply_within`], for a frame [`admit`]
/// accepted: serde-pickle decodes it.
///
/// # Errors
/// As [`decode_reply_within`], but never [`CodecError::Expansive`].
pub fn decode_admitted(frame: &[u8]) -> Result<Reply, CodecError> {
    // serde-pickle can panic on hostile input (sorting set members or
    // dict keys whose order is not total, found by fuzzing): a panic is
    // garbage, never the end of the daemon.
    let decoded = std::panic::catch_unwind(|| {
        serde_pickle::value_from_slice(frame, DeOptions::new().keep_restore_state())
    })
    .map_err(|_| CodecError::Garbage("the decoder failed on this pickle".into()))?;
    let value = decoded.map_err(|e| CodecError::Garbage(untrusted(&e.to_string())))?;
    match value {
        Value::Tuple(mut items) if items.len() == 2 => {
            let payload = items.pop().unwrap_or(Value::None);
            match items.pop() {
                Some(Value::I64(0)) => Ok(Reply::Ok(payload)),
                Some(Value::I64(1)) => Ok(Reply::Failed(exception_message(&payload))),
                Some(other) => Err(CodecError::UnexpectedShape(format!(
                    "reply code {}",
                    describe(&other)
                ))),
                None => Err(CodecError::UnexpectedShape("empty reply".into())),
            }
        }
        Value::String(s) if s.starts_with("ERROR:") => Err(CodecError::Rejected(untrusted(
            s.trim_start_matches("ERROR:").trim(),
        ))),
        Value::List(items) if matches!(items.as_slice(), [Value::String(s)] if s == "SHUTDOWN") => {
            Err(CodecError::ShuttingDown)
        }
        other => Err(CodecError::UnexpectedShape(format!(
            "expected a (code, value) pair, got {}",
            describe(&other)
        ))),
    }
}

/// Text from fail2ban kept in a message: control characters escaped, cut
/// to [`MAX_MESSAGE`] bytes.
fn untrusted(s: &str) -> String {
    crate::text::clean(s, MAX_MESSAGE).into_owned()
}

/// The human message of a pickled exception.
///
/// With `keep_restore_state` an exception's `REDUCE` arrives as the tuple of
/// its arguments (the class name is lost), so `UnknownJailException('x')`
/// reads as `("x",)`.
///
/// Only the first [`MAX_MESSAGE`] bytes are kept, control characters
/// escaped: the text is the server's and goes to logs and terminals.
fn exception_message(value: &Value) -> String {
    let add = |out: &mut String, v: &Value| match v {
        Value::String(s) => out.push_str(&s[..floor_boundary(s, MAX_MESSAGE + 1)]),
        other => out.push_str(&describe(other)),
    };
    let mut out = String::new();
    match value {
        Value::Tuple(args) | Value::List(args) => {
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                add(&mut out, a);
                if out.len() > MAX_MESSAGE {
                    break;
                }
            }
        }
        other => add(&mut out, other),
    }
    untrusted(&out)
}

/// The largest index at most `max` that is a character boundary of `s`.
fn floor_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// A short description of a value's kind, for error messages: it never
/// copies a whole (possibly huge) reply into a message.
fn describe(value: &Value) -> String {
    match value {
        Value::None => "None".into(),
        Value::Bool(b) => format!("bool {b}"),
        Value::I64(i) => format!("int {i}"),
        Value::Int(_) => "big int".into(),
        Value::F64(_) => "float".into(),
        Value::Bytes(b) => format!("bytes of length {}", b.len()),
        Value::String(s) if s.len() <= 64 => format!("string \"{}\"", crate::text::clean(s, 64)),
        Value::String(s) => format!("string of length {}", s.len()),
        Value::List(l) => format!("list of {} items", l.len()),
        Value::Tuple(t) => format!("tuple of {} items", t.len()),
        Value::Set(s) | Value::FrozenSet(s) => format!("set of {} items", s.len()),
        Value::Dict(d) => format!("dict of {} items", d.len()),
    }
}

fn shape(what: &str, value: &Value) -> CodecError {
    CodecError::UnexpectedShape(format!("{what}: got {}", describe(value)))
}

/// The value of the `(name, value)` pair called `key` in a list of pairs,
/// wherever it stands.
fn lookup<'a>(pairs: &'a Value, key: &str) -> Option<&'a Value> {
    let (Value::List(items) | Value::Tuple(items)) = pairs else {
        return None;
    };
    items.iter().find_map(|item| match item {
        Value::Tuple(kv) | Value::List(kv) => match kv.as_slice() {
            [Value::String(k), v] if k == key => Some(v),
            _ => None,
        },
        _ => None,
    })
}

fn require<'a>(pairs: &'a Value, key: &str, context: &str) -> Result<&'a Value, CodecError> {
    match pairs {
        Value::List(_) | Value::Tuple(_) => lookup(pairs, key).ok_or_else(|| {
            CodecError::UnexpectedShape(format!("{context}: no item named {key:?}"))
        }),
        other => Err(shape(context, other)),
    }
}

/// A counter as fail2ban sends it: a non-negative integer. Values past
/// `u32::MAX` saturate, since the bus type is `u`.
fn counter(value: &Value, what: &str) -> Result<u32, CodecError> {
    match value {
        Value::I64(i) if *i >= 0 => Ok(u32::try_from(*i).unwrap_or(u32::MAX)),
        Value::Int(big) if !big.to_string().starts_with('-') => Ok(u32::MAX),
        Value::Bool(b) => Ok(u32::from(*b)),
        other => Err(shape(what, other)),
    }
}

/// Parses the reply to `["version"]`.
///
/// # Errors
/// [`CodecError::UnexpectedShape`] unless it is printable text (no
/// control character, see [`crate::text::printable`]) of 1 to
/// [`MAX_VERSION`] bytes.
pub fn parse_version(value: &Value) -> Result<String, CodecError> {
    match value {
        Value::String(s)
            if !s.is_empty() && s.len() <= MAX_VERSION && crate::text::printable(s) =>
        {
            Ok(s.clone())
        }
        Value::String(s) => Err(CodecError::UnexpectedShape(format!(
            "version: not printable text of 1 to {MAX_VERSION} bytes: \"{}\"",
            crate::text::clean(s, 80)
        ))),
        other => Err(shape("version", other)),
    }
}

/// A jail name from fail2ban, checked against the contract's rule
/// ([`crate::health::valid_jail_name`]).
fn jail_name(name: &str, context: &str) -> Result<String, CodecError> {
    if crate::health::valid_jail_name(name) {
        Ok(name.to_owned())
    } else {
        Err(CodecError::UnexpectedShape(format!(
            "{context}: an invalid jail name \"{}\"",
            crate::text::clean(name, 80)
        )))
    }
}

/// Parses the reply to `["status"]` into jail names, in fail2ban's order.
///
/// # Errors
/// [`CodecError::UnexpectedShape`] when the `Jail list` item is missing or
/// not a string, or a name breaks the contract's rule.
pub fn parse_jail_list(value: &Value) -> Result<Vec<String>, CodecError> {
    match require(value, "Jail list", "status")? {
        Value::String(list) => list
            .split(',')
            .map(|n| n.trim_matches(' '))
            .filter(|name| !name.is_empty())
            .map(|n| jail_name(n, "status"))
            .collect(),
        other => Err(shape("status: Jail list", other)),
    }
}

/// Parses the reply to `["status", name, "short"]` (or without `short`).
///
/// # Errors
/// [`CodecError::UnexpectedShape`] when a counter is missing or not a
/// non-negative integer.
pub fn parse_jail_status(name: &str, value: &Value) -> Result<JailStats, CodecError> {
    let context = format!("status {name}");
    let filter = require(value, "Filter", &context)?;
    let actions = require(value, "Actions", &context)?;
    let get = |section: &Value, key: &str| -> Result<u32, CodecError> {
        counter(
            require(section, key, &context)?,
            &format!("{context}: {key}"),
        )
    };
    Ok(JailStats {
        name: name.to_owned(),
        currently_failed: get(filter, "Currently failed")?,
        total_failed: get(filter, "Total failed")?,
        currently_banned: get(actions, "Currently banned")?,
        total_banned: get(actions, "Total banned")?,
    })
}

/// Parses the reply to `["stats"]` (fail2ban 1.1 and later):
/// `{jail: [backend, (cur_failed, tot_failed), (cur_banned, tot_banned)]}`.
/// The result is sorted by jail name.
///
/// # Errors
/// [`CodecError::UnexpectedShape`] when it is not such a dict, or a jail
/// name breaks the contract's rule.
pub fn parse_stats(value: &Value) -> Result<Vec<JailStats>, CodecError> {
    let Value::Dict(map) = value else {
        return Err(shape("stats", value));
    };
    let mut jails = Vec::with_capacity(map.len());
    for (key, entry) in map {
        let HashableValue::String(name) = key else {
            return Err(CodecError::UnexpectedShape(
                "stats: a jail name is not a string".into(),
            ));
        };
        let name = jail_name(name, "stats")?;
        let context = format!("stats {name}");
        let (Value::List(fields) | Value::Tuple(fields)) = entry else {
            return Err(shape(&context, entry));
        };
        let pair = |v: Option<&Value>, what: &str| -> Result<(u32, u32), CodecError> {
            match v {
                Some(Value::Tuple(p) | Value::List(p)) if p.len() == 2 => Ok((
                    counter(&p[0], &format!("{context}: current {what}"))?,
                    counter(&p[1], &format!("{context}: total {what}"))?,
                )),
                Some(other) => Err(shape(&format!("{context}: {what}"), other)),
                None => Err(CodecError::UnexpectedShape(format!(
                    "{context}: no {what} counters"
                ))),
            }
        };
        let (currently_failed, total_failed) = pair(fields.get(1), "failed")?;
        let (currently_banned, total_banned) = pair(fields.get(2), "banned")?;
        jails.push(JailStats {
            name,
            currently_failed,
            total_failed,
            currently_banned,
            total_banned,
        });
    }
    jails.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(jails)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(chunks: &[&[u8]], limit: usize) -> Result<Vec<Vec<u8>>, CodecError> {
        let mut fb = FrameBuffer::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            fb.push(c)?;
            while let Some(f) = fb.next_frame()? {
                out.push(f);
            }
        }
        Ok(out)
    }

    #[test]
    fn terminator_split_across_every_position_is_found() {
        let msg = b"abc<F2B_END_COMMAND>def<F2B_END_COMMAND>";
        for cut in 0..msg.len() {
            let got = frames_of(&[&msg[..cut], &msg[cut..]], 1024).unwrap();
            assert_eq!(got, vec![b"abc".to_vec(), b"def".to_vec()], "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = msg.chunks(1).collect();
        assert_eq!(frames_of(&bytewise, 1024).unwrap().len(), 2);
    }

    #[test]
    fn oversize_is_refused_and_the_buffer_released() {
        let over = Err(CodecError::Oversize { limit: 8 });
        // Exactly the limit passes, with its terminator in a later chunk.
        assert_eq!(
            frames_of(&[b"12345678", b"<F2B_END_COMMAND>"], 8),
            Ok(vec![b"12345678".to_vec()])
        );
        // One byte over fails, however it is chunked.
        let msg = b"123456789<F2B_END_COMMAND>";
        for cut in 0..msg.len() {
            assert_eq!(
                frames_of(&[&msg[..cut], &msg[cut..]], 8),
                over,
                "cut at {cut}"
            );
        }
        // No terminator at all: refused once no terminator can fit, and
        // the buffer is released.
        let mut fb = FrameBuffer::new(8);
        fb.push(b"123456789").unwrap();
        assert_eq!(fb.next_frame(), Ok(None));
        assert_eq!(fb.push(&[b'x'; 32]), Err(CodecError::Oversize { limit: 8 }));
        assert_eq!(fb.pending(), 0);
    }

    #[test]
    fn a_full_sized_message_may_share_a_chunk_with_the_next() {
        assert_eq!(
            frames_of(&[b"12345678<F2B_END", b"_COMMAND>xyz<F2B_END_COMMAND>"], 8),
            Ok(vec![b"12345678".to_vec(), b"xyz".to_vec()])
        );
    }

    #[test]
    fn request_is_a_pickled_list_of_strings() {
        let bytes = encode_request(&["status", "sshd", "short"]);
        let body = bytes.strip_suffix(END_COMMAND).unwrap();
        let back: Vec<String> = serde_pickle::from_slice(body, DeOptions::new()).unwrap();
        assert_eq!(back, ["status", "sshd", "short"]);
    }

    #[test]
    fn lookup_ignores_position() {
        let pairs = Value::List(vec![
            Value::Tuple(vec![Value::String("b".into()), Value::I64(2)]),
            Value::Tuple(vec![Value::String("a".into()), Value::I64(1)]),
        ]);
        assert_eq!(lookup(&pairs, "a"), Some(&Value::I64(1)));
        assert_eq!(lookup(&pairs, "c"), None);
        assert_eq!(lookup(&Value::None, "a"), None);
    }

    #[test]
    fn counters_refuse_negative_and_saturate_large() {
        assert_eq!(counter(&Value::I64(5), "x"), Ok(5));
        assert_eq!(counter(&Value::I64(1 << 40), "x"), Ok(u32::MAX));
        assert!(counter(&Value::I64(-1), "x").is_err());
        assert!(counter(&Value::String("1".into()), "x").is_err());
    }

    #[test]
    fn versions_must_be_short_printable_text() {
        let v = |s: &str| parse_version(&Value::String(s.into()));
        assert_eq!(v("1.0.2"), Ok("1.0.2".into()));
        assert!(v(&"1".repeat(MAX_VERSION)).is_ok());
        for bad in ["", "1.0.2\0\nMAINPID=1", "1\u{7f}", "1\u{2028}"] {
            let e = v(bad).unwrap_err();
            assert!(crate::text::printable(&e.to_string()), "{e}");
        }
        assert!(v(&"1".repeat(MAX_VERSION + 1)).is_err());
    }

    #[test]
    fn jail_lists_keep_only_contract_names() {
        let list = |s: &str| {
            parse_jail_list(&Value::List(vec![Value::Tuple(vec![
                Value::String("Jail list".into()),
                Value::String(s.into()),
            ])]))
        };
        assert_eq!(
            list("sshd, nginx-1"),
            Ok(vec!["sshd".into(), "nginx-1".into()])
        );
        assert_eq!(list(""), Ok(vec![]));
        for bad in ["sshd, a\nb", "sshd,\tx", "-x", "a b"] {
            let e = list(bad).unwrap_err();
            assert!(e.to_string().contains("invalid jail name"), "{bad:?}: {e}");
            assert!(crate::text::printable(&e.to_string()), "{e}");
        }
    }

    #[test]
    fn exception_messages_are_cut_and_cleaned() {
        let long = Value::Tuple(vec![Value::String("a\n".repeat(10_000))]);
        let m = exception_message(&long);
        assert!(m.len() <= MAX_MESSAGE + '…'.len_utf8(), "{}", m.len());
        assert!(m.starts_with("a\\u{a}a"), "{m}");
        assert!(crate::text::printable(&m));
        // Many arguments stop being joined once the cap is reached.
        let many = Value::Tuple(vec![Value::String("x".repeat(200)); 10_000]);
        assert!(exception_message(&many).len() <= MAX_MESSAGE + '…'.len_utf8());
        assert_eq!(
            exception_message(&Value::Tuple(vec![Value::String("nosuchjail".into())])),
            "nosuchjail"
        );
    }
}
