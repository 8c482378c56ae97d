//! The web page's HTML (maud: compiled in, escaped by default). Semantic markup, a label on
//! every input, one stylesheet; nothing here needs JavaScript (the copy button is a bonus).

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::{DialectId, PrincipalKind};
use crate::model::{Principal, Token, TokenKind};

/// The one stylesheet, served at `/ui/style.css`.
pub const STYLESHEET: &str = include_str!("style.css");

/// The copy-to-clipboard button's script, served at `/ui/copy.js` (pages work without it).
pub(super) const COPY_SCRIPT: &str = include_str!("copy.js");

/// Who is looking at a signed-in page.
pub(super) struct Viewer<'a> {
    pub(super) principal: &'a Principal,
    pub(super) admin: bool,
    pub(super) csrf: &'a str,
}

fn layout(base: &str, title: &str, viewer: Option<&Viewer<'_>>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tokenauth" }
                link rel="stylesheet" href={ (base) "/style.css" };
                script src={ (base) "/copy.js" } defer {}
            }
            body {
                header {
                    p.brand { a href={ (base) "/" } { "tokenauth" } }
                    @if let Some(v) = viewer {
                        nav aria-label="Main" {
                            ul {
                                li { a href={ (base) "/" } { "My tokens" } }
                                @if v.admin {
                                    li { a href={ (base) "/admin/users" } { "Users" } }
                                }
                                li {
                                    form method="post" action={ (base) "/signout" } {
                                        input type="hidden" name="csrf" value=(v.csrf);
                                        button type="submit" { "Sign out" }
                                    }
                                }
                            }
                        }
                        p.who { "Signed in as " strong { (v.principal.name) } " (" (v.principal.kind) ")" }
                    }
                }
                main { (*body) }
            }
        }
    }
}

fn when(t: Option<OffsetDateTime>) -> Markup {
    match rfc3339(t) {
        Some(s) => html! { time datetime=(s) { (when_text(t)) } },
        None => html! { "never" },
    }
}

fn rfc3339(t: Option<OffsetDateTime>) -> Option<String> {
    t.and_then(|t| t.replace_nanosecond(0).ok()).and_then(|t| t.format(&Rfc3339).ok())
}

/// `2030-01-02 03:04:05 UTC`, for people.
fn when_text(t: Option<OffsetDateTime>) -> String {
    rfc3339(t).map_or_else(|| "never".into(), |s| format!("{} UTC", s.replace('T', " ").trim_end_matches('Z')))
}

