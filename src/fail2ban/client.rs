//! One connection to fail2ban's control socket, with deadlines.
//!
//! Owns the socket I/O: connect (retrying while the server's tiny listen
//! backlog is full), send a request, read its reply in chunks through a
//! capped [`FrameBuffer`], and classify every failure into one [`Error`].
//! Every operation ends by the connection's deadline, however slowly the
//! peer drips bytes. It knows nothing about what a probe asks.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_pickle::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::Instant;

use super::codec::{self, CodecError, FrameBuffer, Reply};
use super::pickle_guard::Budget;
use crate::health::OfflineReason;

/// Size of one read from the socket: small next to the 16 MiB cap, large
/// enough that a reply at the cap takes few reads.
const CHUNK: usize = 64 * 1024;

/// How long to wait before retrying a connect that found the backlog full.
const BACKLOG_RETRY: Duration = Duration::from_millis(2);

/// Everything that can go wrong while talking to fail2ban.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket file does not exist.
    #[error("socket {} does not exist", path.display())]
    SocketMissing {
        /// The socket's path.
        path: PathBuf,
    },
    /// The socket file exists but nothing accepts connections on it.
    #[error("connection to {} refused", path.display())]
    ConnectionRefused {
        /// The socket's path.
        path: PathBuf,
    },
    /// This process may not connect to the socket.
    #[error("permission denied connecting to {}", path.display())]
    PermissionDenied {
        /// The socket's path.
        path: PathBuf,
    },
    /// The deadline passed before the exchange finished.
    #[error("no complete answer within {} ms", budget.as_millis())]
    Timeout {
        /// The time that was allowed.
        budget: Duration,
    },
    /// fail2ban answered something that is not a valid reply.
    #[error("protocol error")]
    Protocol(#[source] CodecError),
    /// fail2ban answered `["SHUTDOWN"]`.
    #[error("fail2ban is shutting down")]
    ShuttingDown,
    /// The peer closed or reset the connection before the reply was complete.
    #[error("connection lost")]
    ConnectionLost(#[source] io::Error),
    /// fail2ban ran the command and raised an exception (reply code 1).
    #[error("fail2ban refused the command: {message}")]
    Server {
        /// The exception's message, for instance the unknown jail's name.
        message: String,
    },
    /// This process could not make the connection for want of its own
    /// resources (file descriptors, kernel buffers, memory): a failure of
    /// fail2ban-healthd, which says nothing about fail2ban.
    #[error(
        "fail2ban-healthd's own failure, not fail2ban's: this process could not open a connection to {}",
        path.display()
    )]
    Local {
        /// The socket's path.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Connecting failed for another reason.
    #[error("cannot connect to {}", path.display())]
    Connect {
        /// The socket's path.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Whether this is a failure of this process (out of file descriptors,
    /// kernel buffers or memory while creating or connecting its socket),
    /// not of fail2ban: it must not count as fail2ban being offline.
    pub fn is_local(&self) -> bool {
        matches!(self, Error::Local { .. })
    }

    /// The contract's `OfflineReason` for this failure. A local failure
    /// ([`Error::is_local`]) has none of its own; callers check that first.
    pub fn offline_reason(&self) -> OfflineReason {
        match self {
            Error::SocketMissing { .. } => OfflineReason::SocketMissing,
            Error::ConnectionRefused { .. } | Error::Connect { .. } | Error::Local { .. } => {
                OfflineReason::ConnectionRefused
            }
            Error::PermissionDenied { .. } => OfflineReason::PermissionDenied,
            Error::Timeout { .. } => OfflineReason::Timeout,
            // A code-1 reply where the probe expects success means fail2ban
            // does not behave as the protocol says: as unusable as garbage.
            Error::Protocol(_) | Error::Server { .. } => OfflineReason::ProtocolError,
            Error::ShuttingDown => OfflineReason::ShuttingDown,
            Error::ConnectionLost(_) => OfflineReason::ConnectionLost,
        }
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::ShuttingDown => Error::ShuttingDown,
            other => Error::Protocol(other),
        }
    }
}

