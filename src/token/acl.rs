//! `/verify`'s ACL rules: which permission a proxied request needs, and whether a role grants
//! it. The rules (`[[verify.acl]]`) map a path prefix and methods to a resource and a
//! permission of the token's role's ACL (Webitel's `{"cdr": ["r", "w"]}`).
//!
//! Policy: the longest prefix covering the path and the method decides; a path some rule
//! covers but none for its method is refused (a protected path is not an open door for an
//! unlisted method); a path no rule covers is open. Paths are matched as an upstream will
//! resolve them, and paths that upstreams resolve differently are refused outright.

use crate::config::AclRule;
use crate::error::Error;
use crate::model::Role;

/// Check a proxied request (`method`, `original` URI with its query) against `rules` for a
/// token whose owner has `role`: `Forbidden` unless the rules let it through.
pub fn check(rules: &[AclRule], role: Option<&Role>, method: &str, original: &str) -> Result<(), Error> {
    let raw = original.split(['?', '#']).next().unwrap_or_default();
    // why refuse: dot segments and encoded separators are resolved differently by
    // different applications (most route on the raw path), so no reading of them is safe
    // to check a rule against; a client has no honest need for them.
    if ambiguous(raw) {
        return Err(Error::Forbidden);
    }
    let path = normalize_path(raw);
    match matching_rule(rules, &path, method) {
        Rule::Matched(rule) if !grants(role, rule) => Err(Error::Forbidden),
        // why: a protected path with a method no rule lists is not an open door.
        Rule::PrefixOnly => Err(Error::Forbidden),
        Rule::Matched(_) | Rule::None => Ok(()),
    }
}

/// What the rules say about a request.
#[derive(Debug, PartialEq, Eq)]
enum Rule<'r> {
    /// The longest-prefix rule covering the path and the method.
    Matched(&'r AclRule),
    /// Rules cover the path, but none the method.
    PrefixOnly,
    /// No rule covers the path.
    None,
}

/// The longest-prefix rule covering `path` and `method` (HEAD counts as GET: servers answer
/// it with the GET handler).
fn matching_rule<'r>(rules: &'r [AclRule], path: &str, method: &str) -> Rule<'r> {
    let method = if method.eq_ignore_ascii_case("HEAD") { "GET" } else { method };
    let covers = |r: &AclRule| {
        r.methods.is_empty()
            || r.methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method) || (method == "GET" && m.eq_ignore_ascii_case("HEAD")))
    };
    let under_path: Vec<&AclRule> = rules.iter().filter(|r| under(path, &r.prefix)).collect();
    match under_path.iter().copied().filter(|r| covers(r)).max_by_key(|r| r.prefix.len()) {
        Some(rule) => Rule::Matched(rule),
        None if !under_path.is_empty() => Rule::PrefixOnly,
        None => Rule::None,
    }
}

/// A raw path with dot segments (plain or encoded), encoded separators, backslashes or
/// path parameters (`;`).
fn ambiguous(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || raw.contains('\\') || raw.contains(';') {
        return true;
    }
    percent_decode(raw).split('/').any(|segment| segment == "." || segment == "..")
}

/// `path` is `prefix` or below it, on a segment boundary.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `role`'s ACL grants `rule`'s permission (or `*`) on its resource.
fn grants(role: Option<&Role>, rule: &AclRule) -> bool {
    role.and_then(|r| r.acl.get(&rule.resource))
        .is_some_and(|perms| perms.iter().any(|p| p == "*" || *p == rule.permission))
}

/// The path as an upstream will resolve it: percent-decoded, empty and `.` segments dropped,
/// `..` applied. why: a raw URI such as `/api/%63dr` or `/x/../api/cdr` must not slip past a
/// rule for `/api/cdr` that the upstream would then serve.
fn normalize_path(raw: &str) -> String {
    let decoded = percent_decode(raw);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

fn percent_decode(s: &str) -> String {
    // why not form_urlencoded: in a path `+` is a plus, not a space.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_paths_are_recognized() {
        for bad in [
            "/api/cdr/1%2F..%2F..%2Fpublic",
            "/api/cdr/%2e%2e/%2e%2e/public",
            "/api/cdr/../../public",
            "/api/cdr/./1",
            "/api/cdr;x/1",
            "/api\\cdr",
            "/a%5Cb",
        ] {
            assert!(ambiguous(bad), "{bad}");
        }
        for fine in ["/api/cdr/1", "/api/%63dr", "/a..b/c", "/x/.hidden", "/"] {
            assert!(!ambiguous(fine), "{fine}");
        }
    }

    #[test]
    fn paths_are_normalized_before_rules_match() {
        assert_eq!(normalize_path("/api/%63dr/1"), "/api/cdr/1");
        assert_eq!(normalize_path("/x/../api//cdr/./files"), "/api/cdr/files");
        assert_eq!(normalize_path("/../../etc"), "/etc");
        assert_eq!(normalize_path("/a%2Fb"), "/a/b");
        assert_eq!(normalize_path("/a+b%zz%4"), "/a+b%zz%4");
        assert_eq!(normalize_path(""), "/");
        assert!(under("/api/cdr", "/api/cdr"));
        assert!(under("/api/cdr/1", "/api/cdr/"));
        assert!(!under("/api/cdrx", "/api/cdr"));
        assert!(under("/anything", "/"));
    }

    #[test]
    fn the_longest_matching_rule_decides() {
        let rule = |prefix: &str, methods: &[&str], permission: &str| AclRule {
            prefix: prefix.into(),
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            resource: "cdr".into(),
            permission: permission.into(),
        };
        let rules = [rule("/api", &[], "r"), rule("/api/cdr", &["POST"], "w"), rule("/api/cdr", &["get"], "r")];
        assert_eq!(matching_rule(&rules, "/api/cdr/1", "POST"), Rule::Matched(&rules[1]));
        assert_eq!(matching_rule(&rules, "/api/cdr", "GET"), Rule::Matched(&rules[2]));
        assert_eq!(matching_rule(&rules, "/api/cdr", "HEAD"), Rule::Matched(&rules[2]), "HEAD is GET");
        // A method no /api/cdr rule names falls back to the shorter /api rule (all methods).
        assert_eq!(matching_rule(&rules, "/api/cdr", "PATCH"), Rule::Matched(&rules[0]));
        assert_eq!(matching_rule(&rules, "/api/other", "DELETE"), Rule::Matched(&rules[0]));
        assert_eq!(matching_rule(&rules, "/public", "GET"), Rule::None);
        let only_get = [rule("/api/cdr", &["GET"], "r")];
        assert_eq!(matching_rule(&only_get, "/api/cdr/1", "PATCH"), Rule::PrefixOnly);
        assert_eq!(matching_rule(&only_get, "/api/cdr/1", "HEAD"), Rule::Matched(&only_get[0]));
        let role = |perms: &[&str]| Role {
            name: "r".into(),
            code: 0,
            acl: [("cdr".to_owned(), perms.iter().map(|p| (*p).to_owned()).collect())].into_iter().collect(),
        };
        assert!(grants(Some(&role(&["r", "w"])), &rules[1]));
        assert!(grants(Some(&role(&["*"])), &rules[1]));
        assert!(!grants(Some(&role(&["r"])), &rules[1]));
        assert!(!grants(None, &rules[0]));
    }
}
