//! The house rules the compiler does not check, read from the source (`src/**/*.rs`) in a few
//! milliseconds, with no database and no build of anything but this file:
//!
//! (a) no SQL outside `src/db`: no other file names `diesel`, except as `DIESEL_OUTSIDE_DB`
//!     allows (error inspection, and the derives that map domain states to text columns);
//! (b) no cryptographic crate outside `src/crypto`, (c) no HTTP client outside `src/egress`
//!     and `src/lanyard_client.rs` (`lanyard exec` talking to Lanyard itself) (both in
//!     `CRATE_HOMES`);
//! (d) the module graph between rooms (the top-level modules: `src/web/…`, `src/config.rs`…),
//!     read from `use crate::…` trees and `crate::…`/`super::…` paths in code, follows `ROOMS`:
//!     an arrow only where the table allows it, so no arrow climbs and there is no cycle (the
//!     table itself is checked to be acyclic). `ITEM_LIMITS` narrows some allowed arrows to
//!     named items.
//!
//! Arrows that exist today and are being removed are listed in `KNOWN_VIOLATIONS`: the test
//! passes with them, fails on any other violation, and fails when a listed one is gone (so the
//! list only shrinks). Every violation, known or not, is printed (`cargo test --test
//! architecture -- --nocapture`).
//!
//! The reading is lexical: comments, strings and character literals are skipped, `use` trees
//! are expanded, and a path counts wherever it appears (attributes and test modules included).
//! `main.rs` (which names the library as `lanyard::`) and `lib.rs` (the module list) belong to no
//! room but are checked for crate names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// The rules, as data.
// ---------------------------------------------------------------------------------------------

/// Room → the rooms it may import. Listed from the bottom of the house up; a room may only
/// import rooms listed above it (checked), which is what makes the graph acyclic. One line a
/// room, so that a change to what a room may import is one line of the diff.
#[rustfmt::skip]
const ROOMS: &[(&str, &[&str])] = &[
    // Validated types: std and crates only.
    ("domain", &[]),
    ("metrics", &[]),
    ("telemetry", &[]),
    ("crypto", &["domain"]),
    ("egress", &["domain"]),
    ("providers", &["domain", "egress"]),
    ("db", &["domain"]),
    ("error", &["db", "domain"]),
    // Settings read from the environment: below the services.
    ("config", &["db", "domain", "egress"]),
    // Use cases; from `config` only plain settings types (`ITEM_LIMITS`). Not `error`: each
    // service names what went wrong in an enum of its own, and `http::service_errors` maps it.
    ("services", &["config", "crypto", "db", "domain", "egress", "metrics", "providers"]),
    // The edge shared by pages and the API: who is calling, CSRF, errors rendered once. It
    // composes the application's state (the database pool, the outbound client) and keeps the
    // sessions' store, so it may reach `db` and `egress`; pages and the API may not.
    ("http", &["config", "crypto", "db", "domain", "egress", "error", "metrics", "services", "telemetry"]),
    // Pages and the JSON API: the edge, services and domain; never each other, `db`, `egress`
    // or `crypto`.
    ("web", &["domain", "error", "http", "metrics", "services"]),
    ("api", &["domain", "error", "http", "metrics", "services"]),
    // Start-up checks shared by the server and the command line.
    ("startup", &["config", "crypto", "db", "domain", "egress", "error", "metrics", "services", "telemetry"]),
    // Builds the server: everything below it.
    ("app", &["api", "config", "crypto", "db", "domain", "egress", "error", "http", "metrics", "services", "startup", "telemetry", "web"]),
    // The command line, another edge: it parses its arguments (`domain`), reads the settings,
    // opens the database through `startup` as `serve` does, calls services, and starts the
    // server (`app`). No `db`, no `crypto`: pools, key checks, look-ups and copies are services'.
    // `lanyard exec`'s client of a Lanyard server (runtimes.md): it reads the answer into domain
    // types and nothing else.
    ("lanyard_client", &["domain"]),
    ("commands", &["app", "config", "domain", "lanyard_client", "services", "startup"]),
];

/// (importing room, imported room, the only items it may name there).
const ITEM_LIMITS: &[(&str, &str, &[&str])] = &[
    // Plain settings types only: no `Settings` (the whole environment), nothing that reads it.
    (
        "services",
        "config",
        &[
            "MasterKeySource",
            "SingleSignOnSettings",
            "GroupMapping",
            "issuer_allowed",
        ],
    ),
];

