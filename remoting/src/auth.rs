//! RocketMQ's request signature (the ACL hook every client ships: `AclClientRPCHook` in Java,
//! the same in the C++, Go and Rust clients).
//!
//! A signed request carries `AccessKey` (and `SecurityToken` if there is one) and `Signature`
//! in its extFields. The signature is Base64(HMAC-SHA1(secretKey, content)), where the content
//! is the values of every extField except `Signature` (and the unique-key query flag), in the
//! order of their keys, followed by the body. The broker recomputes it from what arrived.

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::command::RemotingCommand;

pub const ACCESS_KEY: &str = "AccessKey";
pub const SECRET_KEY: &str = "SecretKey";
pub const SIGNATURE: &str = "Signature";
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// Set by QUERY_MESSAGE for a unique-key query; clients before 4.9.4 set it after signing.
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// An access key and its secret, as in `plain_acl.yml` and the clients' `SessionCredentials`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    // Never print the secret (they end up in logs through config dumps).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .finish()
    }
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Credentials {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: None,
        }
    }

    /// Signs `request` in place, as `AclClientRPCHook.doBeforeRequest` does.
    pub fn sign(&self, request: &mut RemotingCommand) {
        request.ext_fields.remove(SIGNATURE);
        request
            .ext_fields
            .insert(ACCESS_KEY.into(), self.access_key.clone());
        if let Some(t) = &self.security_token {
            request.ext_fields.insert(SECURITY_TOKEN.into(), t.clone());
        }
        let signature = signature(&self.secret_key, &signed_content(request));
        request.ext_fields.insert(SIGNATURE.into(), signature);
    }

    /// Whether `request` carries this access key and a signature made with this secret.
    pub fn signed(&self, request: &RemotingCommand) -> bool {
        request.ext_fields.get(ACCESS_KEY) == Some(&self.access_key)
            && request
                .ext_fields
                .get(SIGNATURE)
                .is_some_and(|s| verify(&self.secret_key, request, s))
    }
}

/// What the signature covers: extField values in key order without `Signature`, then the
/// body. Clients before 4.9.4 (version 399 and older) added the unique-key query flag after
/// signing, so for them it is left out too (RocketMQ 5's rule).
pub fn signed_content(request: &RemotingCommand) -> Vec<u8> {
    let old_client = request.version <= 399;
    let sorted: BTreeMap<&str, &str> = request
        .ext_fields
        .iter()
        .filter(|(k, _)| k.as_str() != SIGNATURE && !(old_client && k.as_str() == UNIQUE_KEY_QUERY))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let len = sorted.values().map(|v| v.len()).sum::<usize>() + request.body.len();
    let mut content = Vec::with_capacity(len);
    for v in sorted.values() {
        content.extend_from_slice(v.as_bytes());
    }
    content.extend_from_slice(&request.body);
    content
}

/// Base64(HMAC-SHA1(secret, content)).
pub fn signature(secret: &str, content: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret, content).finalize().into_bytes())
}

/// Compares in constant time: a timing difference must not leak a valid signature.
pub fn verify(secret: &str, request: &RemotingCommand, signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac(secret, &signed_content(request))
        .verify_slice(&given)
        .is_ok()
}

fn mac(secret: &str, content: &[u8]) -> Hmac<Sha1> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    m.update(content);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn signs_values_in_key_order_then_the_body() {
        let mut r = RemotingCommand::request(10);
        r.ext_fields.insert("b".into(), "TopicA".into());
        r.ext_fields.insert("a".into(), "GroupA".into());
        r.body = Bytes::from_static(b"hello");
        let c = Credentials::new("RocketMQ", "12345678");
        c.sign(&mut r);
        // AccessKey < a < b (upper case sorts first, as Java's TreeMap does).
        assert_eq!(signed_content(&r), b"RocketMQGroupATopicAhello");
        let expected = signature("12345678", b"RocketMQGroupATopicAhello");
        assert_eq!(r.ext_fields[SIGNATURE], expected);
        assert!(c.signed(&r));
        // Any change to a field, the body or the key breaks it.
        let mut changed = r.clone();
        changed.body = Bytes::from_static(b"hellO");
        assert!(!c.signed(&changed));
        assert!(!Credentials::new("RocketMQ", "1234567").signed(&r));
        // A flag added after signing breaks it, except for clients older than 4.9.4.
        let mut flagged = r.clone();
        flagged
            .ext_fields
            .insert(UNIQUE_KEY_QUERY.into(), "true".into());
        assert!(!c.signed(&flagged));
        flagged.version = 399;
        let mut old = r.clone();
        old.version = 399;
        c.sign(&mut old);
        old.ext_fields
            .insert(UNIQUE_KEY_QUERY.into(), "true".into());
        assert!(
            c.signed(&old),
            "an old client's unique-key flag is not signed"
        );
    }

    #[test]
    fn hmac_sha1_matches_the_rfc_2202_vector() {
        // RFC 2202 test case 2: key "Jefe", "what do ya want for nothing?".
        let s = signature("Jefe", b"what do ya want for nothing?");
        let raw = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}
