//! Who may use the management API: a bearer token, HTTP Basic users (as
//! RouterOS REST clients send them; passwords stored as argon2 PHC strings,
//! never in clear), or, on a loopback address with neither configured,
//! anyone (a client's Basic header is then accepted and ignored). See
//! `docs/api.md`.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine;
use serde::Deserialize;

/// One `[[api.users]]` entry of the config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiUser {
    pub name: String,
    /// The password's argon2 hash as a PHC string (`$argon2id$v=19$...`),
    /// e.g. from `echo -n PASSWORD | argon2 SALT -id -e`.
    pub password_hash: String,
}

impl ApiUser {
    /// Checks the hash is a PHC string argon2 can verify against; `Err`
    /// names the user.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains(':') {
            return Err(format!(
                "api user {:?}: a name must be non-empty and have no ':'",
                self.name
            ));
        }
        let hash = PasswordHash::new(&self.password_hash).map_err(|e| {
            format!(
                "api user {:?}: password-hash is not a PHC string ({e}); \
                 make one with `echo -n PASSWORD | argon2 SALT -id -e`",
                self.name
            )
        })?;
        if !hash.algorithm.as_str().starts_with("argon2") {
            return Err(format!(
                "api user {:?}: password-hash must be an argon2 hash, not {}",
                self.name, hash.algorithm
            ));
        }
        Ok(())
    }
}

/// The API's access rule.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// `Authorization: Basic <user:password>`.
    pub users: Vec<ApiUser>,
}

impl Access {
    /// Nothing configured: only a loopback address may be served, openly.
    pub fn is_open(&self) -> bool {
        self.token.as_deref().is_none_or(str::is_empty) && self.users.is_empty()
    }

    /// Whether a request with this `Authorization` header may pass.
    pub fn allows(&self, header: Option<&str>) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(h) = header.map(str::trim) else {
            return false;
        };
        if let (Some(given), Some(token)) = (h.strip_prefix("Bearer "), self.token.as_deref())
            && !token.is_empty()
        {
            return same(given.trim().as_bytes(), token.as_bytes());
        }
        let Some(encoded) = h.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(raw) else {
            return false;
        };
        let Some((name, password)) = text.split_once(':') else {
            return false;
        };
        // Every user's hash is tried only for its own name; an unknown name
        // still costs one verification, so names cannot be told by timing.
        let user = self.users.iter().find(|u| u.name == name);
        let hash = user.map_or(DUMMY_HASH, |u| u.password_hash.as_str());
        let verified = PasswordHash::new(hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        verified && user.is_some()
    }

    /// The `WWW-Authenticate` challenge of a 401.
    pub fn challenge(&self) -> &'static str {
        match (self.token.is_some(), self.users.is_empty()) {
            (true, true) => "Bearer",
            (false, false) => "Basic realm=\"ctrack\"",
            _ => "Basic realm=\"ctrack\", Bearer",
        }
    }
}

/// Whether `--api-token` was given as a command-line argument (it then
/// shows in `ps` and shell history; `CTRACK_TOKEN` or the config file do
/// not).
pub fn token_on_command_line(args: impl IntoIterator<Item = String>) -> bool {
    args.into_iter()
        .take_while(|a| a != "--")
        .any(|a| a == "--api-token" || a.starts_with("--api-token="))
}

/// A hash of nothing anyone knows, verified for unknown user names.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Y3RyYWNrLWR1bW15$0p4ReXr4ztsmiCN2x5pOLbyIJH2zuLv+X7dVkT4VLoo";

/// Equal bytes, in constant time for equal lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    /// `password`'s argon2id PHC string (a fixed salt: tests only).
    pub(crate) fn hash(password: &str) -> String {
        let salt = SaltString::encode_b64(b"ctrack-test-salt").unwrap();
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn basic(user: &str, pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    }

    #[test]
    fn basic_users_and_the_token() {
        let a = Access {
            token: Some("s3cret".to_string()),
            users: vec![ApiUser {
                name: "admin".to_string(),
                password_hash: hash("pw1"),
            }],
        };
        assert!(!a.is_open());
        assert!(a.allows(Some(&basic("admin", "pw1"))));
        assert!(a.allows(Some("Bearer s3cret")));
        for bad in [
            None,
            Some(basic("admin", "pw2")),
            Some(basic("root", "pw1")),
            Some(basic("admin", "")),
            Some("Basic !!!".to_string()),
            Some("Basic YWRtaW4=".to_string()),
            Some("Bearer s3cret-".to_string()),
            Some("Bearer pw1".to_string()),
        ] {
            assert!(!a.allows(bad.as_deref()), "{bad:?}");
        }
        assert_eq!(a.challenge(), "Basic realm=\"ctrack\", Bearer");
        // Open (loopback, nothing configured): any header passes.
        let open = Access::default();
        assert!(open.allows(Some(&basic("admin", ""))) && open.allows(None));
        // The dummy hash parses (else unknown names would be cheaper).
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn a_token_on_the_command_line_is_seen() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(token_on_command_line(args(&[
            "ctrack",
            "run",
            "--api-token",
            "x"
        ])));
        assert!(token_on_command_line(args(&[
            "ctrack",
            "run",
            "--api-token=x"
        ])));
        assert!(!token_on_command_line(args(&[
            "ctrack", "run", "--api", "x"
        ])));
        assert!(!token_on_command_line(args(&[
            "ctrack",
            "run",
            "--",
            "--api-token"
        ])));
    }

    #[test]
    fn bad_users_are_named() {
        let u = |name: &str, h: &str| ApiUser {
            name: name.to_string(),
            password_hash: h.to_string(),
        };
        assert!(u("admin", &hash("x")).validate().is_ok());
        let e = u("admin", "plaintext").validate().unwrap_err();
        assert!(e.contains("admin") && e.contains("PHC"), "{e}");
        assert!(u("a:b", &hash("x")).validate().unwrap_err().contains("a:b"));
        let e = u("ops", "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA")
            .validate()
            .unwrap_err();
        assert!(e.contains("argon2"), "{e}");
    }
}
