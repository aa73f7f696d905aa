//! A first pass over a reply's pickle that bounds what decoding it would
//! build, before any value is built.
//!
//! A pickle can describe far more than its own size: a memo reference
//! (`GET`, `DUP`) is a few bytes, yet the decoder copies the whole object
//! it names, and objects made of references to objects made of references
//! grow exponentially ("billion laughs"). Deep nesting makes recursive
//! code (decoding, printing, dropping) overflow the stack. This pass runs
//! the pickle machine on sizes only: every object is a node in an arena
//! (shared, as the memo shares them, so later changes to a list are seen
//! through every reference), then the expanded size and depth of the
//! result are computed without recursion. A reply over the limits is
//! refused; nothing it describes is ever built.

use std::collections::HashMap;

/// What a reply may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Objects the pickle may create (before any copying).
    pub max_nodes: usize,
    /// Bytes the decoded value may take, counting each object as
    /// [`NODE_COST`] plus its string or bytes payload, references expanded.
    pub max_expanded: u64,
    /// Containers nested in containers, at most.
    pub max_depth: u32,
}

/// The cost of one decoded object, about the size of a decoded value.
pub const NODE_COST: u64 = 48;

impl Default for Limits {
    /// Far above any fail2ban reply (a `status` of 1 000 jails is about
    /// 10 000 objects, nested 4 deep), far below what hurts.
    fn default() -> Self {
        Self {
            max_nodes: 1 << 20,
            max_expanded: 64 << 20,
            max_depth: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Dict,
    Set,
    Float,
    Other,
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    /// `NODE_COST` plus payload bytes.
    own: u64,
    children: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Node(u32),
    Mark,
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    limits: Limits,
    nodes: Vec<Node>,
    stack: Vec<Item>,
    marks: Vec<usize>,
    memo: HashMap<u64, u32>,
}

/// Why a pickle is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It is not a pickle this decoder reads.
    #[error("{0}")]
    Malformed(String),
    /// It breaks one of the [`Limits`].
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

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Check<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.input.len())
            .ok_or("the pickle ends inside an argument")?;
        let s = &self.input[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Check<u64> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    fn line(&mut self) -> Check<usize> {
        let rest = &self.input[self.pos..];
        let n = memchr::memchr(b'\n', rest).ok_or("an unterminated line argument")?;
        self.pos += n + 1;
        Ok(n)
    }

    fn new_node(&mut self, payload: u64, children: Vec<u32>) -> Check<u32> {
        self.new_kind(Kind::Other, payload, children)
    }

    fn new_kind(&mut self, kind: Kind, payload: u64, children: Vec<u32>) -> Check<u32> {
        if self.nodes.len() >= self.limits.max_nodes {
            return Err(Refusal::Limit(format!(
                "the reply describes more than {} objects",
                self.limits.max_nodes
            )));
        }
        self.nodes.push(Node {
            kind,
            own: NODE_COST.saturating_add(payload),
            children,
        });
        u32::try_from(self.nodes.len() - 1).map_err(|_| "too many objects".into())
    }

    fn push_new(&mut self, payload: u64) -> Check<()> {
        self.push_kind(Kind::Other, payload)
    }

    fn push_kind(&mut self, kind: Kind, payload: u64) -> Check<()> {
        let n = self.new_kind(kind, payload, Vec::new())?;
        self.stack.push(Item::Node(n));
        Ok(())
    }

    fn pop(&mut self) -> Check<u32> {
        match self.stack.pop() {
            Some(Item::Node(n)) => Ok(n),
            Some(Item::Mark) => Err("a mark where an object was expected".into()),
            None => Err("the pickle pops an empty stack".into()),
        }
    }

    fn top(&self) -> Check<u32> {
        match self.stack.last() {
            Some(Item::Node(n)) => Ok(*n),
            _ => Err("no object on the stack".into()),
        }
    }

    /// The objects above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Check<Vec<u32>> {
        let at = self.marks.pop().ok_or("no mark on the stack")?;
        if at > self.stack.len() {
            return Err("a mark below the stack".into());
        }
        let items = self.stack.split_off(at);
        if self.stack.pop().is_none() {
            return Err("a lost mark".into());
        }
        items
            .into_iter()
            .map(|i| match i {
                Item::Node(n) => Ok(n),
                Item::Mark => Err(Refusal::from("a mark inside a mark")),
            })
            .collect()
    }

