//! The guard against serde-pickle itself: whenever the guard accepts a
//! pickle, what serde-pickle actually builds from it (objects, payload
//! bytes, nesting) must not exceed the guard's estimate, and serde-pickle
//! must not panic. The limits are small so that both accepting and
//! refusing are exercised.
#![no_main]

use fail2ban_healthd::fail2ban::pickle_guard::{self, Budget, Limits};
use libfuzzer_sys::fuzz_target;
use serde_pickle::{DeOptions, HashableValue, Value};

const LIMITS: Limits = Limits {
    max_nodes: 4096,
    max_expanded: 256 * 1024,
    max_depth: 16,
};

/// Objects, payload bytes and depth of a decoded value.
fn size(v: &Value) -> (u64, u64, u32) {
    match v {
        Value::None | Value::Bool(_) | Value::I64(_) | Value::F64(_) => (1, 0, 1),
        Value::Int(i) => (1, i.bits().div_ceil(8), 1),
        Value::Bytes(b) => (1, b.len() as u64, 1),
        Value::String(s) => (1, s.len() as u64, 1),
        Value::List(items) | Value::Tuple(items) => sum(items.iter().map(size)),
        Value::Set(items) | Value::FrozenSet(items) => sum(items.iter().map(hsize)),
        Value::Dict(map) => sum(map.iter().flat_map(|(k, v)| [hsize(k), size(v)])),
    }
}

fn hsize(v: &HashableValue) -> (u64, u64, u32) {
    match v {
        HashableValue::None
        | HashableValue::Bool(_)
        | HashableValue::I64(_)
        | HashableValue::F64(_) => (1, 0, 1),
        HashableValue::Int(i) => (1, i.bits().div_ceil(8), 1),
        HashableValue::Bytes(b) => (1, b.len() as u64, 1),
        HashableValue::String(s) => (1, s.len() as u64, 1),
        HashableValue::Tuple(items) => sum(items.iter().map(hsize)),
        HashableValue::FrozenSet(items) => sum(items.iter().map(hsize)),
    }
}

fn sum(parts: impl Iterator<Item = (u64, u64, u32)>) -> (u64, u64, u32) {
    parts.fold((1, 0, 1), |(o, b, d), (po, pb, pd)| (o + po, b + pb, d.max(pd + 1)))
}

fuzz_target!(|pickle: &[u8]| {
    let budget = Budget::new(LIMITS);
    let Ok(estimate) = pickle_guard::check(pickle, &budget) else {
        return;
    };
    assert!(budget.used_nodes() <= LIMITS.max_nodes);
    assert!(budget.used_cost() <= LIMITS.max_expanded);
    let decoded = std::panic::catch_unwind(|| {
        serde_pickle::value_from_slice(pickle, DeOptions::new().keep_restore_state())
    });
    let Ok(decoded) = decoded else {
        panic!("serde-pickle panicked on a pickle the guard accepted: {estimate:?}");
    };
    if let Ok(value) = decoded {
        let (objects, bytes, depth) = size(&value);
        assert!(
            objects <= estimate.objects && bytes <= estimate.bytes && depth <= estimate.depth,
            "decoded {objects} objects, {bytes} bytes, depth {depth}; estimated {estimate:?}"
        );
    }
});
