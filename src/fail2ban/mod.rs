//! Talking to fail2ban over its control socket.
//!
//! Layout:
//! - [`codec`]: pure framing, request encoding and reply decoding;
//! - [`pickle_guard`]: bounds what a reply's pickle would build, first;
//! - [`client`]: one connection with deadlines and a size cap, and the
//!   [`Error`] every caller branches on;
//! - [`probe`]: one health probe (version and per-jail counters);
//! - [`check`]: fail2ban's own checks of a jail as if it were enabled, in a
//!   private copy of its configuration.

pub mod check;
pub mod client;
pub mod codec;
pub mod pickle_guard;
pub mod probe;

pub use client::{Connection, Error};
pub use probe::{ProbeConfig, Prober, probe_once};