    fn build(&mut self, children: Vec<u32>) -> Check<()> {
        self.build_kind(Kind::Other, children)
    }

    fn build_kind(&mut self, kind: Kind, children: Vec<u32>) -> Check<()> {
        if kind == Kind::Dict && children.len() % 2 != 0 {
            return Err("a dict with a key and no value".into());
        }
        let n = self.new_kind(kind, 0, children)?;
        self.stack.push(Item::Node(n));
        Ok(())
    }

    /// Adds to the container on top of the stack, which must be a `kind`.
    fn extend_top(&mut self, kind: Kind, children: Vec<u32>) -> Check<()> {
        let target = self.top()?;
        let node = &mut self.nodes[target as usize];
        if node.kind != kind {
            return Err(format!("adding {kind:?} items to a {:?}", node.kind).into());
        }
        if kind == Kind::Dict && children.len() % 2 != 0 {
            return Err("a dict with a key and no value".into());
        }
        node.children.extend(children);
        Ok(())
    }

    fn memo_get(&mut self, id: u64) -> Check<()> {
        let n = *self.memo.get(&id).ok_or("a memo reference to nothing")?;
        self.stack.push(Item::Node(n));
        Ok(())
    }

    fn memo_put(&mut self, id: u64) -> Check<()> {
        let n = self.top()?;
        self.memo.insert(id, n);
        Ok(())
    }