/// An open connection to fail2ban.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    frames: FrameBuffer,
    chunk: Vec<u8>,
    deadline: Instant,
    budget: Duration,
    /// What the replies may still build, shared by a probe's connections.
    decode: Budget,
}

impl Connection {
    /// Connects to the socket at `path`; this and every later request must
    /// finish within `budget` from now. Replies over `max_reply` bytes are
    /// refused.
    ///
    /// # Errors
    /// [`Error::SocketMissing`], [`Error::ConnectionRefused`],
    /// [`Error::PermissionDenied`], [`Error::Timeout`] or [`Error::Connect`].
    pub async fn connect(path: &Path, budget: Duration, max_reply: usize) -> Result<Self, Error> {
        Self::connect_until(path, Instant::now() + budget, budget, max_reply).await
    }

    /// Like [`Connection::connect`], for a deadline that started earlier:
    /// `budget` is the whole time allowed, reported if it runs out.
    ///
    /// # Errors
    /// As [`Connection::connect`].
    pub async fn connect_until(
        path: &Path,
        deadline: Instant,
        budget: Duration,
        max_reply: usize,
    ) -> Result<Self, Error> {
        let stream = tokio::time::timeout_at(deadline, connect_retrying(path))
            .await
            .map_err(|_| Error::Timeout { budget })??;
        Ok(Self {
            stream,
            frames: FrameBuffer::new(max_reply),
            chunk: vec![0; CHUNK],
            deadline,
            budget,
            decode: Budget::default(),
        })
    }

    /// Sets a new deadline for a connection kept open across probes;
    /// `budget` is the whole time allowed, reported if it runs out.
    pub fn set_deadline(&mut self, deadline: Instant, budget: Duration) {
        self.deadline = deadline;
        self.budget = budget;
    }

    /// Sets what the replies from now on may build, all together (see
    /// [`Budget`]); a probe gives all its connections one budget. A new
    /// connection starts with a fresh default budget.
    pub fn set_decode_budget(&mut self, decode: Budget) {
        self.decode = decode;
    }

    /// Sends `args` and returns the value of a code-0 reply.
    ///
    /// # Errors
    /// [`Error::Server`] for a code-1 reply; [`Error::Timeout`],
    /// [`Error::ConnectionLost`], [`Error::Protocol`] or
    /// [`Error::ShuttingDown`] otherwise.
    pub async fn request(&mut self, args: &[&str]) -> Result<Value, Error> {
        match self.pipeline(&[args]).await?.pop() {
            Some(Reply::Ok(value)) => Ok(value),
            Some(Reply::Failed(message)) => Err(Error::Server { message }),
            None => Err(Error::Protocol(CodecError::UnexpectedShape(
                "no reply".into(),
            ))),
        }
    }

    /// Sends several requests in one write and reads their replies, in
    /// order. fail2ban answers the requests of one connection one after the
    /// other, so this saves a round trip (and a wake-up on each side) per
    /// request. A code-1 reply is a [`Reply::Failed`] in its place.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::ConnectionLost`], [`Error::Protocol`]
    /// or [`Error::ShuttingDown`]: the connection is then unusable.
    pub async fn pipeline(&mut self, requests: &[&[&str]]) -> Result<Vec<Reply>, Error> {
        let budget = self.budget;
        tokio::time::timeout_at(self.deadline, self.exchange(requests, false))
            .await
            .map_err(|_| Error::Timeout { budget })?
    }

    /// Like [`Connection::pipeline`], with the polite close in the same
    /// write: the last exchange of a connection costs no extra wake-up of
    /// the server.
    ///
    /// # Errors
    /// As [`Connection::pipeline`].
    pub async fn pipeline_then_close(mut self, requests: &[&[&str]]) -> Result<Vec<Reply>, Error> {
        let budget = self.budget;
        tokio::time::timeout_at(self.deadline, self.exchange(requests, true))
            .await
            .map_err(|_| Error::Timeout { budget })?
    }

