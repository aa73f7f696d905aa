//! A first pass over a reply's pickle that bounds what decoding it would
//! cost, before serde-pickle builds anything.
//!
//! A pickle can describe far more than its own size: a memo reference
//! (`GET`) is a few bytes, yet the decoder copies the whole object it
//! names, and objects made of references to objects made of references
//! grow exponentially ("billion laughs"). `DUP` and a `PUT` of a reference
//! copy whole objects while the pickle is read. A text or binary integer of
//! millions of digits takes the decoder quadratic time. Deep nesting makes
//! recursive code (decoding, printing, dropping) overflow the stack.
//!
//! This pass runs serde-pickle 1.2's own machine (`Deserializer::
//! parse_value`, then `convert_value`) opcode for opcode on compact
//! stand-ins: strings are lengths, every copy serde-pickle makes is made
//! here too and paid for, a reference is a memo index resolved only at the
//! end (as serde-pickle resolves it, so a memo slot written again after it
//! was referenced counts with its last value), and `MARK` saves the whole
//! stack as serde-pickle does, so `POP` on an empty stack drops the mark.
//! Wherever serde-pickle fails, this pass fails too (or earlier).
//!
//! Everything is charged to a [`Budget`] that spans one whole probe: the
//! objects and bytes built or copied while reading, then those of the
//! decoded value, references expanded. A reply that would pass the budget
//! is refused, and so is any integer longer than [`MAX_INT_BYTES`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one probe's replies may cost, all together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Objects built or copied while reading the pickles, plus the objects
    /// of the decoded values (references expanded), across the probe.
    pub max_nodes: u64,
    /// The same objects at [`NODE_COST`] bytes each, plus their string,
    /// bytes and integer payloads.
    pub max_expanded: u64,
    /// Containers nested in containers, at most, in any one value.
    pub max_depth: u32,
}

/// The cost of one decoded object, about the size of a decoded value.
pub const NODE_COST: u64 = 48;

/// What serde-pickle allocates at each `MARK`: a new stack of 128 values
/// (32 bytes each), kept as the items of a list, tuple or frozenset built
/// from it.
pub const MARK_COST: u64 = 128 * 32;

/// The longest integer accepted, in bytes: digits of a text `INT` or
/// `LONG`, bytes of a binary `LONG1` or `LONG4` (256 bits). fail2ban's
/// counters fit in 8.
pub const MAX_INT_BYTES: usize = 32;

impl Default for Limits {
    /// Far above any fail2ban probe (1 000 jails through `status JAIL
    /// short` cost about 75 000 objects and 4 MiB), far below what hurts:
    /// the slowest reply within them decodes in tens of milliseconds.
    fn default() -> Self {
        Self {
            max_nodes: 256 * 1024,
            max_expanded: 24 << 20,
            max_depth: 64,
        }
    }
}

/// What one probe has spent of its [`Limits`]. Clones share the counters,
/// so a probe's connections (a retry opens another) draw on one budget.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: Limits,
    used: Arc<Used>,
}

#[derive(Debug, Default)]
struct Used {
    nodes: AtomicU64,
    cost: AtomicU64,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Budget {
    /// A fresh budget of `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            used: Arc::new(Used::default()),
        }
    }

    /// The limits this budget enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Objects charged so far.
    pub fn used_nodes(&self) -> u64 {
        self.used.nodes.load(Ordering::Relaxed)
    }

    /// Bytes charged so far (objects at [`NODE_COST`] plus payloads).
    pub fn used_cost(&self) -> u64 {
        self.used.cost.load(Ordering::Relaxed)
    }

    /// Charges `nodes` objects carrying `bytes` of payload, or refuses
    /// without charging when that would pass a limit.
    fn charge(&self, nodes: u64, bytes: u64) -> Check<()> {
        let n = self.used_nodes().saturating_add(nodes);
        let cost = self
            .used_cost()
            .saturating_add(nodes.saturating_mul(NODE_COST))
            .saturating_add(bytes);
        if n > self.limits.max_nodes {
            return Err(Refusal::Limit(format!(
                "the replies describe more than {} objects",
                self.limits.max_nodes
            )));
        }
        if cost > self.limits.max_expanded {
            return Err(Refusal::Limit(format!(
                "the replies would expand past {} bytes",
                self.limits.max_expanded
            )));
        }
        self.used.nodes.store(n, Ordering::Relaxed);
        self.used.cost.store(cost, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back `bytes` charged for memory serde-pickle has freed again
    /// (a mark's stack whose items went elsewhere).
    fn refund(&self, bytes: u64) {
        let cost = self.used_cost().saturating_sub(bytes);
        self.used.cost.store(cost, Ordering::Relaxed);
    }
}

/// What the decoded value of an accepted pickle holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Estimate {
    /// Values, each element, dict key and dict value counted once,
    /// references expanded.
    pub objects: u64,
    /// String, bytes and integer payload bytes, and [`MARK_COST`] for
    /// each list, tuple or frozenset that keeps a mark's stack.
    pub bytes: u64,
    /// Nesting: 1 for a scalar, 1 + the deepest item for a container.
    pub depth: u32,
}

/// Why a pickle is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It is not a pickle serde-pickle reads.
    #[error("{0}")]
    Malformed(String),
    /// It breaks one of the [`Limits`], or holds an integer that is too long.
    #[error("{0}")]
    Limit(String),
}

impl From<&str> for Refusal {
    fn from(s: &str) -> Self {
        Refusal::Malformed(s.to_owned())
    }
}

impl From<String> for Refusal {
    fn from(s: String) -> Self {
        Refusal::Malformed(s)
    }
}

type Check<T> = Result<T, Refusal>;

/// The names serde-pickle's `decode_global` looks for.
const NAMES: [&[u8]; 12] = [
    b"_codecs",
    b"copy_reg",
    b"copyreg",
    b"__builtin__",
    b"builtins",
    b"encode",
    b"_reconstructor",
    b"set",
    b"frozenset",
    b"list",
    b"bytearray",
    b"int",
];

