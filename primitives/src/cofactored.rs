//! The signature rule of native transactions: ed25519 with the cofactored
//! verification equation, as Zcash's ZIP-215 (with weak keys refused).
//!
//! A signature `(R, s)` by key `A` over message `M` is valid when
//!
//! - `A` decodes to a curve point that is not of small order (a weak key:
//!   anyone could sign for it),
//! - `R` decodes to a curve point,
//! - `s` is a canonical scalar (below the group order ℓ), and
//! - `[8](s·B − R − k·A)` is the identity, where
//!   `k = SHA-512(R_bytes ‖ A_bytes ‖ M) mod ℓ`.
//!
//! Why cofactored: with it, checking a signature alone ([`Claim::check`])
//! and in a batch with any others ([`check_batch`]) give the same verdict
//! (a batch of valid signatures always passes; one with an invalid
//! signature fails but with probability about 2⁻¹²⁸). Under RFC 8032's
//! strict rule, as ed25519-dalek's `verify_strict` and its cofactorless
//! batch, a signature crafted with a small-order component can pass one
//! check and fail the other, so a verdict would depend on which batch a
//! signature was checked in. With this rule a validator that checked a
//! transaction at admission need not check it again in a block, however
//! the block's batches are cut (`atoll_shard::signatures`).
//!
//! Every signature RFC 8032 signing produces is valid under this rule.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

/// A valid public key, decoded: a curve point not of small order.
#[derive(Clone, Copy, Debug)]
pub struct KeyPoint(EdwardsPoint);

/// The point of public key `key`, if it is a valid key.
pub fn public_point(key: &[u8; 32]) -> Option<KeyPoint> {
    CompressedEdwardsY(*key)
        .decompress()
        .filter(|point| !point.is_small_order())
        .map(KeyPoint)
}

/// A signature decoded for checking: everything but the curve equation
/// has been checked.
#[derive(Clone, Copy, Debug)]
pub struct Claim {
    key: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

impl Claim {
    /// Decodes `signature` by `key` (whose point, from [`public_point`], is
    /// `point`) over `message`; None if `R` is not a curve point or `s` is
    /// not canonical.
    pub fn new(
        key: &[u8; 32],
        point: KeyPoint,
        message: &[u8],
        signature: &[u8; 64],
    ) -> Option<Claim> {
        let (r_bytes, s_bytes) = signature.split_at(32);
        let r_bytes: [u8; 32] = r_bytes.try_into().expect("32 bytes");
        let s_bytes: [u8; 32] = s_bytes.try_into().expect("32 bytes");
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
        let r = CompressedEdwardsY(r_bytes).decompress()?;
        let mut hasher = Sha512::new();
        hasher.update(r_bytes);
        hasher.update(key);
        hasher.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&hasher.finalize().into());
        Some(Claim {
            key: point.0,
            r,
            s,
            k,
        })
    }

    /// Whether the signature satisfies the cofactored equation.
    pub fn check(&self) -> bool {
        // s·B − k·A, then minus R.
        let sb_minus_ka =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &-self.key, &self.s);
        (sb_minus_ka - self.r).mul_by_cofactor().is_identity()
    }
}

