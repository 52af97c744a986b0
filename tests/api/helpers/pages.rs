//! Reading rows and elements out of rendered pages.

/// The `<tr>` of a configuration in a table, if it is there.
pub fn row_of(html: &str, id: uuid::Uuid) -> Option<&str> {
    let start = html.find(&format!(r#"<tr id="configuration-{id}""#))?;
    let end = html[start..].find("</tr>")?;
    Some(&html[start..start + end])
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