/// 1 + the index of `s` in [`NAMES`], or 0.
fn name_of(s: &[u8]) -> u8 {
    NAMES
        .iter()
        .position(|n| *n == s)
        .map_or(0, |i| i as u8 + 1)
}

/// serde-pickle's `Global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum G {
    Encode,
    Reconst,
    Set,
    Frozenset,
    List,
    Bytearray,
    Int,
    Other,
}

/// serde-pickle's `decode_global`, on name indices.
fn global(module: u8, name: u8) -> G {
    let m = |s: &[u8]| module == name_of(s);
    let n = |s: &[u8]| name == name_of(s);
    let builtin = m(b"__builtin__") || m(b"builtins");
    if m(b"_codecs") && n(b"encode") {
        G::Encode
    } else if (m(b"copy_reg") || m(b"copyreg")) && n(b"_reconstructor") {
        G::Reconst
    } else if builtin && n(b"set") {
        G::Set
    } else if builtin && n(b"frozenset") {
        G::Frozenset
    } else if builtin && n(b"list") {
        G::List
    } else if builtin && n(b"bytearray") {
        G::Bytearray
    } else if builtin && n(b"int") {
        G::Int
    } else {
        G::Other
    }
}

/// A stand-in for one of serde-pickle's internal values.
#[derive(Debug, Clone)]
enum V {
    /// `MemoRef`: resolved by index when the value is converted.
    Ref(u32),
    Global(G),
    /// None, a bool, an `I64`.
    Small,
    Float,
    /// A big integer of this many payload bytes.
    Int(u64),
    /// A string of at most this many bytes; `name` as [`name_of`].
    Str {
        len: u64,
        name: u8,
    },
    Bytes(u64),
    C(Box<Cont>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CK {
    List,
    Tuple,
    Set,
    FrozenSet,
    /// Items are keys and values in turn.
    Dict,
}

#[derive(Debug, Clone)]
struct Cont {
    kind: CK,
    items: Vec<V>,
    /// Objects held, this one included, references not expanded.
    nodes: u64,
    /// Payload bytes held, references not expanded, with [`MARK_COST`]
    /// for each container built from a mark's stack.
    bytes: u64,
    /// [`MARK_COST`] when this container's items are a mark's stack.
    extra: u64,
    /// Nesting, references counting 1.
    depth: u32,
}

impl V {
    fn nodes(&self) -> u64 {
        match self {
            V::C(c) => c.nodes,
            _ => 1,
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            V::Int(n) | V::Bytes(n) | V::Str { len: n, .. } => *n,
            V::C(c) => c.bytes,
            _ => 0,
        }
    }

    fn depth(&self) -> u32 {
        match self {
            V::C(c) => c.depth,
            _ => 1,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            V::Ref(_) => "a reference",
            V::Global(_) => "a global",
            V::Small => "a scalar",
            V::Float => "a float",
            V::Int(_) => "an integer",
            V::Str { .. } => "a string",
            V::Bytes(_) => "bytes",
            V::C(c) => match c.kind {
                CK::List => "a list",
                CK::Tuple => "a tuple",
                CK::Set => "a set",
                CK::FrozenSet => "a frozenset",
                CK::Dict => "a dict",
            },
        }
    }
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    budget: &'a Budget,
    stack: Vec<V>,
    stacks: Vec<Vec<V>>,
    memo: HashMap<u32, V>,
}

impl Machine<'_> {
    fn take(&mut self, n: u64) -> Check<&[u8]> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.input.len())
            .ok_or("the pickle ends inside an argument")?;
        let s = &self.input[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Check<u8> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, n: u64) -> Check<u64> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// A length as `read_i32_prefixed_bytes` reads it.
    fn i32_len(&mut self) -> Check<u64> {
        let raw = self.uint(4)? as u32 as i32;
        u64::try_from(raw).map_err(|_| "a negative length".into())
    }

    /// A line as serde-pickle's `read_line` returns it: without its `\n`
    /// and a `\r` before it. At the end of the input serde-pickle takes its
    /// last byte for the newline, and then fails at the next read; so does
    /// this.
    fn line(&mut self) -> Check<&[u8]> {
        let rest = &self.input[self.pos..];
        let n = memchr::memchr(b'\n', rest).ok_or("an unterminated line argument")?;
        self.pos += n + 1;
        let mut l = &rest[..n];
        if let [head @ .., b'\r'] = l {
            l = head;
        }
        Ok(l)
    }

    fn line_u32(&mut self) -> Check<u32> {
        let l = self.line()?;
        std::str::from_utf8(l)
            .unwrap_or("")
            .parse()
            .map_err(|_| "a memo index that is not a number".into())
    }

    /// Builds a new scalar and pays for it.
    fn new_leaf(&mut self, v: V) -> Check<()> {
        self.budget.charge(1, v.bytes())?;
        self.stack.push(v);
        Ok(())
    }

    /// A container of `items` (moved, not copied); pays for itself.
    fn cont(&self, kind: CK, items: Vec<V>) -> Check<V> {
        self.cont_extra(kind, items, 0)
    }

    /// A container whose items are the stack a mark saved: it keeps that
    /// stack's allocation.
    fn cont_of_mark(&self, kind: CK, items: Vec<V>) -> Check<V> {
        self.cont_extra(kind, items, MARK_COST)
    }

    fn cont_extra(&self, kind: CK, items: Vec<V>, extra: u64) -> Check<V> {
        self.budget.charge(1, extra)?;
        let mut c = Cont {
            kind,
            items: Vec::new(),
            nodes: 1,
            bytes: extra,
            extra,
            depth: 1,
        };
        for v in &items {
            c.nodes = c.nodes.saturating_add(v.nodes());
            c.bytes = c.bytes.saturating_add(v.bytes());
            c.depth = c.depth.max(v.depth().saturating_add(1));
        }
        self.check_depth(c.depth)?;
        c.items = items;
        Ok(V::C(Box::new(c)))
    }