    /// Runs the machine to `STOP`; the result's node.
    fn run(&mut self) -> Check<u32> {
        loop {
            let op = *self.take(1)?.first().ok_or("empty")?;
            match op {
                b'\x80' => {
                    self.take(1)?;
                }
                b'\x95' => {
                    self.take(8)?;
                }
                b'.' => return self.pop(),
                b'(' => {
                    self.marks.push(self.stack.len() + 1);
                    self.stack.push(Item::Mark);
                }
                b'0' => {
                    self.stack.pop().ok_or("POP on an empty stack")?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let n = self.top()?;
                    self.stack.push(Item::Node(n));
                }
                b'p' => {
                    let n = self.line()?;
                    let id = parse_decimal(&self.input[self.pos - n - 1..self.pos - 1])?;
                    self.memo_put(id)?;
                }
                b'q' => {
                    let id = self.uint(1)?;
                    self.memo_put(id)?;
                }
                b'r' => {
                    let id = self.uint(4)?;
                    self.memo_put(id)?;
                }
                b'\x94' => {
                    let id = self.memo.len() as u64;
                    self.memo_put(id)?;
                }
                b'g' => {
                    let n = self.line()?;
                    let id = parse_decimal(&self.input[self.pos - n - 1..self.pos - 1])?;
                    self.memo_get(id)?;
                }
                b'h' => {
                    let id = self.uint(1)?;
                    self.memo_get(id)?;
                }
                b'j' => {
                    let id = self.uint(4)?;
                    self.memo_get(id)?;
                }
                b'F' => {
                    let n = self.line()?;
                    self.push_kind(Kind::Float, n as u64)?;
                }
                // Scalars with a line argument.
                b'I' | b'L' | b'S' | b'V' => {
                    let n = self.line()?;
                    self.push_new(n as u64)?;
                }
                b'N' | b'\x88' | b'\x89' => self.push_new(0)?,
                b'K' => {
                    self.take(1)?;
                    self.push_new(0)?;
                }
                b'M' => {
                    self.take(2)?;
                    self.push_new(0)?;
                }
                b'J' => {
                    self.take(4)?;
                    self.push_new(0)?;
                }
                b'G' => {
                    self.take(8)?;
                    self.push_kind(Kind::Float, 0)?;
                }
                // Counted payloads: 1-, 4- or 8-byte length.
                b'\x8a' | b'C' | b'U' | b'\x8c' => {
                    let n = self.uint(1)?;
                    self.take(n as usize)?;
                    self.push_new(n)?;
                }
                b'\x8b' | b'B' | b'T' | b'X' => {
                    let n = self.uint(4)?;
                    self.take(usize::try_from(n).map_err(|_| "length")?)?;
                    self.push_new(n)?;
                }
                b'\x8e' | b'\x8d' | b'\x96' => {
                    let n = self.uint(8)?;
                    self.take(usize::try_from(n).map_err(|_| "length")?)?;
                    self.push_new(n)?;
                }
                b']' => self.push_kind(Kind::List, 0)?,
                b'}' => self.push_kind(Kind::Dict, 0)?,
                b'\x8f' => self.push_kind(Kind::Set, 0)?,
                b')' => self.push_new(0)?,
                b'\x85' => {
                    let a = self.pop()?;
                    self.build(vec![a])?;
                }
                b'\x86' => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.build(vec![a, b])?;
                }
                b'\x87' => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.build(vec![a, b, c])?;
                }
                b't' | b'l' | b'd' | b'\x91' => {
                    let items = self.pop_mark()?;
                    let kind = match op {
                        b'l' => Kind::List,
                        b'd' => Kind::Dict,
                        b'\x91' => Kind::Set,
                        _ => Kind::Other,
                    };
                    self.build_kind(kind, items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top(Kind::List, vec![v])?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_top(Kind::Dict, vec![k, v])?;
                }
                b'e' | b'u' | b'\x90' => {
                    let items = self.pop_mark()?;
                    let kind = match op {
                        b'e' => Kind::List,
                        b'u' => Kind::Dict,
                        _ => Kind::Set,
                    };
                    self.extend_top(kind, items)?;
                }
                b'c' => {
                    let a = self.line()?;
                    let b = self.line()?;
                    self.push_new((a + b) as u64)?;
                }
                b'\x93' => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    self.build(vec![module, name])?;
                }
                // Callable and arguments, or class and state: one object.
                b'R' | b'\x81' | b'b' => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.build(vec![a, b])?;
                }
                b'\x92' => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.build(vec![a, b, c])?;
                }
                b'i' => {
                    let a = self.line()?;
                    let b = self.line()?;
                    let mut items = self.pop_mark()?;
                    let n = self.new_node((a + b) as u64, Vec::new())?;
                    items.push(n);
                    self.build(items)?;
                }
                b'o' => {
                    let items = self.pop_mark()?;
                    self.build(items)?;
                }
                other => return Err(format!("unsupported pickle opcode 0x{other:02x}").into()),
            }
        }
    }

    /// The expanded size and the depth of `root`, references expanded,
    /// without recursion; a cycle is refused.
    fn measure(&self, root: u32) -> Check<(u64, u32)> {
        const NEW: u8 = 0;
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![NEW; self.nodes.len()];
        let mut size = vec![0u64; self.nodes.len()];
        let mut depth = vec![0u32; self.nodes.len()];
        let mut float = vec![false; self.nodes.len()];
        // (node, next child to visit)
        let mut walk: Vec<(u32, usize)> = vec![(root, 0)];
        state[root as usize] = OPEN;
        while let Some(&mut (n, ref mut next)) = walk.last_mut() {
            let node = &self.nodes[n as usize];
            if let Some(&child) = node.children.get(*next) {
                *next += 1;
                match state[child as usize] {
                    OPEN => return Err("the reply refers to itself".into()),
                    NEW => {
                        state[child as usize] = OPEN;
                        walk.push((child, 0));
                    }
                    _ => {}
                }
                continue;
            }
            let mut total = node.own;
            let mut deepest = 0;
            let mut has_float = node.kind == Kind::Float;
            for (i, &c) in node.children.iter().enumerate() {
                total = total.saturating_add(size[c as usize]);
                deepest = deepest.max(depth[c as usize]);
                has_float |= float[c as usize];
                // serde-pickle sorts set members and dict keys, and its
                // order over floats is not total: its sort would panic.
                let is_key = match node.kind {
                    Kind::Set => true,
                    Kind::Dict => i % 2 == 0,
                    _ => false,
                };
                if is_key && float[c as usize] {
                    return Err("a float in a set member or a dict key".into());
                }
            }
            float[n as usize] = has_float;
            let d = deepest + 1;
            if total > self.limits.max_expanded {
                return Err(Refusal::Limit(format!(
                    "the reply would expand past {} bytes",
                    self.limits.max_expanded
                )));
            }
            if d > self.limits.max_depth {
                return Err(Refusal::Limit(format!(
                    "the reply nests deeper than {} levels",
                    self.limits.max_depth
                )));
            }
            size[n as usize] = total;
            depth[n as usize] = d;
            state[n as usize] = DONE;
            walk.pop();
        }
        Ok((size[root as usize], depth[root as usize]))
    }
}

