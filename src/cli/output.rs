//! How the CLI prints lists and minted tokens: aligned tables for people, JSON for scripts.

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::{AuditEntry, GroupSummary, Principal, RoleSummary, SigningKey, ThrottleCounter, Token};
use crate::token::throttle::Throttle;
use crate::token::{Issued, TokenState};

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.replace_nanosecond(0).ok()).and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| "-".into())
}

fn when_json(t: Option<OffsetDateTime>) -> serde_json::Value {
    t.and_then(|t| t.format(&Rfc3339).ok()).map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// Align columns; the last column is not padded.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// `user list`
pub(super) fn principals_table(list: &[Principal]) -> String {
    let rows = list
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.name.clone(),
                if p.enabled { "yes" } else { "no" }.into(),
                p.role.as_ref().map_or_else(|| "-".to_owned(), |r| r.name.clone()),
                p.group.as_ref().map_or_else(|| "-".to_owned(), |g| g.name.clone()),
                if p.attributes.admin { "yes" } else { "no" }.into(),
                when(Some(p.created_at)),
                when(p.last_login_at),
            ]
        })
        .collect();
    table(&["ID", "NAME", "ENABLED", "ROLE", "GROUP", "ADMIN", "CREATED", "LAST LOGIN"], rows)
}

/// `user list --json`
pub(super) fn principals_json(list: &[Principal]) -> anyhow::Result<String> {
    let values: Vec<_> = list
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name,
                "enabled": p.enabled,
                "role": p.role.as_ref().map(|r| r.name.clone()),
                "group": p.group.as_ref().map(|g| g.name.clone()),
                "admin": p.attributes.admin,
                "sms_from": p.attributes.sms_from,
                "created": when_json(Some(p.created_at)),
                "last_login": when_json(p.last_login_at),
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&values)? + "\n")
}

fn balance(p: &Principal) -> String {
    p.attributes.balance.map_or_else(|| "-".to_owned(), |b| b.to_string())
}

fn allowed_ips(p: &Principal) -> Vec<String> {
    p.attributes.allowed_ips.iter().map(ToString::to_string).collect()
}

/// `reseller list`
pub(super) fn resellers_table(list: &[Principal]) -> String {
    let rows = list
        .iter()
        .map(|p| {
            let ips = allowed_ips(p);
            vec![
                p.id.to_string(),
                p.name.clone(),
                if p.enabled { "yes" } else { "no" }.into(),
                balance(p),
                when(Some(p.created_at)),
                when(p.last_login_at),
                if ips.is_empty() { "any".to_owned() } else { ips.join(",") },
            ]
        })
        .collect();
    table(&["ID", "NAME", "ENABLED", "BALANCE", "CREATED", "LAST LOGIN", "ALLOWED IPS"], rows)
}

/// `reseller list --json`; the balance is a string, so it stays exact.
pub(super) fn resellers_json(list: &[Principal]) -> anyhow::Result<String> {
    let values: Vec<_> = list
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name,
                "enabled": p.enabled,
                "balance": p.attributes.balance.map(|b| b.to_string()),
                "allowed_ips": allowed_ips(p),
                "created": when_json(Some(p.created_at)),
                "last_login": when_json(p.last_login_at),
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&values)? + "\n")
}

/// `group list`
pub(super) fn groups_table(list: &[GroupSummary]) -> String {
    let rows = list
        .iter()
        .map(|g| {
            vec![
                g.group.id.to_string(),
                g.group.name.clone(),
                g.reseller.as_ref().map_or_else(|| "-".to_owned(), |(_, name)| name.clone()),
                g.members.to_string(),
                when(Some(g.created_at)),
                g.group.allowed_regex.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    table(&["ID", "NAME", "RESELLER", "USERS", "CREATED", "ALLOWED REGEX"], rows)
}

/// `group list --json`
pub(super) fn groups_json(list: &[GroupSummary]) -> anyhow::Result<String> {
    let values: Vec<_> = list
        .iter()
        .map(|g| {
            json!({
                "id": g.group.id,
                "name": g.group.name,
                "allowed_regex": g.group.allowed_regex,
                "reseller": g.reseller.as_ref().map(|(_, name)| name),
                "users": g.members,
                "created": when_json(Some(g.created_at)),
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&values)? + "\n")
}

/// `token list`
pub(super) fn tokens_table(list: &[Token], now: OffsetDateTime) -> String {
    let rows = list
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.issuer.to_string(),
                t.kind.as_str().into(),
                TokenState::of(t, now).as_str().into(),
                when(Some(t.created_at)),
                when(t.expires_at),
                when(t.last_used_at),
                t.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["ID", "DIALECT", "KIND", "STATE", "CREATED", "EXPIRES", "LAST USED", "NOTE"], rows)
}

/// `token list --json`
pub(super) fn tokens_json(list: &[Token], now: OffsetDateTime) -> anyhow::Result<String> {
    let values: Vec<_> = list
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "dialect": t.issuer,
                "kind": t.kind,
                "state": TokenState::of(t, now).as_str(),
                "created": when_json(Some(t.created_at)),
                "expires": when_json(t.expires_at),
                "last_used": when_json(t.last_used_at),
                "revoked": when_json(t.revoked_at),
                "enabled": t.enabled,
                "note": t.note,
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&values)? + "\n")
}

/// `token issue --json`
pub(super) fn issued_json(issued: &Issued) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&json!({
        "id": issued.record.id,
        "token": issued.token.expose(),
        "expires": when_json(issued.record.expires_at),
    }))?)
}