/// Crate → the rooms that alone may name it. The HTTP client has a second home: `lanyard exec`
/// resolves from a Lanyard server like any runtime (runtimes.md), which is not a provider call
/// and needs none of the egress policy.
const CRATE_HOMES: &[(&str, &[&str])] = &[
    ("aes_gcm", &["crypto"]),
    ("argon2", &["crypto"]),
    ("sha2", &["crypto"]),
    ("subtle", &["crypto"]),
    ("rand", &["crypto"]),
    ("hmac", &["crypto"]),
    // One-time passwords (HMAC-SHA-1) and the QR code that carries their secret: the secret's
    // whole life, from its making to its picture, stays in the room that keeps secrets.
    ("totp_rs", &["crypto"]),
    ("qrcode", &["crypto"]),
    ("reqwest", &["egress", "lanyard_client"]),
    // OpenID Connect: the protocol glue in the single sign-on service, its HTTP in the identity
    // provider's own outbound client.
    ("openidconnect", &["egress", "services"]),
    ("diesel", &["db"]),
];

/// Outside `src/db`, `diesel` may be named only through these path prefixes, in these files
/// (`*` for every file). Inspecting a query's error is not SQL; deriving the text mapping of a
/// domain state puts no query anywhere (its `ToSql`/`FromSql` live in `db/sql_types.rs`).
const DIESEL_OUTSIDE_DB: &[(&str, &[&str])] = &[
    ("*", &["diesel::result"]),
    ("src/domain/account.rs", STATE_AS_TEXT),
    ("src/domain/provider.rs", STATE_AS_TEXT),
    ("src/domain/configuration.rs", STATE_AS_TEXT),
    ("src/domain/monitoring.rs", STATE_AS_TEXT),
    ("src/domain/webhook.rs", STATE_AS_TEXT),
];

/// What deriving a domain state's text mapping names.
const STATE_AS_TEXT: &[&str] = &["diesel::AsExpression", "diesel::FromSqlRow", "diesel::sql_types::Text"];

/// (file, room it imports against `ROOMS`) pairs tolerated for now, each to be removed by the
/// change that fixes it. Empty since the edge redesign (issue 12); keep it that way.
const KNOWN_VIOLATIONS: &[(&str, &str)] = &[];