    fn check_depth(&self, depth: u32) -> Check<()> {
        if depth > self.budget.limits.max_depth {
            return Err(Refusal::Limit(format!(
                "the reply nests deeper than {} levels",
                self.budget.limits.max_depth
            )));
        }
        Ok(())
    }

    /// A copy of `v`, paid for as serde-pickle's `clone` would cost.
    fn copy(budget: &Budget, v: &V) -> Check<V> {
        budget.charge(v.nodes(), v.bytes())?;
        Ok(v.clone())
    }

    fn pop(&mut self) -> Check<V> {
        self.stack
            .pop()
            .ok_or_else(|| "the pickle pops an empty stack".into())
    }

    /// `pop_mark`: the items above the topmost mark; the stack below it
    /// comes back. The mark's stack is paid for again only by a container
    /// that keeps it ([`Machine::cont_of_mark`]).
    fn pop_mark(&mut self) -> Check<Vec<V>> {
        let below = self.stacks.pop().ok_or("no mark on the stack")?;
        self.budget.refund(MARK_COST);
        Ok(std::mem::replace(&mut self.stack, below))
    }

    /// `resolve`: a reference becomes a copy of what its memo slot holds now.
    fn resolve(&mut self, v: V) -> Check<V> {
        match v {
            V::Ref(id) => {
                let target = self.memo.get(&id).ok_or("a memo reference to nothing")?;
                Self::copy(self.budget, target)
            }
            other => Ok(other),
        }
    }

    fn pop_resolve(&mut self) -> Check<V> {
        let v = self.pop()?;
        self.resolve(v)
    }

    /// `top`: the stack's top, seen through a reference.
    fn top(&mut self) -> Check<&mut V> {
        match self.stack.last_mut() {
            Some(V::Ref(id)) => {
                let id = *id;
                self.memo
                    .get_mut(&id)
                    .ok_or_else(|| "a memo reference to nothing".into())
            }
            Some(v) => Ok(v),
            None => Err("no object on the stack".into()),
        }
    }

    /// `modify_list`, `modify_dict`, `modify_set`: adds `items` to the
    /// container on top, which must be a `kind`.
    fn extend_top(&mut self, kind: CK, items: Vec<V>) -> Check<()> {
        self.extend_top_with(kind, items.len(), items)
    }

    /// As [`Machine::extend_top`], for `n` items from any source (one
    /// appended item needs no vector of its own).
    fn extend_top_with(
        &mut self,
        kind: CK,
        n: usize,
        items: impl IntoIterator<Item = V>,
    ) -> Check<()> {
        let max_depth = self.budget.limits.max_depth;
        let top = self.top()?;
        let V::C(c) = top else {
            return Err(format!("adding items to {}", top.kind()).into());
        };
        if c.kind != kind {
            return Err(format!("adding items to {}", top.kind()).into());
        }
        // `extend_dict` drops a key without a value.
        let take = if kind == CK::Dict { n - n % 2 } else { n };
        let (mut nodes, mut bytes, mut depth) = (c.nodes, c.bytes, c.depth);
        let start = c.items.len();
        c.items.extend(items.into_iter().take(take));
        for v in &c.items[start..] {
            nodes = nodes.saturating_add(v.nodes());
            bytes = bytes.saturating_add(v.bytes());
            depth = depth.max(v.depth().saturating_add(1));
        }
        if depth > max_depth {
            return Err(Refusal::Limit(format!(
                "the reply nests deeper than {max_depth} levels"
            )));
        }
        (c.nodes, c.bytes, c.depth) = (nodes, bytes, depth);
        Ok(())
    }