fn parse_decimal(b: &[u8]) -> Check<u64> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| "a memo index that is not a number".into())
}

/// Checks that decoding `pickle` stays within `limits`; returns the
/// expanded size and depth of the value it describes.
///
/// # Errors
/// A message saying which limit the pickle breaks, or why it is no pickle.
pub fn check(pickle: &[u8], limits: Limits) -> Result<(u64, u32), Refusal> {
    let mut m = Machine {
        input: pickle,
        pos: 0,
        limits,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.run()?;
    m.measure(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &[u8]) -> (u64, u32) {
        check(p, Limits::default()).unwrap()
    }

    #[test]
    fn a_plain_reply_passes_with_its_size() {
        // (0, ["a"]) with protocol 4 framing.
        let (size, depth) = ok(b"\x80\x04K\x00]\x8c\x01a\x94a\x86\x94.");
        assert_eq!(size, 4 * NODE_COST + 1);
        assert_eq!(depth, 3);
    }

    #[test]
    fn references_count_every_copy() {
        // A list of 10 empty byte strings, then a list holding it 3 times.
        let mut p = b"\x80\x04(".to_vec();
        p.extend(b"C\x00".repeat(10));
        p.extend(b"l\x94");
        p.extend(b"]\x94(h\x00h\x00h\x00e.");
        let (size, _) = ok(&p);
        assert_eq!(size, NODE_COST + 3 * (11 * NODE_COST));
    }

    #[test]
    fn a_change_after_memoizing_is_seen_through_every_reference() {
        // An empty list memoized, referenced twice, then grown.
        let p = b"]\x94](h\x00h\x00eh\x00(NNNe0.";
        let small = check(b"]\x94](h\x00h\x00e.", Limits::default()).unwrap().0;
        let (size, _) = ok(p);
        assert_eq!(size, small + 2 * 3 * NODE_COST);
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
        let e = check(&p, Limits::default()).unwrap_err();
        assert!(
            matches!(&e, Refusal::Limit(m) if m.contains("expand")),
            "{e}"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut p = Vec::new();
        for _ in 0..100 {
            p.extend(b"]");
        }
        for _ in 0..99 {
            p.extend(b"a");
        }
        p.push(b'.');
        let e = check(&p, Limits::default()).unwrap_err();
        assert!(
            matches!(&e, Refusal::Limit(m) if m.contains("deeper")),
            "{e}"
        );
    }

    #[test]
    fn too_many_objects_are_refused_while_scanning() {
        let mut p = b"(".to_vec();
        p.extend(b"N".repeat((1 << 20) + 1));
        p.extend(b"l.");
        let e = check(&p, Limits::default()).unwrap_err();
        assert!(
            matches!(&e, Refusal::Limit(m) if m.contains("objects")),
            "{e}"
        );
    }

    #[test]
    fn a_self_reference_is_refused() {
        let e = check(b"]\x94h\x00a.", Limits::default()).unwrap_err();
        assert!(e.to_string().contains("itself"), "{e}");
    }

    #[test]
    fn floats_as_keys_or_members_are_refused() {
        for p in [
            &b"(G\x3f\xf0\x00\x00\x00\x00\x00\x00K\x01\x91."[..],
            b"}G\x3f\xf0\x00\x00\x00\x00\x00\x00K\x01s.",
            b"}(F1.5\n\x85K\x01u.",
        ] {
            let e = check(p, Limits::default()).unwrap_err();
            assert!(e.to_string().contains("float"), "{p:?}: {e}");
        }
        // As a value it is fine.
        assert!(
            check(
                b"}K\x01G\x3f\xf0\x00\x00\x00\x00\x00\x00s.",
                Limits::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn items_added_to_the_wrong_container_are_refused() {
        for p in [&b"}Na."[..], b"]NNs.", b"\x8f(Ne.", b"(N}u."] {
            assert!(check(p, Limits::default()).is_err(), "{p:?}");
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
        ] {
            assert!(
                matches!(check(p, Limits::default()), Err(Refusal::Malformed(_))),
                "{p:?}"
            );
        }
    }
}