/// The sign-in page.
pub(super) fn signin(
    base: &str,
    csrf: &str,
    notice: Option<&str>,
    error: Option<&str>,
    name: &str,
    kind: PrincipalKind,
    resellers: bool,
) -> Markup {
    layout(
        base,
        "Sign in",
        None,
        &html! {
            h1 { "Sign in" }
            p { "Manage your long-lived API tokens." }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.card method="post" action={ (base) "/signin" } {
                input type="hidden" name="csrf" value=(csrf);
                @if resellers {
                    fieldset {
                        legend { "I am a" }
                        label.inline {
                            input type="radio" name="kind" value="user" checked[kind == PrincipalKind::User];
                            " user"
                        }
                        label.inline {
                            input type="radio" name="kind" value="reseller" checked[kind == PrincipalKind::Reseller];
                            " reseller"
                        }
                    }
                }
                label for="name" { "Name" }
                input #name type="text" name="name" value=(name) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn token_table(
    base: &str,
    csrf: &str,
    tokens: &[Token],
    now: OffsetDateTime,
    revoke: &dyn Fn(&Token) -> String,
) -> Markup {
    let live: Vec<&Token> =
        tokens.iter().filter(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now)).collect();
    html! {
        @if live.is_empty() {
            p { "No live tokens." }
        } @else {
            div.scroll {
                table {
                    caption.visually-hidden { "Live tokens" }
                    thead {
                        tr {
                            th scope="col" { "Dialect" }
                            th scope="col" { "Kind" }
                            th scope="col" { "Note" }
                            th scope="col" { "Created" }
                            th scope="col" { "Last used" }
                            th scope="col" { "Expires" }
                            th scope="col" { span.visually-hidden { "Actions" } }
                        }
                    }
                    tbody {
                        @for t in &live {
                            tr {
                                td { (t.issuer) }
                                td {
                                    @if t.kind == TokenKind::Static { "static" } @else { "session" }
                                    @if !t.enabled { " " strong { "(disabled)" } }
                                }
                                td { (t.note.as_deref().unwrap_or("")) }
                                td { (when(Some(t.created_at))) }
                                td { (when(t.last_used_at)) }
                                td { @if t.expires_at.is_some() { (when(t.expires_at)) } @else { "no expiry" } }
                                td {
                                    form method="post" action={ (base) (revoke(t)) } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.danger type="submit" aria-label={ "Revoke the " (t.issuer) " token " (t.note.as_deref().unwrap_or("")) " created " (when_text(Some(t.created_at))) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// "My tokens", with the creation form (and, right after creating one, the new token once).
pub(super) fn tokens(
    base: &str,
    viewer: &Viewer<'_>,
    tokens: &[Token],
    now: OffsetDateTime,
    dialects: &[DialectId],
    created: Option<(DialectId, &str, Option<&str>)>,
    error: Option<&str>,
) -> Markup {
    layout(
        base,
        "My tokens",
        Some(viewer),
        &html! {
            h1 { "My tokens" }
            @if let Some((dialect, token, key)) = created {
                section.created aria-labelledby="created-title" {
                    h2 #created-title { "Your new " (dialect) " token" }
                    p { "Copy it now: it is shown only once and cannot be shown again." }
                    label for="new-token" { "Token" }
                    div.copy {
                        input #new-token type="text" readonly value=(token);
                        button type="button" data-copy="new-token" aria-live="polite" hidden { "Copy" }
                    }
                    @if let Some(key) = key {
                        label for="new-key" { "Key (X-Key, for logout)" }
                        div.copy {
                            input #new-key type="text" readonly value=(key);
                            button type="button" data-copy="new-key" aria-live="polite" hidden { "Copy" }
                        }
                    }
                }
            }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            (token_table(base, viewer.csrf, tokens, now, &|t| format!("/tokens/{}/revoke", t.id)))
            section aria-labelledby="create-title" {
                h2 #create-title { "Create a static token" }
                @if dialects.is_empty() {
                    p { "No dialect you can use is enabled on this server." }
                } @else {
                    form.card method="post" action={ (base) "/tokens" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        label for="dialect" { "Dialect" }
                        select #dialect name="dialect" required {
                            @for d in dialects { option value=(d) { (d) } }
                        }
                        label for="note" { "Note (optional)" }
                        input #note type="text" name="note" maxlength="128" placeholder="What it is for";
                        label for="expires_days" { "Expires after, in days (optional; empty: never)" }
                        input #expires_days type="number" name="expires_days" min="1" max="36500" inputmode="numeric";
                        button type="submit" { "Create token" }
                    }
                }
            }
            section aria-labelledby="everywhere-title" {
                h2 #everywhere-title { "Sign out everywhere" }
                p { "End every web sign-in of yours, in every browser. Your API tokens keep working." }
                form method="post" action={ (base) "/signout-everywhere" } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button.danger type="submit" { "Sign out everywhere" }
                }
            }
        },
    )
}

/// The administrators' user list.
pub(super) fn users(base: &str, viewer: &Viewer<'_>, users: &[Principal]) -> Markup {
    layout(
        base,
        "Users",
        Some(viewer),
        &html! {
            h1 { "Users" }
            div.scroll {
                table {
                    caption.visually-hidden { "Users" }
                    thead {
                        tr {
                            th scope="col" { "Name" }
                            th scope="col" { "State" }
                            th scope="col" { "Administrator" }
                            th scope="col" { "Last sign-in" }
                            th scope="col" { span.visually-hidden { "Actions" } }
                        }
                    }
                    tbody {
                        @for u in users {
                            tr {
                                td { a href={ (base) "/admin/users/" (u.id) "/tokens" } { (u.name) } }
                                td { @if u.enabled { "enabled" } @else { strong { "disabled" } } }
                                td { @if u.attributes.admin { "yes" } @else { "no" } }
                                td { (when(u.last_login_at)) }
                                td {
                                    @let (action, label) = if u.enabled { ("disable", "Disable") } else { ("enable", "Enable") };
                                    @if u.id != viewer.principal.id {
                                    form method="post" action={ (base) "/admin/users/" (u.id) "/" (action) } {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        button.danger[u.enabled] type="submit" aria-label={ (label) " " (u.name) } { (label) }
                                    }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One user's tokens, for administrators.
pub(super) fn user_tokens(
    base: &str,
    viewer: &Viewer<'_>,
    user: &Principal,
    tokens: &[Token],
    now: OffsetDateTime,
) -> Markup {
    layout(
        base,
        &format!("Tokens of {}", user.name),
        Some(viewer),
        &html! {
            p { a href={ (base) "/admin/users" } { "← Users" } }
            h1 { "Tokens of " (user.name) }
            (token_table(base, viewer.csrf, tokens, now, &|t| format!("/admin/users/{}/tokens/{}/revoke", user.id, t.id)))
        },
    )
}

/// An error page.
pub(super) fn error(status: StatusCode, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (status.as_u16()) " · tokenauth" }
            }
            body {
                main {
                    h1 { (status.canonical_reason().unwrap_or("Error")) }
                    p role="alert" { (message) }
                }
            }
        }
    }
}
