//! django-rest-knox digests, recomputed from a presented token to take over a token whose
//! plain text tokenauth never saw.

use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq as _;

use crate::model::{KnoxHash, KnoxVersion, LegacyToken, TokenDigest};

/// The `token_key`s a presented token would have been filed under, one per knox version
/// (4.x: its first 8 characters; 5.x: its first 15, prefix included).
pub fn candidate_keys(presented: &str) -> Vec<&str> {
    let mut keys: Vec<&str> =
        [KnoxVersion::V4_2, KnoxVersion::V5].iter().filter_map(|v| presented.get(..v.key_length())).collect();
    keys.dedup();
    keys
}

/// The digest knox `version` with `hash` made of `token` (and 4.1's `salt`), lowercase hex;
/// `None` when the token cannot have been one of that version's (4.x tokens are bare hex).
pub fn digest(version: KnoxVersion, hash: KnoxHash, token: &str, salt: Option<&str>) -> Option<String> {
    let input = match version {
        KnoxVersion::V4_1 => [hex::decode(token).ok()?, hex::decode(salt?).ok()?].concat(),
        KnoxVersion::V4_2 => hex::decode(token).ok()?,
        KnoxVersion::V5 => token.as_bytes().to_vec(),
    };
    Some(match hash {
        KnoxHash::Sha512 => hex::encode(Sha512::digest(&input)),
        KnoxHash::Sha384 => hex::encode(Sha384::digest(&input)),
        KnoxHash::Sha256 => hex::encode(Sha256::digest(&input)),
    })
}

/// Whether `presented` is the token whose legacy digest `row` holds (constant-time).
pub fn matches(row: &LegacyToken, presented: &str) -> bool {
    let TokenDigest::Knox { version, hash } = row.scheme else { return false };
    if presented.get(..version.key_length()).is_none() {
        return false;
    }
    digest(version, hash, presented, row.salt.as_deref())
        .is_some_and(|computed| bool::from(computed.as_bytes().ct_eq(row.digest.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_knox_s() {
        // Computed with Python's hashlib, as each knox version does.
        let token = "a".repeat(64);
        let salt = "0123456789abcdef";
        assert_eq!(
            digest(KnoxVersion::V4_2, KnoxHash::Sha512, &token, None).unwrap(),
            hex::encode(Sha512::digest(hex::decode(&token).unwrap()))
        );
        assert_eq!(
            digest(KnoxVersion::V4_1, KnoxHash::Sha512, &token, Some(salt)).unwrap(),
            hex::encode(Sha512::digest([hex::decode(&token).unwrap(), hex::decode(salt).unwrap()].concat()))
        );
        let prefixed = format!("pm_{token}");
        assert_eq!(
            digest(KnoxVersion::V5, KnoxHash::Sha512, &prefixed, None).unwrap(),
            hex::encode(Sha512::digest(prefixed.as_bytes()))
        );
        assert_eq!(digest(KnoxVersion::V4_2, KnoxHash::Sha512, &prefixed, None), None, "4.x tokens are bare hex");
        assert_eq!(digest(KnoxVersion::V4_1, KnoxHash::Sha512, &token, None), None, "4.1 needs its salt");
        assert_eq!(candidate_keys(&prefixed), vec!["pm_aaaaa", "pm_aaaaaaaaaaaa"]);
        assert_eq!(candidate_keys("short"), Vec::<&str>::new());
    }

    #[test]
    fn a_row_matches_only_its_token() {
        let token = "b".repeat(64);
        let scheme = TokenDigest::Knox { version: KnoxVersion::V4_2, hash: KnoxHash::Sha512 };
        let row = LegacyToken {
            id: uuid::Uuid::nil(),
            scheme,
            digest: digest(KnoxVersion::V4_2, KnoxHash::Sha512, &token, None).unwrap(),
            salt: None,
        };
        assert!(matches(&row, &token));
        assert!(!matches(&row, &"c".repeat(64)));
        assert!(!matches(&LegacyToken { scheme: TokenDigest::Sha256, ..row.clone() }, &token));
    }
}