/// Whether every claim in `claims` satisfies the cofactored equation,
/// checked as one random linear combination: `[8](Σ zᵢ·(sᵢ·B − Rᵢ − kᵢ·Aᵢ))`
/// is the identity. The 128-bit weights `zᵢ` are derived from every claim
/// of the batch (each `kᵢ` hashes `Rᵢ`, `Aᵢ` and the message), so the
/// verdict on a list is deterministic and a signer cannot choose them.
pub fn check_batch(claims: &[Claim]) -> bool {
    match claims {
        [] => return true,
        [claim] => return claim.check(),
        _ => {}
    }
    let mut seed = blake3::Hasher::new_derive_key("atoll 2026-12 signature batch weights v1");
    for claim in claims {
        seed.update(claim.k.as_bytes());
        seed.update(claim.s.as_bytes());
    }
    let mut weights = seed.finalize_xof();
    let mut scalars = Vec::with_capacity(2 * claims.len() + 1);
    let mut points = Vec::with_capacity(2 * claims.len() + 1);
    let mut b = Scalar::ZERO;
    for claim in claims {
        let mut z = [0u8; 32];
        weights.fill(&mut z[..16]);
        let z = Scalar::from_bytes_mod_order(z);
        b += z * claim.s;
        scalars.push(-z);
        points.push(claim.r);
        scalars.push(-(z * claim.k));
        points.push(claim.key);
    }
    scalars.push(b);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;
    use curve25519_dalek::constants::EIGHT_TORSION;

    fn signed(seed: u8, message: &[u8]) -> ([u8; 32], [u8; 64]) {
        let key = KeyPair::from_seed([seed; 32]);
        (key.public().0, key.sign(message).0)
    }

    fn claim(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Option<Claim> {
        Claim::new(key, public_point(key)?, message, signature)
    }

    fn verify(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        claim(key, message, signature).is_some_and(|claim| claim.check())
    }

    /// A key with a small-order component (`a·B + T`, `T` of order 8) and
    /// its signature over `message`, made as RFC 8032 signing would with
    /// secret `a`: `[8](s·B − R − k·A)` is the identity, but `s·B − R − k·A`
    /// is `−k·T`, which is not unless 8 divides `k`.
    fn mixed_order_signature(message: &[u8]) -> ([u8; 32], [u8; 64]) {
        let a = Scalar::from(1234567u64);
        let key = (ED25519_BASEPOINT_POINT * a + EIGHT_TORSION[1])
            .compress()
            .0;
        let r = Scalar::from(7654321u64);
        let r_bytes = (ED25519_BASEPOINT_POINT * r).compress().0;
        let mut hasher = Sha512::new();
        hasher.update(r_bytes);
        hasher.update(key);
        hasher.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&hasher.finalize().into());
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&r_bytes);
        signature[32..].copy_from_slice((r + k * a).as_bytes());
        (key, signature)
    }

    #[test]
    fn rfc8032_signatures_are_valid_alone_and_in_batches() {
        let claims: Vec<Claim> = (0..20)
            .map(|i| {
                let message = [i; 10];
                let (key, signature) = signed(i, &message);
                assert!(verify(&key, &message, &signature));
                claim(&key, &message, &signature).expect("test value")
            })
            .collect();
        assert!(check_batch(&claims));
    }

    #[test]
    fn a_bad_signature_fails_alone_and_in_any_batch() {
        let mut claims: Vec<Claim> = (0..8)
            .map(|i| {
                let (key, signature) = signed(i, b"m");
                claim(&key, b"m", &signature).expect("test value")
            })
            .collect();
        let (key, signature) = signed(9, b"m");
        assert!(!verify(&key, b"another message", &signature));
        for at in 0..=claims.len() {
            let mut batch = claims.clone();
            batch.insert(
                at,
                claim(&key, b"another message", &signature).expect("test value"),
            );
            assert!(!check_batch(&batch), "bad signature at {at} passed");
        }
        claims.truncate(1);
        assert!(check_batch(&claims));
    }

    #[test]
    fn a_small_order_component_gets_the_same_verdict_alone_and_in_every_batch() {
        let (key, crafted) = mixed_order_signature(b"m");
        let public = ed25519_dalek::VerifyingKey::from_bytes(&key).expect("test value");
        let strict = public.verify_strict(b"m", &ed25519_dalek::Signature::from_bytes(&crafted));
        assert!(strict.is_err(), "the strict rule refuses it");
        assert!(
            verify(&key, b"m", &crafted),
            "the cofactored rule accepts it"
        );
        let others: Vec<Claim> = (10..17)
            .map(|i| {
                let (key, signature) = signed(i, b"x");
                claim(&key, b"x", &signature).expect("test value")
            })
            .collect();
        for at in 0..=others.len() {
            let mut batch = others.clone();
            batch.insert(at, claim(&key, b"m", &crafted).expect("test value"));
            assert!(check_batch(&batch), "accepted alone, refused at {at}");
        }
    }

    #[test]
    fn weak_keys_non_canonical_scalars_and_bad_points_are_refused() {
        let identity = EdwardsPoint::default().compress().0;
        assert!(public_point(&identity).is_none(), "a small-order key");
        let (key, signature) = signed(1, b"m");
        let mut high_s = signature;
        high_s[63] |= 0xf0;
        assert!(!verify(&key, b"m", &high_s), "s above the group order");
        // y = 2 is not the y-coordinate of a curve point.
        let mut bad_r = signature;
        bad_r[..32].copy_from_slice(&{
            let mut y = [0u8; 32];
            y[0] = 2;
            y
        });
        assert!(
            CompressedEdwardsY(bad_r[..32].try_into().expect("test value"))
                .decompress()
                .is_none(),
            "the test needs a non-point"
        );
        assert!(!verify(&key, b"m", &bad_r));
    }
}
