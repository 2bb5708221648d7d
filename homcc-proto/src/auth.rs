//! Shared-secret authentication by challenge and response: the server sends a random nonce, the
//! client answers with a keyed blake3 hash of it, so the token itself never crosses the wire.
//! Pure: reading the token's file is the binaries' business (`config::read_auth_token`).

use std::fmt;

/// The blake3 key-derivation context: a token yields this protocol's key and nothing else.
const CONTEXT: &str = "homcc 2026-11 auth v1";

/// The length of a challenge's nonce and of a proof.
pub const NONCE_LEN: usize = 32;

/// Why bytes are not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthTokenError {
    #[error("the token is empty: put the shared secret in the file")]
    Empty,
}

/// The shared secret of a client and its servers, kept as the key it derives (never printed).
#[derive(Clone)]
pub struct AuthToken {
    key: [u8; 32],
}

impl AuthToken {
    /// The token in a file's bytes, without the whitespace around it (a trailing newline).
    pub fn from_bytes(bytes: &[u8]) -> Result<AuthToken, AuthTokenError> {
        match bytes.trim_ascii() {
            [] => Err(AuthTokenError::Empty),
            token => Ok(AuthToken {
                key: blake3::derive_key(CONTEXT, token),
            }),
        }
    }

    /// The answer to the challenge `nonce`: only a holder of the token can compute it.
    pub fn proof(&self, nonce: &[u8; NONCE_LEN]) -> [u8; NONCE_LEN] {
        *blake3::keyed_hash(&self.key, nonce).as_bytes()
    }

    /// Whether `proof` answers `nonce`, compared in constant time.
    pub fn verify(&self, nonce: &[u8; NONCE_LEN], proof: &[u8; NONCE_LEN]) -> bool {
        blake3::keyed_hash(&self.key, nonce) == blake3::Hash::from_bytes(*proof)
    }
}

/// Two tokens are equal when they derive the same key (compared in constant time).
impl PartialEq for AuthToken {
    fn eq(&self, other: &Self) -> bool {
        blake3::Hash::from_bytes(self.key) == blake3::Hash::from_bytes(other.key)
    }
}

impl Eq for AuthToken {}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> AuthToken {
        AuthToken::from_bytes(text.as_bytes()).unwrap()
    }

    const NONCE: [u8; 32] = [7; 32];

    /// Whether the proof a client computes from (token, nonce) answers the challenge `NONCE` of a
    /// server whose token is "secret".
    #[test]
    fn a_proof_depends_on_the_token_and_the_nonce() {
        let server = token("secret");
        let check = |text: &str, nonce: [u8; 32], accepted: bool| {
            let got = token(text).proof(&nonce);
            assert_eq!(got == server.proof(&NONCE), accepted, "{text:?} {nonce:?}");
            assert_eq!(server.verify(&NONCE, &got), accepted, "{text:?} {nonce:?}");
        };
        check("secret", NONCE, true);
        check("  secret\n", NONCE, true);
        check("\tsecret\r\n\n", NONCE, true);
        check("secret2", NONCE, false);
        check("Secret", NONCE, false);
        check("sec ret", NONCE, false);
        let mut other = NONCE;
        other[31] ^= 1;
        check("secret", other, false);
        check("secret", [0; 32], false);
    }

    #[test]
    fn the_proof_is_the_documented_keyed_hash() {
        let key = blake3::derive_key("homcc 2026-11 auth v1", b"secret");
        assert_eq!(
            token("secret\n").proof(&NONCE),
            *blake3::keyed_hash(&key, &NONCE).as_bytes()
        );
        assert_ne!(
            token("secret").proof(&NONCE),
            *blake3::hash(b"secret").as_bytes()
        );
    }

    #[test]
    fn empty_tokens_are_refused() {
        for bytes in [&b""[..], b"\n", b"  \t\r\n "] {
            assert_eq!(
                AuthToken::from_bytes(bytes),
                Err(AuthTokenError::Empty),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", token("hunter2")), "AuthToken(..)");
        assert_eq!(token("a\n"), token("a"));
        assert_ne!(token("a"), token("b"));
    }
}