    /// Moves the top into memo slot `id` and pushes a reference to it
    /// (one more value, and a memo entry, paid for).
    fn memoize(&mut self, id: u32) -> Check<()> {
        self.budget.charge(1, 0)?;
        let mut item = self.pop()?;
        if let V::Ref(r) = item {
            let target = self.memo.get(&r).ok_or("a memo reference to nothing")?;
            item = Self::copy(self.budget, target)?;
        }
        self.memo.insert(id, item);
        self.stack.push(V::Ref(id));
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> Check<()> {
        if !self.memo.contains_key(&id) {
            return Err("a memo reference to nothing".into());
        }
        // A reference is a value on serde-pickle's stack too.
        self.budget.charge(1, 0)?;
        self.stack.push(V::Ref(id));
        Ok(())
    }

    fn int_len(&self, n: u64) -> Check<()> {
        if n > MAX_INT_BYTES as u64 {
            return Err(Refusal::Limit(format!(
                "an integer of {n} bytes (at most {MAX_INT_BYTES} are accepted)"
            )));
        }
        Ok(())
    }

    /// Counted string payload; `unicode` for a `str`.
    fn counted(&mut self, n: u64, unicode: bool) -> Check<()> {
        let s = self.take(n)?;
        let v = if unicode {
            V::Str {
                len: n,
                name: name_of(s),
            }
        } else {
            V::Bytes(n)
        };
        self.new_leaf(v)
    }

    /// `reduce_global`.
    fn reduce(&mut self, global: V, mut args: Vec<V>) -> Check<()> {
        let V::Global(g) = global else {
            return Err(format!("calling {}", global.kind()).into());
        };
        let last = |m: &mut Self, args: &mut Vec<V>| -> Check<Option<V>> {
            args.pop().map(|v| m.resolve(v)).transpose()
        };
        let out = match g {
            G::Set | G::Frozenset | G::List => match last(self, &mut args)? {
                Some(V::C(mut c)) if c.kind == CK::List => {
                    c.kind = match g {
                        G::Set => CK::Set,
                        G::Frozenset => CK::FrozenSet,
                        _ => CK::List,
                    };
                    V::C(c)
                }
                _ => return Err("a set(), frozenset() or list() of no list".into()),
            },
            G::Bytearray => {
                args.truncate(1);
                match last(self, &mut args)? {
                    Some(V::Bytes(n) | V::Str { len: n, .. }) => V::Bytes(n),
                    _ => return Err("a bytearray() of no bytes".into()),
                }
            }
            G::Int => match last(self, &mut args)? {
                Some(v @ V::Int(_)) => v,
                _ => return Err("an int() of no long integer".into()),
            },
            G::Encode => {
                if !matches!(last(self, &mut args)?, Some(V::Str { .. })) {
                    return Err("an encode() without an encoding".into());
                }
                match last(self, &mut args)? {
                    Some(V::Str { len, .. }) => V::Bytes(len),
                    _ => return Err("an encode() of no string".into()),
                }
            }
            G::Reconst => match last(self, &mut args)? {
                Some(state) => state,
                None => self.cont(CK::Dict, Vec::new())?,
            },
            G::Other => {
                let resolved = args
                    .into_iter()
                    .map(|v| self.resolve(v))
                    .collect::<Check<Vec<V>>>()?;
                self.cont(CK::Tuple, resolved)?
            }
        };
        self.stack.push(out);
        Ok(())
    }

    /// `parse_value`: runs the machine to `STOP`; the value popped there.
    fn run(&mut self) -> Check<V> {
        loop {
            let op = self.byte().map_err(|_| "the pickle ends without STOP")?;
            match op {
                // PROTO, FRAME
                b'\x80' => {
                    self.take(1)?;
                }
                b'\x95' => {
                    self.take(8)?;
                }
                // STOP
                b'.' => return self.pop(),
                // MARK: serde-pickle allocates a new stack.
                b'(' => {
                    self.budget.charge(1, MARK_COST)?;
                    let below = std::mem::take(&mut self.stack);
                    self.stacks.push(below);
                }
                // POP: on an empty stack it drops the mark instead.
                b'0' => {
                    if self.stack.is_empty() {
                        self.pop_mark()?;
                    } else {
                        self.pop()?;
                    }
                }
                // POP_MARK
                b'1' => {
                    self.pop_mark()?;
                }
                // DUP copies the object, through a reference.
                b'2' => {
                    let budget = self.budget;
                    let v = Self::copy(budget, self.top()?)?;
                    self.stack.push(v);
                }
                b'p' => {
                    let id = self.line_u32()?;
                    self.memoize(id)?;
                }
                b'q' => {
                    let id = self.uint(1)? as u32;
                    self.memoize(id)?;
                }
                b'r' => {
                    let id = self.uint(4)? as u32;
                    self.memoize(id)?;
                }
                b'\x94' => {
                    let id = self.memo.len() as u32;
                    self.memoize(id)?;
                }
                b'g' => {
                    let id = self.line_u32()?;
                    self.memo_get(id)?;
                }
                b'h' => {
                    let id = self.uint(1)? as u32;
                    self.memo_get(id)?;
                }
                b'j' => {
                    let id = self.uint(4)? as u32;
                    self.memo_get(id)?;
                }
                b'N' | b'\x88' | b'\x89' => self.new_leaf(V::Small)?,
                // INT: "00" and "01" are bools, else an i64.
                b'I' => {
                    let l = self.line()?;
                    let n = l.len() as u64;
                    let is_bool = l == b"00" || l == b"01";
                    let parses = std::str::from_utf8(l)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .is_some();
                    self.int_len(n)?;
                    if !is_bool && !parses {
                        return Err("an INT that is no 64-bit integer".into());
                    }
                    self.new_leaf(V::Small)?;
                }
                // LONG: decimal digits, an optional `L`.
                b'L' => {
                    let l = self.line()?;
                    let digits = l.strip_suffix(b"L").unwrap_or(l).len() as u64;
                    self.int_len(digits)?;
                    if digits == 0 {
                        return Err("an empty LONG".into());
                    }
                    self.new_leaf(V::Int(digits))?;
                }
                b'F' => {
                    let l = self.line()?;
                    if std::str::from_utf8(l)
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok())
                        .is_none()
                    {
                        return Err("a FLOAT that is no number".into());
                    }
                    self.new_leaf(V::Float)?;
                }
                // STRING: an escaped byte string, no longer than its line.
                b'S' => {
                    let n = self.line()?.len() as u64;
                    self.new_leaf(V::Bytes(n))?;
                }
                // UNICODE: raw-unicode-escape; each other byte becomes a
                // character of up to 2 bytes.
                b'V' => {
                    let l = self.line()?;
                    let name = decode_raw_unicode(l).map_or(0, |s| name_of(s.as_bytes()));
                    let len = (l.len() as u64).saturating_mul(2);
                    self.new_leaf(V::Str { len, name })?;
                }
                b'G' => {
                    self.take(8)?;
                    self.new_leaf(V::Float)?;
                }
                b'J' => {
                    self.take(4)?;
                    self.new_leaf(V::Small)?;
                }
                b'K' => {
                    self.take(1)?;
                    self.new_leaf(V::Small)?;
                }
                b'M' => {
                    self.take(2)?;
                    self.new_leaf(V::Small)?;
                }
                b'\x8a' => {
                    let n = self.uint(1)?;
                    self.int_len(n)?;
                    self.take(n)?;
                    self.new_leaf(V::Int(n))?;
                }
                b'\x8b' => {
                    let n = self.i32_len()?;
                    self.int_len(n)?;
                    self.take(n)?;
                    self.new_leaf(V::Int(n))?;
                }
                b'C' => {
                    let n = self.uint(1)?;
                    self.counted(n, false)?;
                }
                b'B' => {
                    let n = self.uint(4)?;
                    self.counted(n, false)?;
                }
                b'\x8e' | b'\x96' => {
                    let n = self.uint(8)?;
                    self.counted(n, false)?;
                }
                // SHORT_BINSTRING, BINSTRING: bytes (strings are not decoded).
                b'U' => {
                    let n = self.uint(1)?;
                    self.counted(n, false)?;
                }
                b'T' => {
                    let n = self.i32_len()?;
                    self.counted(n, false)?;
                }
                b'\x8c' => {
                    let n = self.uint(1)?;
                    self.counted(n, true)?;
                }
                b'X' => {
                    let n = self.uint(4)?;
                    self.counted(n, true)?;
                }
                b'\x8d' => {
                    let n = self.uint(8)?;
                    self.counted(n, true)?;
                }
                b')' => {
                    let v = self.cont(CK::Tuple, Vec::new())?;
                    self.stack.push(v);
                }
                b'\x85' | b'\x86' | b'\x87' => {
                    let n = usize::from(op - b'\x84');
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let v = self.cont(CK::Tuple, items)?;
                    self.stack.push(v);
                }
                b't' | b'l' | b'\x91' => {
                    let items = self.pop_mark()?;
                    let kind = match op {
                        b't' => CK::Tuple,
                        b'l' => CK::List,
                        _ => CK::FrozenSet,
                    };
                    let v = self.cont_of_mark(kind, items)?;
                    self.stack.push(v);
                }
                b']' | b'}' | b'\x8f' => {
                    let kind = match op {
                        b']' => CK::List,
                        b'}' => CK::Dict,
                        _ => CK::Set,
                    };
                    let v = self.cont(kind, Vec::new())?;
                    self.stack.push(v);
                }
                b'd' => {
                    let mut items = self.pop_mark()?;
                    if items.len() % 2 == 1 {
                        items.pop();
                    }
                    let v = self.cont(CK::Dict, items)?;
                    self.stack.push(v);
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top_with(CK::List, 1, [v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_top(CK::List, items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.extend_top_with(CK::Dict, 2, [key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_top(CK::Dict, items)?;
                }
                b'\x90' => {
                    let items = self.pop_mark()?;
                    self.extend_top(CK::Set, items)?;
                }
                b'c' => {
                    let module = name_of(self.line()?);
                    let name = name_of(self.line()?);
                    self.new_leaf(V::Global(global(module, name)))?;
                }
                b'\x93' => {
                    let V::Str { name, .. } = self.pop_resolve()? else {
                        return Err("a STACK_GLOBAL name that is no string".into());
                    };
                    let V::Str { name: module, .. } = self.pop_resolve()? else {
                        return Err("a STACK_GLOBAL module that is no string".into());
                    };
                    self.new_leaf(V::Global(global(module, name)))?;
                }
                b'R' => {
                    let args = match self.pop_resolve()? {
                        V::C(c) if c.kind == CK::Tuple => c.items,
                        other => return Err(format!("REDUCE on {}", other.kind()).into()),
                    };
                    let g = self.pop_resolve()?;
                    self.reduce(g, args)?;
                }
                b'i' => {
                    self.line()?;
                    self.line()?;
                    let args = self.pop_mark()?;
                    let v = self.cont_of_mark(CK::Tuple, args)?;
                    self.stack.push(v);
                }
                b'o' => {
                    let args = self.pop_mark()?;
                    self.pop()?;
                    let v = self.cont_of_mark(CK::Tuple, args)?;
                    self.stack.push(v);
                }
                b'\x81' => {
                    let args = self.pop()?;
                    self.pop()?;
                    self.stack.push(args);
                }
                b'\x92' => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    self.pop()?;
                    let v = self.cont(CK::Tuple, vec![args, kwargs])?;
                    self.stack.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    self.pop()?;
                    self.stack.push(state);
                }
                other => return Err(format!("unsupported pickle opcode 0x{other:02x}").into()),
            }
        }
    }
}

/// serde-pickle's `decode_escaped_unicode`, for lines short enough to be
/// one of [`NAMES`].
fn decode_raw_unicode(s: &[u8]) -> Option<String> {
    if s.len() > 128 {
        return None;
    }
    let mut out = String::new();
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b as char);
            continue;
        }
        let n = match it.next() {
            Some(b'u') => 4,
            Some(b'U') => 8,
            _ => return None,
        };
        let mut acc = 0u32;
        for _ in 0..n {
            acc = acc * 16 + (*it.next()? as char).to_digit(16)?;
        }
        out.push(char::from_u32(acc)?);
    }
    Some(out)
}

/// What one value holds without following references, and the references
/// it holds.
#[derive(Default)]
struct Scan {
    objects: u64,
    bytes: u64,
    depth: u32,
    float: bool,
    /// A float inside a dict key or a set member.
    float_key: bool,
    /// (memo index, containers above it, inside a key or member).
    refs: Vec<(u32, u32, bool)>,
}

#[derive(Clone, Copy)]
struct Expanded {
    objects: u64,
    bytes: u64,
    depth: u32,
    float: bool,
}

/// Walks `v`'s own structure (its depth is bounded while reading).
fn scan(v: &V, above: u32, in_key: bool, out: &mut Scan) -> Check<()> {
    out.depth = out.depth.max(above + 1);
    match v {
        V::Ref(id) => out.refs.push((*id, above, in_key)),
        // `convert_value` fails on a global that was never called.
        V::Global(_) => return Err("an unresolved global".into()),
        V::C(c) => {
            out.objects = out.objects.saturating_add(1);
            out.bytes = out.bytes.saturating_add(c.extra);
            for (i, item) in c.items.iter().enumerate() {
                let key = in_key
                    || matches!(c.kind, CK::Set | CK::FrozenSet)
                    || (c.kind == CK::Dict && i % 2 == 0);
                scan(item, above + 1, key, out)?;
            }
        }
        other => {
            out.objects = out.objects.saturating_add(1);
            out.bytes = out.bytes.saturating_add(other.bytes());
            if matches!(other, V::Float) {
                out.float = true;
                out.float_key |= in_key;
            }
        }
    }
    Ok(())
}

impl Machine<'_> {
    /// `convert_value`: the decoded value's size, references expanded
    /// (each as often as it appears, a slot written again counting with
    /// its last value), without recursion across references; a value that
    /// contains itself is refused, as serde-pickle refuses it.
    fn measure(&self, root: &V) -> Check<Estimate> {
        let limits = self.budget.limits;
        let refuse_float = || Refusal::Malformed("a float in a set member or a dict key".into());
        let mut done: HashMap<u32, Expanded> = HashMap::new();
        let mut open: HashSet<u32> = HashSet::new();
        let first = {
            let mut s = Scan::default();
            scan(root, 0, false, &mut s)?;
            s
        };
        // (memo index or None for the root, its scan, next reference)
        let mut walk: Vec<(Option<u32>, Scan, usize)> = vec![(None, first, 0)];
        loop {
            let Some((id, s, next)) = walk.last_mut() else {
                return Err("an empty walk".into());
            };
            if let Some(&(rid, _, _)) = s.refs.get(*next) {
                *next += 1;
                if done.contains_key(&rid) {
                    continue;
                }
                if !open.insert(rid) {
                    return Err("the reply refers to itself".into());
                }
                let target = self.memo.get(&rid).ok_or("a memo reference to nothing")?;
                let mut t = Scan::default();
                scan(target, 0, false, &mut t)?;
                walk.push((Some(rid), t, 0));
                continue;
            }
            if s.float_key {
                return Err(refuse_float());
            }
            let mut e = Expanded {
                objects: s.objects,
                bytes: s.bytes,
                depth: s.depth,
                float: s.float,
            };
            for &(rid, above, in_key) in &s.refs {
                let r = done[&rid];
                e.objects = e.objects.saturating_add(r.objects);
                e.bytes = e.bytes.saturating_add(r.bytes);
                e.depth = e.depth.max(above.saturating_add(r.depth));
                e.float |= r.float;
                if in_key && r.float {
                    return Err(refuse_float());
                }
            }
            if e.depth > limits.max_depth {
                return Err(Refusal::Limit(format!(
                    "the reply nests deeper than {} levels",
                    limits.max_depth
                )));
            }
            let cost = e.objects.saturating_mul(NODE_COST).saturating_add(e.bytes);
            if e.objects > limits.max_nodes || cost > limits.max_expanded {
                return Err(Refusal::Limit(format!(
                    "the reply would expand past {} bytes",
                    limits.max_expanded
                )));
            }
            let id = *id;
            walk.pop();
            match id {
                Some(rid) => {
                    open.remove(&rid);
                    done.insert(rid, e);
                }
                None => {
                    return Ok(Estimate {
                        objects: e.objects,
                        bytes: e.bytes,
                        depth: e.depth,
                    });
                }
            }
        }
    }
}