    /// Waits, between exchanges, until the server closes or resets this
    /// connection, or sends something unasked (which fail2ban never does);
    /// either way the connection is then unusable.
    pub async fn wait_closed(&mut self) {
        let mut byte = [0u8; 1];
        loop {
            if self.stream.readable().await.is_err() {
                return;
            }
            match self.stream.try_read(&mut byte) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                _ => return,
            }
        }
    }

    /// Says goodbye the way fail2ban-client does and closes the connection.
    /// Failures are ignored: the server copes with an abrupt close too.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout_at(self.deadline, async {
            self.stream.write_all(codec::CLOSE_COMMAND).await
        })
        .await;
    }

    async fn exchange(&mut self, requests: &[&[&str]], close: bool) -> Result<Vec<Reply>, Error> {
        let mut out = Vec::new();
        for args in requests {
            out.extend_from_slice(&codec::encode_request(args));
        }
        if close {
            out.extend_from_slice(codec::CLOSE_COMMAND);
        }
        self.stream.write_all(&out).await.map_err(lost)?;
        let mut replies = Vec::with_capacity(requests.len());
        for _ in requests {
            // Each reply is decoded as it arrives (the frame buffer holds
            // at most one and a read), and the deadline is checked between
            // replies: decoding does not yield, so a server that sends
            // replies faster than they decode cannot stretch the probe.
            let frame = self.read_frame().await?;
            codec::admit(&frame, &self.decode)?;
            self.check_deadline()?;
            let reply = codec::decode_admitted(&frame);
            drop(frame);
            replies.push(reply?);
            self.check_deadline()?;
        }
        Ok(replies)
    }

    fn check_deadline(&self) -> Result<(), Error> {
        if Instant::now() >= self.deadline {
            return Err(Error::Timeout {
                budget: self.budget,
            });
        }
        Ok(())
    }

    async fn read_frame(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(frame) = self.frames.next_frame()? {
                return Ok(frame);
            }
            let n = self.stream.read(&mut self.chunk).await.map_err(lost)?;
            if n == 0 {
                let what = if self.frames.pending() == 0 {
                    "closed by fail2ban before replying"
                } else {
                    "closed by fail2ban in the middle of a reply"
                };
                return Err(Error::ConnectionLost(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    what,
                )));
            }
            self.frames.push(&self.chunk[..n])?;
        }
    }
}

fn lost(e: io::Error) -> Error {
    Error::ConnectionLost(e)
}

async fn connect_retrying(path: &Path) -> Result<UnixStream, Error> {
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            // fail2ban listens with a backlog of 1: a burst of clients finds
            // it full, which is a reason to wait, not a failure.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::sleep(BACKLOG_RETRY).await;
            }
            Err(e) => return Err(classify_connect(path, e)),
        }
    }
}

fn classify_connect(path: &Path, e: io::Error) -> Error {
    let path = path.to_owned();
    // This process's own shortages, from socket() or connect(): nothing
    // to do with fail2ban.
    if let Some(errno) = e.raw_os_error()
        && [
            nix::libc::EMFILE,
            nix::libc::ENFILE,
            nix::libc::ENOBUFS,
            nix::libc::ENOMEM,
        ]
        .contains(&errno)
    {
        return Error::Local { path, source: e };
    }
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Error::SocketMissing { path },
        io::ErrorKind::ConnectionRefused => Error::ConnectionRefused { path },
        io::ErrorKind::PermissionDenied => Error::PermissionDenied { path },
        _ => Error::Connect { path, source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_processs_own_shortages_are_local() {
        let path = Path::new("/run/fail2ban/fail2ban.sock");
        for errno in [
            nix::libc::EMFILE,
            nix::libc::ENFILE,
            nix::libc::ENOBUFS,
            nix::libc::ENOMEM,
        ] {
            let e = classify_connect(path, io::Error::from_raw_os_error(errno));
            assert!(e.is_local(), "{errno}: {e:?}");
            assert!(e.to_string().contains("own failure, not fail2ban's"), "{e}");
        }
        for errno in [
            nix::libc::ECONNREFUSED,
            nix::libc::ENOENT,
            nix::libc::EACCES,
        ] {
            let e = classify_connect(path, io::Error::from_raw_os_error(errno));
            assert!(!e.is_local(), "{errno}: {e:?}");
        }
    }
}