/// `role list`
pub(super) fn roles_table(list: &[RoleSummary]) -> anyhow::Result<String> {
    let rows = list
        .iter()
        .map(|r| {
            Ok(vec![
                r.role.name.clone(),
                r.role.code.to_string(),
                r.members.to_string(),
                when(Some(r.created_at)),
                serde_json::to_string(&r.role.acl)?,
            ])
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(table(&["NAME", "CODE", "USERS", "CREATED", "ACL"], rows))
}

/// `role list --json`
pub(super) fn roles_json(list: &[RoleSummary]) -> anyhow::Result<String> {
    let values: Vec<_> = list
        .iter()
        .map(|r| {
            json!({
                "name": r.role.name,
                "code": r.role.code,
                "users": r.members,
                "created": when_json(Some(r.created_at)),
                "acl": r.role.acl,
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&values)? + "\n")
}

/// `keys list`: ids and times only; the secrets never leave the database.
pub(super) fn keys_table(stored: &[SigningKey], signing: &str) -> String {
    let mut rows: Vec<Vec<String>> = stored
        .iter()
        .map(|k| vec![k.kid.clone(), when(Some(k.created_at)), if k.kid == signing { "yes" } else { "" }.into()])
        .collect();
    if !stored.iter().any(|k| k.kid == signing) {
        rows.push(vec![signing.to_owned(), "(jwt_secret)".into(), "yes".into()]);
    }
    table(&["KID", "CREATED", "SIGNING"], rows)
}

fn locked_until(c: &ThrottleCounter, now: OffsetDateTime) -> Option<OffsetDateTime> {
    c.locked_until.filter(|&until| until > now)
}

/// `throttle list`
pub(super) fn throttle_table(list: &[ThrottleCounter], throttle: &Throttle, now: OffsetDateTime) -> String {
    let rows = list
        .iter()
        .map(|c| {
            vec![
                c.scope.as_str().to_owned(),
                c.subject.clone(),
                throttle.failures(c, now).to_string(),
                throttle.in_flight(c, now).to_string(),
                c.strikes.to_string(),
                when(locked_until(c, now)),
            ]
        })
        .collect();
    table(&["SCOPE", "SUBJECT", "FAILURES", "IN FLIGHT", "LOCKOUTS", "LOCKED UNTIL"], rows)
}

/// `throttle list --json`
pub(super) fn throttle_json(
    list: &[ThrottleCounter],
    throttle: &Throttle,
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    let items: Vec<_> = list
        .iter()
        .map(|c| {
            json!({
                "scope": c.scope.as_str(),
                "subject": c.subject,
                "failures": throttle.failures(c, now),
                "in_flight": throttle.in_flight(c, now),
                "lockouts": c.strikes,
                "locked_until": when_json(locked_until(c, now)),
                "expires": when_json(Some(c.expires_at)),
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&items)? + "\n")
}

/// `audit`
pub(super) fn audit_table(list: &[AuditEntry]) -> String {
    let rows = list
        .iter()
        .map(|e| {
            vec![
                when(Some(e.at)),
                format!("{}:{}", e.actor_kind, e.actor_name),
                e.action.clone(),
                e.client_ip.clone(),
                e.target.clone(),
            ]
        })
        .collect();
    table(&["AT", "BY", "ACTION", "CLIENT IP", "TARGET"], rows)
}

/// `audit --json`
pub(super) fn audit_json(list: &[AuditEntry]) -> anyhow::Result<String> {
    let items: Vec<_> = list
        .iter()
        .map(|e| {
            json!({
                "at": when_json(Some(e.at)),
                "actor_kind": e.actor_kind.as_str(),
                "actor_name": e.actor_name,
                "action": e.action,
                "target": e.target,
                "client_ip": e.client_ip,
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&items)? + "\n")
}