/// Checks that serde-pickle (`value_from_slice` with `keep_restore_state`)
/// can decode `pickle` within what is left of `budget`, and charges it;
/// returns what the decoded value holds at most.
///
/// # Errors
/// A message saying which limit the pickle breaks, or why serde-pickle
/// would not read it.
pub fn check(pickle: &[u8], budget: &Budget) -> Result<Estimate, Refusal> {
    let mut m = Machine {
        input: pickle,
        pos: 0,
        budget,
        stack: Vec::new(),
        stacks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.run()?;
    // serde-pickle converts the value before it looks for trailing bytes.
    let estimate = m.measure(&root)?;
    if m.pos < pickle.len() {
        return Err("bytes after STOP".into());
    }
    budget.charge(estimate.objects, estimate.bytes)?;
    Ok(estimate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Budget {
        Budget::default()
    }

    fn ok(p: &[u8]) -> Estimate {
        check(p, &fresh()).unwrap()
    }

    fn refused(p: &[u8]) -> Refusal {
        check(p, &fresh()).unwrap_err()
    }

    /// serde-pickle's own verdict, as the codec calls it.
    fn serde_ok(p: &[u8]) -> bool {
        serde_pickle::value_from_slice(p, serde_pickle::DeOptions::new().keep_restore_state())
            .is_ok()
    }

    #[test]
    fn a_plain_reply_passes_with_its_size() {
        // (0, ["a"]) with protocol 4 framing.
        let e = ok(b"\x80\x04K\x00]\x8c\x01a\x94a\x86\x94.");
        assert_eq!(
            e,
            Estimate {
                objects: 4,
                bytes: 1,
                depth: 3
            }
        );
    }

    #[test]
    fn references_count_every_copy() {
        // A list of 10 empty byte strings, then a list holding it 3 times.
        let mut p = b"\x80\x04(".to_vec();
        p.extend(b"C\x00".repeat(10));
        p.extend(b"l\x94");
        p.extend(b"]\x94(h\x00h\x00h\x00e.");
        assert_eq!(ok(&p).objects, 1 + 3 * 11);
    }

    #[test]
    fn a_change_after_memoizing_is_seen_through_every_reference() {
        // An empty list memoized, referenced twice, then grown.
        let p = b"]\x94](h\x00h\x00eh\x00(NNNe0.";
        assert_eq!(ok(b"]\x94](h\x00h\x00e.").objects, 3);
        assert_eq!(ok(p).objects, 3 + 2 * 3);
        assert!(serde_ok(p));
    }

    #[test]
    fn a_slot_written_again_counts_with_its_last_value_everywhere() {
        // memo 0 = [], a list holding it 1 000 times; then memo 0 becomes
        // a list of 1 000 None, referenced (and dropped) 1 000 times more.
        // serde-pickle resolves every reference by index at the end, as
        // often as the slot was referenced since it was written: 10^6
        // objects, not 1 000.
        let mut p = b"]\x94(".to_vec();
        p.extend(b"h\x00".repeat(1000));
        p.extend(b"l(");
        p.extend(b"N".repeat(1000));
        p.extend(b"lq\x000");
        p.extend(b"h\x000".repeat(1000));
        p.push(b'.');
        assert!(serde_ok(&p));
        let e = refused(&p);
        assert!(matches!(&e, Refusal::Limit(_)), "{e}");
        let small = Limits {
            max_nodes: u64::MAX,
            max_expanded: u64::MAX,
            max_depth: 64,
        };
        let est = check(&p, &Budget::new(small)).unwrap();
        assert!(est.objects >= 1000 * 1000, "{est:?}");
    }

    #[test]
    fn exponential_references_are_refused() {
        // l0 = [None]*10; l(k+1) = [lk]*10, 12 times: 10^13 objects.
        let mut p = b"(".to_vec();
        p.extend(b"N".repeat(10));
        p.extend(b"l\x94");
        for k in 0..12u8 {
            p.push(b'(');
            for _ in 0..10 {
                p.extend([b'h', k]);
            }
            p.extend(b"l\x94");
        }
        p.push(b'.');
        let e = refused(&p);
        assert!(
            matches!(&e, Refusal::Limit(m) if m.contains("expand")),
            "{e}"
        );
    }

    #[test]
    fn copies_while_reading_are_paid_for() {
        // A list of 100 000 None, then DUP and POP 100 000 times: nothing
        // of it reaches the value, but serde-pickle copies 10^10 objects.
        let mut p = b"(".to_vec();
        p.extend(b"N".repeat(100_000));
        p.push(b'l');
        p.extend(b"20".repeat(100_000));
        p.push(b'.');
        assert!(matches!(refused(&p), Refusal::Limit(_)));
        // The same through the memo: PUT of a reference copies the slot.
        let mut p = b"(".to_vec();
        p.extend(b"N".repeat(100_000));
        p.extend(b"lq\x00");
        p.extend(b"h\x00q\x010".repeat(100_000));
        p.push(b'.');
        assert!(matches!(refused(&p), Refusal::Limit(_)));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut p = Vec::new();
        p.extend(b"]".repeat(100));
        p.extend(b"a".repeat(99));
        p.push(b'.');
        let e = refused(&p);
        assert!(
            matches!(&e, Refusal::Limit(m) if m.contains("deeper")),
            "{e}"
        );
        // Through references: each level a memoized list holding the last.
        let mut p = b"]q\x00".to_vec();
        for k in 1..=100u8 {
            p.extend([b']', b'h', k - 1, b'a', b'q', k]);
        }
        p.push(b'.');
        let e = refused(&p);
        assert!(
            matches!(&e, Refusal::Limit(m) if m.contains("deeper")),
            "{e}"
        );
    }

    #[test]
    fn too_many_objects_are_refused_while_scanning() {
        let mut p = b"(".to_vec();
        p.extend(b"N".repeat(300_000));
        p.extend(b"l.");
        let roomy = Limits {
            max_expanded: u64::MAX,
            ..Limits::default()
        };
        let e = check(&p, &Budget::new(roomy)).unwrap_err();
        assert!(
            matches!(&e, Refusal::Limit(m) if m.contains("objects")),
            "{e}"
        );
    }

    /// What serde-pickle holds while reading, even if the value is small:
    /// a 128-value stack per MARK, a value per reference left on the stack.
    #[test]
    fn what_the_stack_holds_is_paid_for() {
        let mut marks = b"N".to_vec();
        marks.extend(b"(".repeat(1 << 20));
        marks.push(b'.');
        assert!(!serde_ok(b"N(((."));
        let e = refused(&marks);
        assert!(matches!(e, Refusal::Limit(_)), "{e}");
        // Marks that are closed at once build lists that keep the stack.
        let lists = b"(Nl".repeat(100_000);
        assert!(matches!(refused(&lists), Refusal::Limit(_)));
        // References piled on the stack under a small top.
        let mut refs = b"Nq\x00".to_vec();
        refs.extend(b"h\x00".repeat(1 << 20));
        refs.push(b'.');
        assert!(matches!(refused(&refs), Refusal::Limit(_)));
    }

    #[test]
    fn a_self_reference_is_refused() {
        let p = b"]\x94h\x00a.";
        let e = refused(p);
        assert!(e.to_string().contains("itself"), "{e}");
        assert!(!serde_ok(p));
    }

    #[test]
    fn floats_as_keys_or_members_are_refused() {
        for p in [
            &b"(G\x3f\xf0\x00\x00\x00\x00\x00\x00K\x01\x91."[..],
            b"}G\x3f\xf0\x00\x00\x00\x00\x00\x00K\x01s.",
            b"}(F1.5\n\x85K\x01u.",
            // Through a reference.
            b"G\x3f\xf0\x00\x00\x00\x00\x00\x00q\x000}h\x00K\x01s.",
        ] {
            let e = refused(p);
            assert!(e.to_string().contains("float"), "{p:?}: {e}");
        }
        // As a value it is fine.
        assert!(check(b"}K\x01G\x3f\xf0\x00\x00\x00\x00\x00\x00s.", &fresh()).is_ok());
    }

    #[test]
    fn items_added_to_the_wrong_container_are_refused() {
        for p in [&b"}Na."[..], b"]NNs.", b"(N}u.", b")Na."] {
            assert!(check(p, &fresh()).is_err(), "{p:?}");
            assert!(!serde_ok(p), "{p:?}");
        }
    }

    #[test]
    fn truncated_and_unknown_input_is_refused() {
        for p in [
            &b""[..],
            b"X\xff\xff\xff\x7f",
            b"\x82\x01.",
            b"h\x05.",
            b"(t",
            b"a.",
            b"N.N",
        ] {
            assert!(
                matches!(check(p, &fresh()), Err(Refusal::Malformed(_))),
                "{p:?}"
            );
            assert!(!serde_ok(p), "{p:?}");
        }
    }

    /// Every integer form: 32 bytes pass, 33 are refused.
    #[test]
    fn integers_longer_than_32_bytes_are_refused_in_every_form() {
        fn digits(n: usize) -> String {
            "7".repeat(n)
        }
        type Form = (&'static str, Box<dyn Fn(usize) -> Vec<u8>>);
        let forms: [Form; 4] = [
            (
                "INT",
                Box::new(|n| format!("I{}\n.", digits(n)).into_bytes()),
            ),
            (
                "LONG",
                Box::new(|n| format!("L{}L\n.", digits(n)).into_bytes()),
            ),
            (
                "LONG1",
                Box::new(|n| {
                    let mut p = vec![b'\x8a', n as u8];
                    p.extend(vec![1u8; n]);
                    p.push(b'.');
                    p
                }),
            ),
            (
                "LONG4",
                Box::new(|n| {
                    let mut p = vec![b'\x8b'];
                    p.extend((n as u32).to_le_bytes());
                    p.extend(vec![1u8; n]);
                    p.push(b'.');
                    p
                }),
            ),
        ];
        for (name, make) in &forms {
            let long = make(MAX_INT_BYTES + 1);
            let e = refused(&long);
            assert!(
                matches!(&e, Refusal::Limit(m) if m.contains("integer")),
                "{name}: {e}"
            );
            let huge = make(if *name == "LONG1" { 255 } else { 2_000_000 });
            assert!(matches!(refused(&huge), Refusal::Limit(_)), "{name}");
        }
        // 32 bytes pass where serde-pickle reads them (an INT of 32 digits
        // is no i64: serde-pickle fails on it, and so does the guard).
        for (name, make) in &forms[1..] {
            let p = make(MAX_INT_BYTES);
            assert!(check(&p, &fresh()).is_ok(), "{name}");
            assert!(serde_ok(&p), "{name}");
        }
        assert!(check(b"I-9223372036854775808\n.", &fresh()).is_ok());
        assert!(check(&forms[0].1(MAX_INT_BYTES), &fresh()).is_err());
        // A negative LONG4 length is malformed, as in serde-pickle.
        assert!(matches!(
            check(b"\x8b\xff\xff\xff\xff.", &fresh()),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn pop_on_an_empty_stack_drops_the_mark_as_serde_pickle_does() {
        // MARK, POP: the mark is gone, so LIST finds none.
        let p = b"N(0NNl.";
        assert!(!serde_ok(p));
        assert!(check(p, &fresh()).is_err());
        // MARK, POP, then the item below the mark is still there.
        let p = b"K\x05(0.";
        assert!(serde_ok(p));
        assert_eq!(ok(p).objects, 1);
        // MARK, item, POP pops the item, the mark stays for LIST.
        let p = b"(N0l.";
        assert!(serde_ok(p));
        assert_eq!(ok(p).objects, 1);
        // POP with neither item nor mark fails.
        assert!(!serde_ok(b"0N."));
        assert!(check(b"0N.", &fresh()).is_err());
    }

    #[test]
    fn pop_mark_and_mark_consumers_match_serde_pickle() {
        // POP_MARK drops what is above the mark, keeps what is below.
        let p = b"K\x01(NNN1.";
        assert!(serde_ok(p));
        assert_eq!(ok(p).objects, 1);
        // POP_MARK without a mark fails; so does STOP right after a mark.
        for p in [&b"N1."[..], b"N(."] {
            assert!(!serde_ok(p), "{p:?}");
            assert!(check(p, &fresh()).is_err(), "{p:?}");
        }
        // Nested marks: each consumer takes its own.
        let p = b"((NNl(Nte.";
        assert!(!serde_ok(p));
        assert!(check(p, &fresh()).is_err());
        let p = b"((NNl(Ntl.";
        assert!(serde_ok(p));
        assert_eq!(
            ok(p),
            Estimate {
                objects: 6,
                bytes: 3 * MARK_COST,
                depth: 3
            }
        );
        // A dict of an odd number of items drops the last key, as
        // serde-pickle's `extend_dict` does.
        let p = b"(K\x01K\x02K\x03d.";
        assert!(serde_ok(p));
        assert_eq!(ok(p).objects, 3);
        // A memo bomb hidden behind POP on a mark is still counted: the
        // bomb is built, referenced, and survives the mark juggling.
        let mut p = b"(".to_vec();
        p.extend(b"N".repeat(1000));
        p.extend(b"lq\x00(0(");
        p.extend(b"h\x00".repeat(1000));
        p.extend(b"l.");
        assert!(matches!(refused(&p), Refusal::Limit(_)));
    }

    #[test]
    fn the_budget_spans_every_reply_of_a_probe() {
        // One reply of 100 000 None passes on its own...
        let mut p = b"(".to_vec();
        p.extend(b"N".repeat(100_000));
        p.extend(b"l.");
        let budget = fresh();
        assert!(check(&p, &fresh()).is_ok());
        // ...but a probe is refused at the reply that passes its budget.
        let mut passed = 0;
        let e = loop {
            match check(&p, &budget) {
                Ok(_) => passed += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(e, Refusal::Limit(_)), "{e}");
        assert!((1..5).contains(&passed), "{passed}");
        assert!(budget.used_nodes() <= budget.limits().max_nodes);
        // A clone shares the spending.
        let twin = budget.clone();
        assert!(check(&p, &twin).is_err());
    }

    #[test]
    fn globals_follow_serde_pickle() {
        // builtins.set(list) becomes a set; other globals keep their args.
        let set = b"\x8c\x08builtins\x8c\x03set\x93(K\x01K\x02l\x85R.";
        assert!(serde_ok(set));
        assert_eq!(ok(set).objects, 3);
        let other = b"\x8c\x01m\x8c\x01C\x93\x8c\x01x\x85R.";
        assert!(serde_ok(other));
        assert_eq!(ok(other).objects, 2);
        // A global never called, and REDUCE on no tuple, fail in both.
        for p in [
            &b"\x8c\x01m\x8c\x01C\x93."[..],
            b"\x8c\x01m\x8c\x01C\x93NR.",
        ] {
            assert!(!serde_ok(p), "{p:?}");
            assert!(check(p, &fresh()).is_err(), "{p:?}");
        }
    }
}
