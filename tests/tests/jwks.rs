//! `JwtAuth::jwks`: tokens verified with the key of a JWK set that their `kid` names.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::AUTHORIZATION;
use actix_web::test::TestRequest;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::json;
use sse_core::{auth::JwtAuth, error::InvalidKey, Authorize};

const RSA_PUBLIC: &[u8] = include_bytes!("../fixtures/rs256-test-public.pem");
const RSA_PRIVATE: &[u8] = include_bytes!("../fixtures/rs256-test-private.pem");

fn jwk(key: &DecodingKey, alg: Option<Algorithm>, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_decoding_key(key, alg).expect("JWK from key");
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

/// An EC P-256 key pair made for this run: (signing key, verifying key).
fn ec_pair() -> (EncodingKey, DecodingKey) {
    let pair = rcgen::KeyPair::generate().expect("P-256 key pair");
    (
        EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("EC private key"),
        DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes()).expect("EC public key"),
    )
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        + 600;
    let claims = json!({ "sse": { "subscribe": ["users/1/private"] }, "exp": exp });
    encode(&header, &claims, key).expect("sign")
}

fn accepts(auth: &JwtAuth, token: &str) -> bool {
    let req = TestRequest::default()
        .insert_header((AUTHORIZATION, format!("Bearer {token}")))
        .to_http_request();
    matches!(auth.authorize(&req), Ok(Some(_)))
}

#[test]
fn tokens_are_checked_with_the_key_their_kid_names() {
    let rsa_private = EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("RSA private key");
    let rsa_public = DecodingKey::from_rsa_pem(RSA_PUBLIC).expect("RSA public key");
    let (ec_private, ec_public) = ec_pair();
    let (other_ec_private, _) = ec_pair();
    let mut encryption = jwk(&rsa_public, None, "enc-1");
    encryption.common.public_key_use = Some(PublicKeyUse::Encryption);
    let hmac_secret = b"a shared secret that must never verify anything here";
    let set = JwkSet {
        keys: vec![
            // No `alg`: an RSA key verifies RS256.
            jwk(&rsa_public, None, "rsa-1"),
            jwk(&ec_public, Some(Algorithm::ES256), "ec-1"),
            encryption,
            jwk(
                &DecodingKey::from_secret(hmac_secret),
                Some(Algorithm::HS256),
                "oct-1",
            ),
        ],
    };
    let auth = JwtAuth::jwks(&serde_json::to_string(&set).expect("JSON")).expect("JWK set");

    assert!(accepts(
        &auth,
        &sign(Algorithm::RS256, Some("rsa-1"), &rsa_private)
    ));
    assert!(accepts(
        &auth,
        &sign(Algorithm::ES256, Some("ec-1"), &ec_private)
    ));
    // A key the set does not hold, under a kid it does.
    assert!(!accepts(
        &auth,
        &sign(Algorithm::ES256, Some("ec-1"), &other_ec_private)
    ));
    // The right key under the wrong kid; an unknown kid; no kid among several keys.
    assert!(!accepts(
        &auth,
        &sign(Algorithm::ES256, Some("rsa-1"), &ec_private)
    ));
    assert!(!accepts(
        &auth,
        &sign(Algorithm::RS256, Some("nope"), &rsa_private)
    ));
    assert!(!accepts(&auth, &sign(Algorithm::RS256, None, &rsa_private)));
    // Another algorithm of the key's family than its own.
    assert!(!accepts(
        &auth,
        &sign(Algorithm::RS512, Some("rsa-1"), &rsa_private)
    ));
    // Encryption and symmetric keys never verify.
    assert!(!accepts(
        &auth,
        &sign(Algorithm::RS256, Some("enc-1"), &rsa_private)
    ));
    let hs = EncodingKey::from_secret(hmac_secret);
    assert!(!accepts(&auth, &sign(Algorithm::HS256, Some("oct-1"), &hs)));
}

#[test]
fn a_set_of_one_key_accepts_tokens_without_kid() {
    let (ec_private, ec_public) = ec_pair();
    let set = JwkSet {
        keys: vec![jwk(&ec_public, Some(Algorithm::ES256), "only")],
    };
    let auth = JwtAuth::jwks(&serde_json::to_string(&set).expect("JSON")).expect("JWK set");
    assert!(accepts(&auth, &sign(Algorithm::ES256, None, &ec_private)));
}

#[test]
fn unusable_sets_are_refused_with_our_error() {
    assert!(matches!(
        JwtAuth::jwks("not json"),
        Err(InvalidKey::JwkSet(_))
    ));
    assert!(matches!(
        JwtAuth::jwks(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#),
        Err(InvalidKey::NoUsableKey { skipped: 1 })
    ));
    assert!(matches!(
        JwtAuth::jwks(r#"{"keys": [{"kty": "RSA", "kid": "bad", "n": "!!", "e": "AQAB"}]}"#),
        Err(InvalidKey::Jwk { .. })
    ));
    assert!(matches!(
        JwtAuth::rs256_pem(b"not a pem"),
        Err(InvalidKey::Pem(_))
    ));
}
