//! The StatusNotifierItem and its dbusmenu, through ksni: it shows the
//! latest [`View`] and hands clicks to the owner loop as [`UiEvent`]s.

use tokio::sync::mpsc::UnboundedSender;

use crate::icon;
use crate::model::{Action, Colour, Entry, View};

/// The item's `Id`: stable, so that hosts remember the user's choices.
pub const ID: &str = "fail2ban-healthd-tray";

/// What the user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiEvent {
    /// A menu item was clicked.
    Clicked(Action),
    /// The menu is about to show: refresh what it says.
    MenuOpening,
}

/// The item ksni serves.
pub struct Item {
    view: View,
    pixmaps: Vec<ksni::Icon>,
    events: UnboundedSender<UiEvent>,
}

impl Item {
    /// An item showing `view`, sending clicks to `events`.
    pub fn new(view: View, events: UnboundedSender<UiEvent>) -> Self {
        let pixmaps = pixmaps(view.colour);
        Item {
            view,
            pixmaps,
            events,
        }
    }

    /// Shows `view` from now on.
    pub fn show(&mut self, view: View) {
        if view.colour != self.view.colour {
            self.pixmaps = pixmaps(view.colour);
        }
        self.view = view;
    }
}

fn pixmaps(colour: Colour) -> Vec<ksni::Icon> {
    icon::all(colour)
        .into_iter()
        .map(|p| ksni::Icon {
            width: i32::try_from(p.size).unwrap_or(i32::MAX),
            height: i32::try_from(p.size).unwrap_or(i32::MAX),
            data: p.argb,
        })
        .collect()
}

/// A label as dbusmenu shows it: `_` marks an access key, `__` is one
/// underscore.
pub fn label(s: &str) -> String {
    s.replace('_', "__")
}

impl ksni::Tray for Item {
    // A left click opens the menu too (Plasma's `ItemIsMenu`).
    const MENU_ON_ACTIVATE: bool = true;

    fn id(&self) -> String {
        ID.into()
    }

    fn title(&self) -> String {
        self.view.title.clone()
    }

    fn category(&self) -> ksni::Category {
        ksni::Category::SystemServices
    }

    fn status(&self) -> ksni::Status {
        if self.view.attention {
            ksni::Status::NeedsAttention
        } else {
            ksni::Status::Active
        }
    }

    fn icon_name(&self) -> String {
        icon::theme_name(self.view.colour)
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        self.pixmaps.clone()
    }

    fn attention_icon_pixmap(&self) -> Vec<ksni::Icon> {
        self.pixmaps.clone()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            icon_name: icon::theme_name(self.view.colour),
            icon_pixmap: Vec::new(),
            title: self.view.title.clone(),
            description: crate::notify::escape(&self.view.lines.join("\n")),
        }
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        self.view
            .menu
            .iter()
            .map(|entry| match entry {
                Entry::Separator => ksni::MenuItem::Separator,
                Entry::Text(text) => ksni::menu::StandardItem {
                    label: label(text),
                    enabled: false,
                    ..Default::default()
                }
                .into(),
                Entry::Item {
                    label: text,
                    action,
                    enabled,
                } => {
                    let action = *action;
                    ksni::menu::StandardItem {
                        label: label(text),
                        enabled: *enabled,
                        icon_name: match action {
                            Action::Rollback | Action::Abort => "edit-undo".into(),
                            Action::Quit => "application-exit".into(),
                            _ => String::new(),
                        },
                        activate: Box::new(move |item: &mut Item| {
                            let _ = item.events.send(UiEvent::Clicked(action));
                        }),
                        ..Default::default()
                    }
                    .into()
                }
            })
            .collect()
    }

    fn menu_about_to_show(&mut self) {
        let _ = self.events.send(UiEvent::MenuOpening);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscores_in_jail_names_stay_visible() {
        assert_eq!(label("Roll back my_jail"), "Roll back my__jail");
    }
}
