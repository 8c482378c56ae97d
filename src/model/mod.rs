//! The model: what tokenauth knows about (principals, their roles and groups, tokens and their
//! secrets, dialects, throttle counters, audit entries, signing keys).
//!
//! Policy: this is the lowest layer. It imports nothing from the rest of the crate, so the
//! store, the services and the surfaces all speak these types and none of them owns them.
//! Types here hold data and the rules that belong to the data alone (a name's syntax, a
//! digest's algorithm, a dialect's name); what is *allowed* lives in the token service.

mod audit;
/// Which build this is (version, commit, date).
pub mod build;
mod dialect;
mod legacy;
mod principal;
mod role;
mod throttle;
mod token;

pub use self::audit::AuditEntry;
pub use self::dialect::{DialectId, Issuer, LogoutStatus, UnknownDialect};
pub use self::legacy::{KnoxHash, KnoxVersion, LegacyToken, PasswordScheme, TokenDigest, UnknownScheme};
pub use self::principal::{Attributes, MAX_NAME_CHARS, Principal, PrincipalKind, Username};
pub use self::role::{Acl, GroupRef, GroupSummary, Role, RoleSummary};
pub use self::throttle::{ThrottleCounter, ThrottleScope};
pub use self::token::{Owner, PlainToken, SigningKey, Token, TokenHash, TokenKind, TokenLookup};
