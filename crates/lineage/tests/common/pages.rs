//! Reading lineage's pages as a browser does (html5ever, through scraper).

use scraper::{ElementRef, Html, Selector};

/// Elements in document order, each with its attribute names: what the
/// page's markup is, whatever its text.
pub fn skeleton(document: &Html) -> Vec<String> {
    document
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .map(|element| {
            let mut names: Vec<&str> = element.value().attrs().map(|(name, _)| name).collect();
            names.sort_unstable();
            format!("<{} {}>", element.value().name(), names.join(" "))
        })
        .collect()
}

/// Where two skeletons part, with a few elements around: `None` if equal.
pub fn first_difference(got: &[String], want: &[String]) -> Option<String> {
    if got == want {
        return None;
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    let around = |list: &[String]| list[at.saturating_sub(2)..(at + 3).min(list.len())].join("");
    Some(format!("element {at}: {} where the page has {}", around(got), around(want)))
}

/// What an HTML parser makes of text: CR LF and CR become LF, NUL is dropped.
pub fn as_parsed(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n").replace('\0', "")
}

/// The text of the first element `selector` matches.
pub fn text_of(document: &Html, selector: &str) -> Option<String> {
    let selector = Selector::parse(selector).unwrap();
    document.select(&selector).next().map(|element| element.text().collect())
}

/// Every text node of the page, joined.
pub fn all_text(document: &Html) -> String {
    document.root_element().text().collect()
}
