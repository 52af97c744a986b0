//! Reading rows and elements out of rendered pages.

/// The `<tr>` of a configuration in a table, if it is there.
pub fn row_of(html: &str, id: uuid::Uuid) -> Option<&str> {
    row_with_id(html, &format!("configuration-{id}"))
}

/// The `<tr id="{id}">` of a table, if it is there.
pub fn row_with_id<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!(r#"<tr id="{id}""#))?;
    let end = html[start..].find("</tr>")?;
    Some(&html[start..start + end])
}

/// Whether an answer is a fragment for htmx to swap in, not a whole page.
pub fn is_fragment(html: &str) -> bool {
    !html.contains("<html") && !html.contains("<body")
}

/// The opening tag of the element with this `id`.
pub fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no element #{id} in {html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

/// Panics unless the field with this `id` is marked invalid (`aria-invalid="true"`).
pub fn assert_marked_invalid(html: &str, id: &str) {
    assert!(
        tag_with_id(html, id).contains(r#"aria-invalid="true""#),
        "#{id} is not marked invalid in {html}"
    );
}
