//! Ethereum-signed transactions, for workloads and tests: a secp256k1 key
//! (k256, the implementation alloy and revm recover with) that signs
//! legacy and EIP-1559 transactions with alloy's types, as a wallet would.

use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Bytes, TxKind, U256};
use atoll_primitives::{Address, ChainId, SignedTransaction};
use k256::ecdsa::SigningKey;

/// What an Ethereum transaction asks for, besides its prices.
#[derive(Clone, Debug)]
pub struct EthCall {
    /// The chain it is for.
    pub chain_id: ChainId,
    /// The sender's nonce.
    pub nonce: u64,
    /// The callee; `None` creates a contract.
    pub to: Option<Address>,
    /// The value sent.
    pub value: u128,
    /// Call data or creation code.
    pub input: Vec<u8>,
    /// The gas limit.
    pub gas_limit: u64,
}

/// An Ethereum account's key.
#[derive(Clone)]
pub struct EthKey {
    key: SigningKey,
    address: Address,
}

impl std::fmt::Debug for EthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EthKey({})", self.address)
    }
}

impl EthKey {
    /// The key with this private key; `None` if it is not a valid scalar
    /// (zero, or not below the group order).
    pub fn from_private_key(bytes: &[u8; 32]) -> Option<EthKey> {
        let key = SigningKey::from_slice(bytes).ok()?;
        let point = key.verifying_key().to_encoded_point(false);
        let raw: &[u8; 64] = point.as_bytes()[1..].try_into().ok()?;
        let address = alloy_primitives::Address::from_raw_public_key(raw);
        Some(EthKey {
            key,
            address: Address(address.into_array()),
        })
    }

    /// Its address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// `call` as an EIP-1559 transaction offering `max_fee` per gas, of
    /// which at most `tip` above the base fee.
    pub fn eip1559(&self, call: &EthCall, max_fee: u128, tip: u128) -> SignedTransaction {
        let tx = TxEip1559 {
            chain_id: call.chain_id.0,
            nonce: call.nonce,
            gas_limit: call.gas_limit,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: kind(call.to),
            value: U256::from(call.value),
            access_list: Default::default(),
            input: Bytes::from(call.input.clone()),
        };
        self.sign(tx, TxEnvelope::Eip1559)
    }

    /// `call` as a legacy (EIP-155) transaction at `gas_price`.
    pub fn legacy(&self, call: &EthCall, gas_price: u128) -> SignedTransaction {
        let tx = TxLegacy {
            chain_id: Some(call.chain_id.0),
            nonce: call.nonce,
            gas_price,
            gas_limit: call.gas_limit,
            to: kind(call.to),
            value: U256::from(call.value),
            input: Bytes::from(call.input.clone()),
        };
        self.sign(tx, TxEnvelope::Legacy)
    }

    fn sign<T: SignableTransaction<alloy_primitives::Signature>>(
        &self,
        tx: T,
        wrap: fn(Signed<T>) -> TxEnvelope,
    ) -> SignedTransaction {
        let (signature, recovery) = self
            .key
            .sign_prehash_recoverable(tx.signature_hash().as_slice())
            .expect("a 32-byte prehash always signs");
        // k256 signs with a low `s` (EIP-2), as the chain requires.
        let (r, s) = signature.split_bytes();
        let signature = alloy_primitives::Signature::new(
            U256::from_be_slice(&r),
            U256::from_be_slice(&s),
            recovery.is_y_odd(),
        );
        SignedTransaction::Ethereum(wrap(tx.into_signed(signature)).encoded_2718())
    }
}

fn kind(to: Option<Address>) -> TxKind {
    to.map_or(TxKind::Create, |to| TxKind::Call(to.0.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::ethereum;

    #[test]
    fn what_it_signs_recovers_to_its_address() {
        // The first key of the standard test mnemonic.
        let mut secret = [0u8; 32];
        hex::decode_to_slice(
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
            &mut secret,
        )
        .expect("hex");
        let key = EthKey::from_private_key(&secret).expect("valid");
        assert_eq!(
            hex::encode(key.address().0),
            ethereum::samples::SENDER,
            "the address every tool shows"
        );
        let call = EthCall {
            chain_id: ChainId(9),
            nonce: 4,
            to: Some(Address([7; 20])),
            value: 11,
            input: vec![1, 2],
            gas_limit: 50_000,
        };
        for signed in [key.eip1559(&call, 10, 2), key.legacy(&call, 3)] {
            let SignedTransaction::Ethereum(raw) = &signed else {
                panic!("an Ethereum transaction")
            };
            let decoded = ethereum::decode(raw, ChainId(9)).expect("decodes");
            assert_eq!((decoded.sender, decoded.nonce), (key.address(), 4));
        }
        assert!(EthKey::from_private_key(&[0; 32]).is_none());
    }
}
