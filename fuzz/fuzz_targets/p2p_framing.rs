//! The p2p request-response framing (`atoll_p2p::framing::read_framed`): a
//! 4-byte big-endian length, refused over the node's limit, then that many
//! bytes, read from a stream that delivers them in chunks of a size the
//! first input byte picks (as a peer's TCP segments arrive). What it reads
//! is exactly what was announced, and writing it again gives the bytes
//! that were read.
#![no_main]

use atoll_fuzz_fixtures::{limits, split_local};
use atoll_p2p::framing::{read_framed, write_framed};
use futures::executor::block_on;
use futures::io::{AsyncRead, Cursor};
use libfuzzer_sys::fuzz_target;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Hands out at most `chunk` bytes per read, and says "not yet" before
/// every other read.
struct Trickle<'a> {
    bytes: &'a [u8],
    read: usize,
    chunk: usize,
    wait: bool,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.wait = !this.wait;
        if this.wait {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let left = &this.bytes[this.read..];
        let n = left.len().min(buf.len()).min(this.chunk);
        buf[..n].copy_from_slice(&left[..n]);
        this.read += n;
        Poll::Ready(Ok(n))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(([chunk], bytes)) = split_local::<1>(data) else {
        return;
    };
    let limit = limits::max_message_bytes();
    let mut stream = Trickle {
        bytes,
        read: 0,
        chunk: if chunk == 0 {
            usize::MAX
        } else {
            usize::from(chunk)
        },
        wait: false,
    };
    let announced = bytes
        .first_chunk::<4>()
        .map(|len| u32::from_be_bytes(*len) as usize);
    match block_on(read_framed(&mut stream, limit)) {
        Ok(message) => {
            let announced = announced.expect("a message was read, so its length was");
            assert!(announced <= limit, "a message over the limit was read");
            assert_eq!(message, bytes[4..4 + announced], "not the announced bytes");
            assert_eq!(stream.read, 4 + announced, "read past the message");
            let mut written = Cursor::new(Vec::new());
            block_on(write_framed(&mut written, message, limit))
                .expect("a message read is writable");
            assert_eq!(written.into_inner(), bytes[..4 + announced]);
        }
        Err(_) => assert!(
            announced.is_none_or(|len| len > limit || bytes.len() < 4 + len),
            "a whole message within the limit was refused"
        ),
    }
});
