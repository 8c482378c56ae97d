//! Dialects: thin adapters that speak existing login/logout APIs over the one token service.
//!
//! Policy: a dialect parses its request shape, calls one `TokenService` method and renders
//! the result or the error in its own shape. No SQL, no clock, no hashing here. Every error,
//! including those raised outside a handler (unknown path under the dialect's prefix, wrong
//! method, body too large, timeout, panic), is rendered by `ErrorShape::error_response`, so a
//! client never sees another dialect's shape or a bare status.

pub mod dialer;
pub mod knox;
pub mod usertoken;
pub mod webitel;

mod body;

pub(crate) use self::body::{JsonObject, optional_string, required_string};
use crate::config::Config;
use crate::model::DialectId;
use crate::token::Policies;

/// Every dialect's token policy, and the web page's, built once from config.
pub fn policies(config: &Config, web: crate::token::TokenPolicy) -> Policies {
    let dialects = DialectId::ALL.map(|d| match d {
        DialectId::Usertoken => usertoken::policy(&config.usertoken),
        DialectId::Knox => knox::policy(&config.knox),
        DialectId::Webitel => webitel::policy(&config.webitel),
        DialectId::Dialer => dialer::policy(&config.dialer),
    });
    Policies::new(dialects, web, |d| config.dialect_enabled(d))
}
