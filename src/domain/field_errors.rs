//! Messages by field name: what a validation refused, field by field, in words. Services return
//! them inside their own errors; the edge shows them beside form fields or as `fields` in JSON.

use std::collections::BTreeMap;

/// Messages by field name, for validation errors and one-field conflicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        FieldErrors::default()
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_default().push(message.into());
    }

    /// Moves the messages of `from` under `to`: a page shows a cap's refusal (keyed by its
    /// variable in the API) beside the form field it concerns.
    pub fn rename(mut self, from: &str, to: &str) -> Self {
        if let Some(messages) = self.0.remove(from) {
            self.0.entry(to.to_owned()).or_default().extend(messages);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.0.get(field).map(Vec::as_slice)
    }

    /// The messages for `field` (empty when it has none); for templates.
    pub fn of(&self, field: &str) -> &[String] {
        self.get(field).unwrap_or(&[])
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// Everything, as `field: message` lines (for a summary at the top of a form).
    pub fn summary(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(field, messages)| {
                messages
                    .iter()
                    .map(move |message| format!("{}: {message}", field.replace('_', " ")))
            })
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0
            .iter()
            .map(|(field, messages)| (field.as_str(), messages.as_slice()))
    }

    /// `Ok(())` when nothing was added, else the messages.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}
