//! `org.freedesktop.Notifications` as a zbus proxy: declarations only.

use std::collections::HashMap;

use zbus::Variant;

/// `org.freedesktop.Notifications`, as far as the applet uses it.
#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
pub trait Notifications {
    /// Shows a notification; returns its id.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Variant<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    /// What the server supports (`actions`, `body-markup`, ...).
    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;

    /// A button of a notification was clicked.
    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: &str) -> zbus::Result<()>;
}