// ---------------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_room_table_only_points_down_so_it_has_no_cycle() {
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for (room, allowed) in ROOMS {
        for target in *allowed {
            if !seen.contains(target) {
                wrong.push(format!("`{room}` may import `{target}`, which is not listed above it"));
            }
        }
        assert!(seen.insert(*room), "`{room}` is listed twice in ROOMS");
    }
    assert!(
        wrong.is_empty(),
        "ROOMS must list each room below the rooms it imports:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_sql_crypto_or_http_client_outside_their_rooms() {
    let mut violations = Vec::new();
    for file in source_files() {
        for path in &file.paths {
            let Some(head) = path.first() else { continue };
            let Some((_, homes)) = CRATE_HOMES.iter().find(|(name, _)| name == head) else {
                continue;
            };
            if file.room.as_deref().is_some_and(|room| homes.contains(&room)) {
                continue;
            }
            let written = path.join("::");
            if *head == "diesel" && diesel_allowed(&file.name, &written) {
                continue;
            }
            violations.push(format!(
                "{}: names `{written}`; `{head}` belongs in src/{}/ alone",
                file.name,
                homes.join("/ and src/")
            ));
        }
    }
    violations.sort();
    violations.dedup();
    for violation in &violations {
        eprintln!("{violation}");
    }
    assert!(
        violations.is_empty(),
        "crates outside their rooms:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_module_graph_follows_the_room_table() {
    let rules: BTreeMap<&str, &[&str]> = ROOMS.iter().copied().collect();
    let mut found: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();

    for file in source_files() {
        let Some(room) = file.room.clone() else { continue };
        let Some(allowed) = rules.get(room.as_str()) else {
            failures.push(format!(
                "{}: room `{room}` is not in ROOMS; add it with what it may import",
                file.name
            ));
            continue;
        };
        for path in file.crate_paths() {
            let target = path[0].clone();
            if target == room || !rules.contains_key(target.as_str()) {
                continue;
            }
            let written = format!("crate::{}", path.join("::"));
            if !allowed.contains(&target.as_str()) {
                found
                    .entry((file.name.clone(), target.clone()))
                    .or_default()
                    .push(written);
                continue;
            }
            edges.insert((room.clone(), target.clone()));
            for (from, to, items) in ITEM_LIMITS {
                if *from == room && *to == target {
                    let item = path.get(1).map(String::as_str).unwrap_or("");
                    if !items.contains(&item) {
                        failures.push(format!(
                            "{}: names `{written}`; `{room}` may take only {items:?} from `{target}`",
                            file.name
                        ));
                    }
                }
            }
        }
    }

    let known: BTreeSet<(String, String)> = KNOWN_VIOLATIONS
        .iter()
        .map(|(file, target)| ((*file).to_owned(), (*target).to_owned()))
        .collect();
    for ((file, target), paths) in &found {
        let room = room_of(file).unwrap_or_default();
        let mut names: Vec<&String> = paths.iter().collect();
        names.sort();
        names.dedup();
        let line = format!(
            "{file}: `{room}` imports `{target}` ({}); `{room}` may import {:?}",
            names.iter().map(|name| name.as_str()).collect::<Vec<_>>().join(", "),
            rules.get(room.as_str()).copied().unwrap_or_default()
        );
        if known.contains(&(file.clone(), target.clone())) {
            eprintln!("known, to be removed by the edge redesign: {line}");
        } else {
            eprintln!("NEW: {line}");
            failures.push(line);
        }
    }
    for (file, target) in &known {
        if !found.contains_key(&(file.clone(), target.clone())) {
            failures.push(format!(
                "{file} no longer imports `{target}`: remove the pair from KNOWN_VIOLATIONS"
            ));
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        failures.push(format!("the allowed arrows make a cycle: {}", cycle.join(" -> ")));
    }
    assert!(failures.is_empty(), "module graph:\n{}", failures.join("\n"));
}

fn diesel_allowed(file: &str, written: &str) -> bool {
    DIESEL_OUTSIDE_DB.iter().any(|(allowed_file, prefixes)| {
        (*allowed_file == "*" || *allowed_file == file)
            && prefixes
                .iter()
                .any(|prefix| written == *prefix || written.starts_with(&format!("{prefix}::")))
    })
}

fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeSet<(String, String)>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = stack.iter().position(|on_stack| on_stack == node) {
            let mut cycle = stack[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for (_, to) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(cycle) = visit(to, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .iter()
        .find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}

// ---------------------------------------------------------------------------------------------
// Reading the source.
// ---------------------------------------------------------------------------------------------

struct SourceFile {
    /// `src/web/auth.rs`
    name: String,
    /// `web`; `None` for `lib.rs` and `main.rs`.
    room: Option<String>,
    /// The module path of the file: `["web", "auth"]`.
    module: Vec<String>,
    /// Every path the file names, `use` trees expanded: `["crate", "db", "DbId"]`.
    paths: Vec<Vec<String>>,
}

impl SourceFile {
    /// The crate-internal paths, `crate::`/`super::`/`self::` resolved, without `crate`.
    fn crate_paths(&self) -> Vec<Vec<String>> {
        let mut resolved = Vec::new();
        for path in &self.paths {
            let mut base: Vec<String> = match path.first().map(String::as_str) {
                Some("crate") => Vec::new(),
                Some("super") | Some("self") => self.module.clone(),
                _ => continue,
            };
            let mut rest = &path[..];
            if rest[0] == "crate" {
                rest = &rest[1..];
            } else {
                // A file's `self` is its own module; each `super` climbs one (past the root, the
                // path belonged to an inline module such as `mod tests`: stop at the root).
                while let Some(first) = rest.first() {
                    match first.as_str() {
                        "self" => rest = &rest[1..],
                        "super" => {
                            base.pop();
                            rest = &rest[1..];
                        }
                        _ => break,
                    }
                }
            }
            base.extend(rest.iter().cloned());
            if !base.is_empty() {
                resolved.push(base);
            }
        }
        resolved
    }
}

fn room_of(name: &str) -> Option<String> {
    let inside = name.strip_prefix("src/")?;
    match inside.split_once('/') {
        Some((room, _)) => Some(room.to_owned()),
        None if inside == "lib.rs" || inside == "main.rs" => None,
        None => Some(inside.trim_end_matches(".rs").to_owned()),
    }
}

fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect_rs(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{name}: {error}"));
            let module: Vec<String> = name
                .trim_start_matches("src/")
                .trim_end_matches(".rs")
                .split('/')
                .filter(|segment| *segment != "mod" && *segment != "lib" && *segment != "main")
                .map(str::to_owned)
                .collect();
            SourceFile {
                room: room_of(&name),
                paths: paths_in(&tokens(&text)),
                name,
                module,
            }
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Identifiers and punctuation, without comments, strings or character literals. `::` is one
/// token.
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || (next == Some('#') && raw_string_ahead(&chars, i + 1))) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('a', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // b"…" and br"…" are byte strings: drop the prefix, the string is skipped next.
            if !(matches!(word.as_str(), "b" | "br") && matches!(chars.get(i), Some('"' | '#'))) {
                out.push(word);
            }
        } else if c == ':' && next == Some(':') {
            out.push("::".to_owned());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

fn raw_string_ahead(chars: &[char], mut i: usize) -> bool {
    while chars.get(i) == Some(&'#') {
        i += 1;
    }
    chars.get(i) == Some(&'"')
}

fn is_identifier(token: &str) -> bool {
    token.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Every path named: `use` trees expanded to full paths, and in code each path of two or more
/// segments that is not itself the tail of another (`a::b::c`, not `b::c`).
fn paths_in(tokens: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i].as_str();
        let previous = if i > 0 { tokens[i - 1].as_str() } else { "" };
        if token == "use" && previous != "::" {
            let end = tokens[i..]
                .iter()
                .position(|t| t == ";")
                .map_or(tokens.len(), |at| i + at);
            let mut position = i + 1;
            if tokens.get(position).map(String::as_str) == Some("::") {
                position += 1;
            }
            expand_use_tree(&tokens[..end], &mut position, Vec::new(), &mut paths);
            i = end;
            continue;
        }
        if token == "extern" && tokens.get(i + 1).map(String::as_str) == Some("crate") {
            if let Some(name) = tokens.get(i + 2) {
                paths.push(vec![name.clone()]);
            }
            i += 3;
            continue;
        }
        let tail_of_path = previous == "::" && i >= 2 && (is_identifier(&tokens[i - 2]) || tokens[i - 2] == ">");
        if is_identifier(token) && !tail_of_path && tokens.get(i + 1).map(String::as_str) == Some("::") {
            let mut path = vec![token.to_owned()];
            let mut j = i + 1;
            while tokens.get(j).map(String::as_str) == Some("::")
                && tokens.get(j + 1).is_some_and(|next| is_identifier(next))
            {
                path.push(tokens[j + 1].clone());
                j += 2;
            }
            paths.push(path);
            i = j;
            continue;
        }
        i += 1;
    }
    paths
}

/// Expands `a::b::{c, d::{e, f}, g as h, self, *}` from `tokens[*position..]` into full paths.
fn expand_use_tree(tokens: &[String], position: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    while *position < tokens.len() {
        let token = tokens[*position].as_str();
        match token {
            "{" => {
                *position += 1;
                loop {
                    match tokens.get(*position).map(String::as_str) {
                        None => return,
                        Some("}") => {
                            *position += 1;
                            return;
                        }
                        Some(",") => *position += 1,
                        Some(_) => expand_use_tree(tokens, position, path.clone(), out),
                    }
                }
            }
            "::" => *position += 1,
            "," | "}" => break,
            "as" => *position += 2,
            "*" => *position += 1,
            "self" if !path.is_empty() => *position += 1,
            _ => {
                path.push(token.to_owned());
                *position += 1;
            }
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

#[test]
fn the_reader_expands_use_trees_and_skips_comments_and_strings() {
    let text = r##"
        use crate::{api, web::{auth::SignedIn, self}, db::DbId as Id};
        use super::super::x::*;
        // use crate::hidden;
        /* crate::hidden::also */
        let s = "crate::not_a_path"; let r = r#"rand::nope"#; let c = '"'; let l: &'a str;
        fn f() -> diesel::result::Error { crate::metrics::render() }
        #[derive(diesel::AsExpression)] struct S;
    "##;
    let paths: Vec<String> = paths_in(&tokens(text)).iter().map(|path| path.join("::")).collect();
    assert_eq!(
        paths,
        [
            "crate::api",
            "crate::web::auth::SignedIn",
            "crate::web",
            "crate::db::DbId",
            "super::super::x",
            "diesel::result::Error",
            "crate::metrics::render",
            "diesel::AsExpression",
        ]
    );
    let file = SourceFile {
        name: "src/web/auth.rs".into(),
        room: Some("web".into()),
        module: vec!["web".into(), "auth".into()],
        paths: paths_in(&tokens(
            "use super::session::ROLE; use crate::db; fn f() { super::super::app::x() }",
        )),
    };
    let resolved: Vec<String> = file.crate_paths().iter().map(|path| path.join("::")).collect();
    assert_eq!(resolved, ["web::session::ROLE", "db", "app::x"]);
}
