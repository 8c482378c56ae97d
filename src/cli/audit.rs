//! `tokenauth audit`: print the audit log (what administrators did on the web page: who, what,
//! when, from which address), oldest first, as a table or JSON.

use std::sync::Arc;

use crate::token::TokenService;

use super::output;

/// Print the newest `limit` entries of the audit log, a table or (with `json`) JSON.
pub(super) async fn run(limit: u32, json: bool, tokens: Arc<TokenService>) -> anyhow::Result<()> {
    let entries = tokens.audit_log(limit).await?;
    print!("{}", if json { output::audit_json(&entries)? } else { output::audit_table(&entries) });
    Ok(())
}
