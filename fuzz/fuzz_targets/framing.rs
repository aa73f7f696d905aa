//! A whole byte stream, cut into chunks at places the input chooses, fed to
//! the frame buffer: every frame it yields is decoded; the buffer never
//! holds more than its cap.
#![no_main]

use fail2ban_healthd::fail2ban::codec::{self, FrameBuffer};
use libfuzzer_sys::fuzz_target;

const CAP: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    // The first bytes choose the chunk sizes; the rest is the stream.
    if data.len() < 4 {
        return;
    }
    let (sizes, stream) = data.split_at(4);
    let mut frames = FrameBuffer::new(CAP);
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (usize::from(sizes[i % 4]) + 1).min(rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if frames.push(chunk).is_err() {
            // Over the cap: the buffer is emptied and the stream refused.
            assert_eq!(frames.pending(), 0);
            return;
        }
        assert!(frames.pending() <= CAP);
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    let _ = codec::decode_reply(&frame);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
