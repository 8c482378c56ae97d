//! Taking over what the replaced systems issued: their password hashes (`password`), verified
//! until each account's first login replaces its hash with argon2id, and django-rest-knox's
//! token digests (`knox`), recomputed at each token's first check, which rewrites its row to
//! the SHA-256 digest.

pub mod knox;
pub mod password;
