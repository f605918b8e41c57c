//! ed25519 keys and signatures, and addresses derived from public keys.

use crate::error::CryptoError;
use crate::hash::{domain, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::fmt;
use std::str::FromStr;

/// A 20-byte account address.
///
/// Derivation: the first 20 bytes of `blake3::derive_key("atoll 2026-11 address v1",
/// public_key_bytes)`, where `public_key_bytes` are the 32 bytes of the compressed
/// ed25519 public key. The domain context keeps addresses apart from every other
/// hash atoll computes. Addresses are shown as `0x` followed by 40 hex digits.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of the account controlled by `key`.
    pub fn from_public_key(key: &PublicKey) -> Address {
        let full = Hash::domain(&domain::ADDRESS, &[&key.0]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&full.0[..20]);
        Address(out)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address(0x{})", hex::encode(self.0))
    }
}

impl FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> Result<Address, String> {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        let mut out = [0u8; 20];
        hex::decode_to_slice(digits, &mut out)
            .map_err(|e| format!("address {text:?} is not 40 hex digits: {e}"))?;
        Ok(Address(out))
    }
}

/// The 32 bytes of a compressed ed25519 public key.
///
/// Kept as bytes so that decoding is total; whether the bytes are a valid
/// curve point is checked when a signature is verified.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The address of this key's account.
    pub fn address(&self) -> Address {
        Address::from_public_key(self)
    }

    /// The key as an ed25519-dalek verifying key, if the bytes are a valid point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, CryptoError> {
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| CryptoError::BadPublicKey(hex::encode(self.0)))
    }

    /// Checks `signature` over `message` (RFC 8032 verification).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        let key = self.verifying_key()?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &hex::encode(self.0)[..12])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A 64-byte ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The signature as an ed25519-dalek value.
    pub fn to_dalek(&self) -> ed25519_dalek::Signature {
        ed25519_dalek::Signature::from_bytes(&self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", &hex::encode(self.0)[..12])
    }
}

/// An ed25519 signing key with its public half.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
}

impl KeyPair {
    /// The key pair whose secret key is `seed` (deterministic; use 32 random
    /// bytes for a real key).
    pub fn from_seed(seed: [u8; 32]) -> KeyPair {
        KeyPair {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The secret seed, for saving the key to a file.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// The address of this key's account.
    pub fn address(&self) -> Address {
        self.public().address()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({:?})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let key = KeyPair::from_seed([9; 32]);
        let sig = key.sign(b"hello");
        assert_eq!(key.public().verify(b"hello", &sig), Ok(()));
        assert_eq!(
            key.public().verify(b"hellO", &sig),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn address_text_round_trip() {
        let addr = KeyPair::from_seed([3; 32]).address();
        assert_eq!(addr.to_string().parse::<Address>(), Ok(addr));
        assert!("0x1234".parse::<Address>().is_err());
    }

    #[test]
    fn invalid_point_is_rejected() {
        // y = 2 is not on the curve.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        assert!(matches!(
            PublicKey(bytes).verifying_key(),
            Err(CryptoError::BadPublicKey(_))
        ));
    }
}
