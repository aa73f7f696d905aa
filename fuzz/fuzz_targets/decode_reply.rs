//! One reply frame: the guard, the decoder and every parser the probe uses
//! must return, never panic, hang or allocate without bound.
#![no_main]

use fail2ban_healthd::fail2ban::codec::{self, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    if let Ok(Reply::Ok(value)) = codec::decode_reply(frame) {
        let _ = codec::parse_version(&value);
        let _ = codec::parse_jail_list(&value);
        let _ = codec::parse_stats(&value);
        let _ = codec::parse_jail_status("alpha", &value);
        // Errors and values are printed in logs: formatting must be bounded too.
        let _ = format!("{value:?}").len();
    }
});
