//! The keys [`JwtAuth`](crate::auth::JwtAuth) verifies with: one key, or a JWK set chosen by `kid`,
//! and [`InvalidKey`], which keeps `jsonwebtoken`'s error type out of our API.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::{AuthError, InvalidKey};

/// One key and the algorithm it verifies.
pub(crate) struct Key {
    kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

impl Key {
    pub(crate) fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        Self {
            kid: None,
            algorithm,
            key,
        }
    }
}

/// The keys of a [`JwtAuth`](crate::auth::JwtAuth): one, or a set whose tokens name theirs by `kid`.
pub(crate) enum Keys {
    One(Key),
    Set(Vec<Key>),
}

impl Keys {
    /// The public keys of a JWK set that can verify signatures. Keys for encryption, symmetric
    /// (`oct`) keys and unknown types or algorithms are skipped, as a JWK set may hold them
    /// for other parties; a key of a supported type that cannot be read is an error.
    pub(crate) fn from_jwk_set(json: &str) -> Result<Self, InvalidKey> {
        let set: JwkSet =
            serde_json::from_str(json).map_err(|err| InvalidKey::JwkSet(Box::new(err)))?;
        let total = set.keys.len();
        let mut keys = Vec::with_capacity(total);
        for jwk in &set.keys {
            let Some(algorithm) = verification_algorithm(jwk) else {
                continue;
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|err| InvalidKey::Jwk {
                kid: jwk.common.key_id.clone(),
                source: Box::new(err),
            })?;
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            });
        }
        if keys.is_empty() {
            return Err(InvalidKey::NoUsableKey { skipped: total });
        }
        Ok(Self::Set(keys))
    }

    pub(crate) fn algorithms(&self) -> Vec<Algorithm> {
        match self {
            Self::One(key) => vec![key.algorithm],
            Self::Set(keys) => {
                let mut algorithms: Vec<Algorithm> = Vec::new();
                for key in keys {
                    if !algorithms.contains(&key.algorithm) {
                        algorithms.push(key.algorithm);
                    }
                }
                algorithms
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Set(keys) => keys.len(),
        }
    }

    /// The key for `token`: the set's key named by the token's `kid` (or its only key, for a
    /// token without `kid`), whose algorithm must be the token's.
    pub(crate) fn for_token(&self, token: &str) -> Result<&Key, AuthError> {
        let keys = match self {
            Self::One(key) => return Ok(key),
            Self::Set(keys) => keys,
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| AuthError::invalid(err.to_string()))?;
        let key = match (&header.kid, keys.as_slice()) {
            (Some(kid), _) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            (None, [only]) => Some(only),
            (None, _) => None,
        }
        .ok_or_else(|| AuthError::invalid("no key of the JWK set matches the token's kid"))?;
        if key.algorithm != header.alg {
            return Err(AuthError::invalid(
                "the token's alg is not its key's algorithm",
            ));
        }
        Ok(key)
    }
}

/// The algorithm `jwk` verifies signatures with: its `alg`, else the usual one for its type
/// (RS256 for RSA, by curve for EC, EdDSA for Ed25519); `None` for keys we do not use.
fn verification_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(alg) => Algorithm::try_from(alg).ok()?,
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => Algorithm::EdDSA,
                _ => return None,
            },
            _ => return None,
        },
    };
    let family_fits = matches!(
        (&jwk.algorithm, algorithm),
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) | (
            AlgorithmParameters::EllipticCurve(_),
            Algorithm::ES256 | Algorithm::ES384
        ) | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
    );
    // Symmetric keys never verify here: a published key set must not carry shared secrets.
    family_fits.then_some(algorithm)
}
