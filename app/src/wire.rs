//! Types that cross the wire between the browser and the server functions.

use concord_domain::{Label, Role, TaskKind};
use serde::{Deserialize, Serialize};

/// The signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: u64,
    pub name: String,
    pub is_admin: bool,
}

/// A project with the caller's view of its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectView {
    pub id: u64,
    pub name: String,
    pub task: TaskKind,
    pub labels: Vec<Label>,
    /// The guidelines rendered from Markdown on the server, raw HTML removed.
    pub guidelines_html: String,
    pub has_guidelines: bool,
    pub role: Role,
    pub overlap: u32,
    pub total: u64,
    pub done: u64,
    pub mine: u64,
}

impl ProjectView {
    /// Share of items done, 0–100.
    pub fn percent_done(&self) -> u64 {
        (self.done * 100).checked_div(self.total).unwrap_or(0)
    }
}

/// An item on the annotation page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemView {
    pub id: String,
    pub text: String,
    /// The caller's earlier answer, when revisiting.
    pub mine: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub name: String,
    pub role: Role,
    pub done: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub name: String,
    pub is_admin: bool,
}

/// Result of a submit, with the caller's fresh progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitView {
    pub outcome: String,
    pub mine: u64,
    pub done: u64,
    pub total: u64,
}

/// Parses the label lines of the new-project form: `name`, or `name: description`.
pub fn parse_label_lines(text: &str) -> Vec<Label> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (name, description) = match line.split_once(':') {
                Some((n, d)) => (
                    n.trim(),
                    Some(d.trim().to_string()).filter(|d| !d.is_empty()),
                ),
                None => (line, None),
            };
            Label {
                name: name.to_string(),
                description,
                colour: String::new(),
                hotkey: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_lines_take_optional_descriptions() {
        let labels = parse_label_lines("spam: unwanted mail\n\n ham \n");
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[0].name, "spam");
        assert_eq!(labels[0].description.as_deref(), Some("unwanted mail"));
        assert_eq!(labels[1].name, "ham");
        assert_eq!(labels[1].description, None);
    }
}
