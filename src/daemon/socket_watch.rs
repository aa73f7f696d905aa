//! Notices fail2ban's socket (re)appearing, with inotify, so that a
//! restarted fail2ban is seen online at once rather than at the next
//! interval.
//!
//! Watches the socket's directory; while that directory is missing (systemd
//! removes `/run/fail2ban` when fail2ban stops), watches the nearest
//! existing ancestor and follows the path down as it is created. It wakes
//! only on file events: no polling.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask};

/// A watch on the path of fail2ban's socket.
pub struct SocketWatch {
    socket: PathBuf,
    stream: Option<EventStream<Vec<u8>>>,
    /// The directory watched now and its watch.
    current: Option<(PathBuf, WatchDescriptor)>,
}

impl SocketWatch {
    /// Starts watching for `socket` if `enabled`. Disabled or without
    /// inotify it never fires, and the interval alone notices a return.
    pub fn new(socket: &Path, enabled: bool) -> Self {
        let stream = if enabled {
            Inotify::init()
                .and_then(|i| i.into_event_stream(vec![0u8; 4096]))
                .map_err(|e| tracing::warn!(error = %e, "socket_watch_unavailable"))
                .ok()
        } else {
            None
        };
        let mut watch = Self {
            socket: socket.to_owned(),
            stream,
            current: None,
        };
        watch.arm();
        watch
    }

    /// Watches the deepest existing directory on the socket's path.
    fn arm(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut watches = stream.watches();
        if let Some((_, wd)) = self.current.take() {
            let _ = watches.remove(wd);
        }
        let mut dir = self.socket.parent();
        while let Some(d) = dir {
            let mask = WatchMask::CREATE
                | WatchMask::MOVED_TO
                | WatchMask::DELETE_SELF
                | WatchMask::MOVE_SELF;
            if let Ok(wd) = watches.add(d, mask) {
                tracing::debug!(dir = %d.display(), "socket_watch_armed");
                self.current = Some((d.to_owned(), wd));
                return;
            }
            dir = d.parent();
        }
    }

    /// The name, inside the watched directory, that leads to the socket.
    fn next_component(&self) -> Option<OsString> {
        let (dir, _) = self.current.as_ref()?;
        let rest = self.socket.strip_prefix(dir).ok()?;
        rest.components().next().map(|c| c.as_os_str().to_owned())
    }

    /// Waits until the socket file appears (it may already exist when this
    /// returns after its directory appeared).
    pub async fn appeared(&mut self) {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return std::future::pending().await;
            };
            let event = match stream.next().await {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "socket_watch_failed");
                    self.stream = None;
                    continue;
                }
                None => {
                    self.stream = None;
                    continue;
                }
            };
            // Events of a watch replaced since (including the IGNORED that
            // removing it produces) say nothing about the path now.
            if self.current.as_ref().map(|(_, wd)| wd) != Some(&event.wd) {
                continue;
            }
            if event
                .mask
                .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED)
            {
                // The watched directory went away: watch higher up.
                self.arm();
                if self.socket.exists() {
                    return;
                }
                continue;
            }
            let Some(name) = event.name else { continue };
            if Some(name) != self.next_component() {
                continue;
            }
            let watching_socket_dir =
                self.current.as_ref().map(|(d, _)| d.as_path()) == self.socket.parent();
            if watching_socket_dir {
                return;
            }
            // A directory on the way was created: follow it down.
            self.arm();
            if self.socket.exists() {
                return;
            }
        }
    }
}
