//! Ethereum-signed transactions: the raw [EIP-2718] bytes of a legacy
//! ([EIP-155]), [EIP-2930] or [EIP-1559] transaction, as wallets and
//! libraries (ethers, viem, web3.py, MetaMask) sign them.
//!
//! [`decode`] is the one way in for such bytes from a client or a peer: it
//! bounds their size, decodes them with alloy's consensus types, refuses
//! trailing bytes, the transaction types atoll does not run (blobs,
//! [EIP-7702] delegations), a legacy transaction without a chain id, one
//! for another chain, a value above what a balance can hold, and a
//! signature with a high `s` (EIP-2) or from which no sender can be
//! recovered. Recovery is secp256k1 by k256, the implementation revm's
//! `ecrecover` uses. The transaction's hash is keccak-256 of its raw bytes,
//! the hash Ethereum tools show for it.
//!
//! [EIP-2718]: https://eips.ethereum.org/EIPS/eip-2718
//! [EIP-155]: https://eips.ethereum.org/EIPS/eip-155
//! [EIP-2930]: https://eips.ethereum.org/EIPS/eip-2930
//! [EIP-1559]: https://eips.ethereum.org/EIPS/eip-1559
//! [EIP-7702]: https://eips.ethereum.org/EIPS/eip-7702

use crate::codec::MAX_TRANSACTION_BYTES;
use crate::crypto::Address;
use crate::hash::Hash;
use crate::transaction::{Action, ChainId, Terms};
use alloy_consensus::crypto::secp256k1::recover_signer;
use alloy_consensus::{SignableTransaction, Signed, Transaction as _, TxEnvelope};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::TxKind;

/// Largest raw Ethereum transaction accepted: the bound on a native one.
pub const MAX_ETH_TRANSACTION_BYTES: usize = MAX_TRANSACTION_BYTES;

/// The kind of an Ethereum transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EthTxType {
    /// Legacy (type 0), with an EIP-155 chain id.
    Legacy,
    /// EIP-2930 (type 1): a gas price and an access list.
    Eip2930,
    /// EIP-1559 (type 2): a maximum fee and a priority fee per gas.
    Eip1559,
}

impl EthTxType {
    /// Its EIP-2718 type number (0 for legacy).
    pub fn number(self) -> u8 {
        match self {
            EthTxType::Legacy => 0,
            EthTxType::Eip2930 => 1,
            EthTxType::Eip1559 => 2,
        }
    }
}

/// A decoded Ethereum transaction whose sender was recovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthTransaction {
    /// Its kind.
    pub kind: EthTxType,
    /// keccak-256 of its raw bytes.
    pub hash: Hash,
    /// The sender recovered from its signature.
    pub sender: Address,
    /// The chain it was signed for.
    pub chain_id: ChainId,
    /// The sender's nonce it uses.
    pub nonce: u64,
    /// The gas it may use.
    pub gas_limit: u64,
    /// The most it pays per gas (a legacy or EIP-2930 transaction: its gas
    /// price).
    pub max_fee_per_gas: u128,
    /// The most of that which goes beyond the base fee (a legacy or
    /// EIP-2930 transaction: its gas price).
    pub max_priority_fee_per_gas: u128,
    /// The account it calls; `None` creates a contract.
    pub to: Option<Address>,
    /// The value it sends.
    pub value: u128,
    /// The call data, or the creation code.
    pub input: Vec<u8>,
    /// The accounts and storage slots it declares (EIP-2930 and EIP-1559).
    pub access_list: Vec<(Address, Vec<[u8; 32]>)>,
    /// Its signature's `r`, big-endian.
    pub r: [u8; 32],
    /// Its signature's `s`, big-endian (low: EIP-2).
    pub s: [u8; 32],
    /// The parity of the curve point's `y` (a legacy transaction's `v` is
    /// `35 + 2 × chain id + parity`, EIP-155).
    pub y_parity: bool,
}

impl EthTransaction {
    /// What it asks of the chain, in atoll's terms: a creation (no `to`)
    /// is [`Action::Create`], anything else [`Action::Call`] (a call with
    /// no input to an account without code moves value, as on Ethereum);
    /// the gas limit, value, data and access list are its own. Its price:
    /// a legacy or EIP-2930 transaction pays its gas price; an EIP-1559
    /// one pays the base fee plus its priority fee, at most its maximum
    /// fee ([`Terms::price`]). The balance it needs up front is, as on
    /// Ethereum, its value plus its gas limit at its highest price.
    pub fn terms(&self) -> Terms {
        let action = match self.to {
            None => Action::Create {
                value: self.value,
                init_code: self.input.clone(),
                gas_limit: self.gas_limit,
            },
            Some(to) => Action::Call {
                to,
                value: self.value,
                input: self.input.clone(),
                gas_limit: self.gas_limit,
            },
        };
        Terms {
            chain_id: self.chain_id,
            nonce: self.nonce,
            fee: self.max_fee_per_gas,
            priority_fee: (self.kind == EthTxType::Eip1559)
                .then_some(self.max_priority_fee_per_gas),
            action,
            access_list: self.access_list.clone(),
        }
    }
}

/// Why Ethereum transaction bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EthTxError {
    /// More bytes than any transaction may have.
    #[error("the transaction is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not an EIP-2718 transaction encoding (or trailing bytes after one).
    #[error("not an Ethereum transaction: {0}")]
    Malformed(String),
    /// A type atoll does not run.
    #[error(
        "transaction type {kind} is not supported; send a legacy, EIP-2930 or EIP-1559 transaction"
    )]
    Unsupported {
        /// The EIP-2718 type byte.
        kind: u8,
    },
    /// A legacy transaction signed without a chain id: it could be
    /// replayed on any chain.
    #[error("the legacy transaction has no chain id (EIP-155); sign it for this chain's id")]
    NoChainId,
    /// Signed for another chain.
    #[error("the transaction is for chain {got}, this is chain {expected}")]
    WrongChain {
        /// This chain.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// A value no balance can hold (balances are 128-bit).
    #[error("the value {0} is more than any balance can hold")]
    ValueTooLarge(String),
    /// The signature's `s` is in the upper half of the curve order, or no
    /// sender can be recovered from it.
    #[error("the signature does not recover a sender (or its s value is not low, EIP-2)")]
    BadSignature,
}

/// Decodes `raw`, an EIP-2718 transaction signed for `chain_id`, and
/// recovers its sender.
pub fn decode(raw: &[u8], chain_id: ChainId) -> Result<EthTransaction, EthTxError> {
    let tx = recover(raw)?;
    if tx.chain_id != chain_id {
        return Err(EthTxError::WrongChain {
            expected: chain_id.0,
            got: tx.chain_id.0,
        });
    }
    Ok(tx)
}

/// Decodes `raw`, an EIP-2718 transaction signed for some chain, and
/// recovers its sender: every check of [`decode`] but the chain's (which
/// execution applies to every kind of transaction alike). This is an
/// Ethereum transaction's signature check.
pub fn recover(raw: &[u8]) -> Result<EthTransaction, EthTxError> {
    if raw.len() > MAX_ETH_TRANSACTION_BYTES {
        return Err(EthTxError::TooLarge {
            size: raw.len(),
            limit: MAX_ETH_TRANSACTION_BYTES,
        });
    }
    let envelope =
        TxEnvelope::decode_2718_exact(raw).map_err(|e| EthTxError::Malformed(e.to_string()))?;
    // One encoding per transaction, so one hash: RLP that decodes but is
    // not in canonical form is refused.
    if envelope.encoded_2718() != raw {
        return Err(EthTxError::Malformed(
            "the encoding is not canonical".into(),
        ));
    }
    let (kind, sender) = match &envelope {
        TxEnvelope::Legacy(signed) => (EthTxType::Legacy, sender_of(signed)?),
        TxEnvelope::Eip2930(signed) => (EthTxType::Eip2930, sender_of(signed)?),
        TxEnvelope::Eip1559(signed) => (EthTxType::Eip1559, sender_of(signed)?),
        TxEnvelope::Eip4844(_) => return Err(EthTxError::Unsupported { kind: 3 }),
        TxEnvelope::Eip7702(_) => return Err(EthTxError::Unsupported { kind: 4 }),
    };
    let chain_id = ChainId(envelope.chain_id().ok_or(EthTxError::NoChainId)?);
    let signature = envelope.signature();
    let value = u128::try_from(envelope.value())
        .map_err(|_| EthTxError::ValueTooLarge(envelope.value().to_string()))?;
    let price = envelope.max_fee_per_gas();
    Ok(EthTransaction {
        kind,
        // keccak-256 of the bytes: alloy hashed a typed transaction's
        // bytes while decoding, and they are `raw` (canonical, exact).
        hash: Hash(envelope.tx_hash().0),
        sender,
        chain_id,
        nonce: envelope.nonce(),
        gas_limit: envelope.gas_limit(),
        max_fee_per_gas: price,
        max_priority_fee_per_gas: envelope.max_priority_fee_per_gas().unwrap_or(price),
        to: match envelope.kind() {
            TxKind::Create => None,
            TxKind::Call(to) => Some(Address(to.0 .0)),
        },
        value,
        input: envelope.input().to_vec(),
        access_list: envelope
            .access_list()
            .map(|list| {
                list.iter()
                    .map(|item| {
                        let slots = item.storage_keys.iter().map(|key| key.0).collect();
                        (Address(item.address.0 .0), slots)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        r: signature.r().to_be_bytes(),
        s: signature.s().to_be_bytes(),
        y_parity: signature.v(),
    })
}

/// The sender of `signed`, recovered from its signature over its signing
/// hash; a high `s` (EIP-2) is refused.
fn sender_of<T: SignableTransaction<alloy_primitives::Signature>>(
    signed: &Signed<T>,
) -> Result<Address, EthTxError> {
    let sender = recover_signer(signed.signature(), signed.tx().signature_hash())
        .map_err(|_| EthTxError::BadSignature)?;
    Ok(Address(sender.0 .0))
}

/// Transactions signed by eth-account 0.14 (Python, an implementation
/// independent of alloy) with the first key of the standard test mnemonic
/// (`test … junk`, `m/44'/60'/0'/0/0`, address [`samples::SENDER`]) for
/// chain [`samples::CHAIN`]: the raw bytes as hex and the hash
/// eth-account shows. For tests and fuzz seeds.
pub mod samples {
    use crate::transaction::ChainId;

    /// The chain they are signed for.
    pub const CHAIN: ChainId = ChainId(1337);
    /// The signer's address.
    pub const SENDER: &str = "f39fd6e51aad88f6f4ce6ab8827279cfffb92266";
    /// The account they call.
    pub const TO: &str = "70997970c51812dc3a010c7d01b50e0d17dc79c8";
    /// Legacy, nonce 3, 1 ether at 2 gwei, 21,000 gas.
    pub const LEGACY: (&str, &str) = (
        "f86d0384773594008252089470997970c51812dc3a010c7d01b50e0d17dc79c8880de0b6b3a764000080820a96a0d4470cb44cc166be44bfdfa82b36de520e40912b4ff8a6b109c843e4617b94d4a002450933faee1001f2febb494e0f38e87eec3dffb7a7ab797b9a9748ced1cb52",
        "fb0319140fa29e1f0ddd471a3dabf02530ee62a98e2be0b3bb472a1b2bc9314f",
    );
    /// EIP-2930, nonce 4, with one slot of [`TO`] in its access list.
    pub const EIP2930: (&str, &str) = (
        "01f8a48205390484b2d05e0082c3509470997970c51812dc3a010c7d01b50e0d17dc79c80584a9059cbbf838f79470997970c51812dc3a010c7d01b50e0d17dc79c8e1a0000000000000000000000000000000000000000000000000000000000000000101a022fdcdec43bc2533c9a67fc02bae8b84bc4b9eb19790579a62c15a928f08c856a077f66a241a0730762ef417da498bfc2bc7fbf8c64d468ee68b0de4b155bb441a",
        "55ebe3a1bd177a5465da0772f46fbc01b7a763f2c3b5a023daaf4461c892b20c",
    );
    /// EIP-1559, nonce 5, a call with data `deadbeef`.
    pub const EIP1559: (&str, &str) = (
        "02f87282053905843b9aca008501a13b8600830186a09470997970c51812dc3a010c7d01b50e0d17dc79c88084deadbeefc080a01b15ab67e39154a6f88dde982fb0eb41bf780dfa4eeed4f832cdf2d54800c2d0a04227071844ec5163df8c4274242783ee3b51468645c54baec24e9c31ed309ee6",
        "35d65ea9b690143cbac96bfae536cb2f41dc2d5043c3870cd065a26fb9835b87",
    );
    /// EIP-1559, nonce 6, a creation.
    pub const CREATE: (&str, &str) = (
        "02f85f82053906843b9aca008501a13b860083030d408080856080604052c001a0af378c581ad379b3162876d57f4c2d05b582f3ad1c645d89c95c94356493c6a6a02b741195c2211d37bfae7fe9fd8442987ce96de0b3c7ef69004b0565e1fb30d4",
        "047131e6082eb22bec6df4f8007c362397098f425695443170dc0f117c5fbc79",
    );
    /// Every sample.
    pub const ALL: [(&str, &str); 4] = [LEGACY, EIP2930, EIP1559, CREATE];
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::samples::{CHAIN, CREATE, EIP1559, EIP2930, LEGACY, SENDER, TO};

    fn bytes(text: &str) -> Vec<u8> {
        hex::decode(text).expect("hex")
    }

    fn address(text: &str) -> Address {
        Address(bytes(text).try_into().expect("20 bytes"))
    }

    fn decoded((raw, hash): (&str, &str)) -> EthTransaction {
        let tx = decode(&bytes(raw), CHAIN).expect("decodes");
        assert_eq!(hex::encode(tx.hash.0), hash, "the hash tools show");
        assert_eq!(tx.sender, address(SENDER));
        assert_eq!(tx.chain_id, CHAIN);
        tx
    }

    #[test]
    fn each_kind_decodes_with_the_sender_and_hash_wallets_show() {
        let legacy = decoded(LEGACY);
        assert_eq!(legacy.kind, EthTxType::Legacy);
        assert_eq!(
            (legacy.nonce, legacy.gas_limit, legacy.value),
            (3, 21_000, 10u128.pow(18))
        );
        assert_eq!(legacy.max_fee_per_gas, 2_000_000_000);
        assert_eq!(legacy.max_priority_fee_per_gas, 2_000_000_000);
        assert_eq!(legacy.to, Some(address(TO)));

        let with_list = decoded(EIP2930);
        assert_eq!(with_list.kind, EthTxType::Eip2930);
        assert_eq!(with_list.input, bytes("a9059cbb"));
        let mut slot = [0; 32];
        slot[31] = 1;
        assert_eq!(with_list.access_list, vec![(address(TO), vec![slot])]);

        let dynamic = decoded(EIP1559);
        assert_eq!(dynamic.kind, EthTxType::Eip1559);
        assert_eq!(dynamic.max_fee_per_gas, 7_000_000_000);
        assert_eq!(dynamic.max_priority_fee_per_gas, 1_000_000_000);
        assert_eq!(dynamic.input, bytes("deadbeef"));

        let creation = decoded(CREATE);
        assert_eq!(creation.to, None);
        assert_eq!(creation.input, bytes("6080604052"));
    }

    #[test]
    fn terms_map_the_fields_onto_atoll_actions_and_prices() {
        let legacy = decoded(LEGACY).terms();
        assert_eq!(legacy.priority_fee, None, "a gas price is the price");
        assert_eq!(legacy.price(1), 2_000_000_000);
        assert_eq!(
            legacy.action,
            Action::Call {
                to: address(TO),
                value: 10u128.pow(18),
                input: Vec::new(),
                gas_limit: 21_000
            }
        );
        assert_eq!(legacy.max_cost(), 10u128.pow(18) + 21_000 * 2_000_000_000);
        let dynamic = decoded(EIP1559).terms();
        assert_eq!((dynamic.nonce, dynamic.chain_id), (5, CHAIN));
        assert_eq!(dynamic.price(1), 1_000_000_001, "base fee plus tip");
        assert_eq!(dynamic.price(6_500_000_000), 7_000_000_000, "the cap");
        assert_eq!(dynamic.max_fee(), 100_000 * 7_000_000_000);
        let creation = decoded(CREATE).terms();
        assert!(matches!(
            creation.action,
            Action::Create {
                gas_limit: 200_000,
                ..
            }
        ));
        assert_eq!(decoded(EIP2930).terms().access_list.len(), 1);
        // `recover` skips only the chain check.
        assert_eq!(recover(&bytes(EIP1559.0)).map(|tx| tx.chain_id), Ok(CHAIN));
    }

    #[test]
    fn bad_bytes_are_refused_with_a_reason() {
        let raw = bytes(EIP1559.0);
        assert_eq!(
            decode(&raw, ChainId(1)),
            Err(EthTxError::WrongChain {
                expected: 1,
                got: 1337
            })
        );
        let mut trailing = raw.clone();
        trailing.push(0);
        assert!(matches!(
            decode(&trailing, CHAIN),
            Err(EthTxError::Malformed(_))
        ));
        assert!(matches!(
            decode(&raw[..raw.len() - 1], CHAIN),
            Err(EthTxError::Malformed(_))
        ));
        assert!(matches!(decode(&[], CHAIN), Err(EthTxError::Malformed(_))));
        assert!(matches!(
            decode(&[3, 0xc0], CHAIN),
            Err(EthTxError::Malformed(_) | EthTxError::Unsupported { .. })
        ));
        let huge = vec![0u8; MAX_ETH_TRANSACTION_BYTES + 1];
        assert!(matches!(
            decode(&huge, CHAIN),
            Err(EthTxError::TooLarge { .. })
        ));
    }

    #[test]
    fn unprotected_and_oversized_values_are_refused() {
        // Legacy, signed without a chain id (pre-EIP-155): replayable anywhere.
        let unprotected = bytes("f85f80018252089470997970c51812dc3a010c7d01b50e0d17dc79c801801ca06397a8bdff366429cb4a8d8abf0be3a9e1d63b32efb6b8cb2756330b436cb3c7a047b4002d5d0527162b1a7ca77a2eae8c91854f98dad79bde66f06d8ba9dab9b6");
        assert_eq!(decode(&unprotected, CHAIN), Err(EthTxError::NoChainId));
        // EIP-1559 sending 2^128: more than any 128-bit balance.
        let oversized = bytes("02f8758205398001028252089470997970c51812dc3a010c7d01b50e0d17dc79c891010000000000000000000000000000000080c001a05e3152f0b20e75b0ccaf18ff76c41f8c54540a43c4abcca4c09b8544fc7b2143a041e661350d85bb0ea1309f3061518d9ecd1f400510e04a4cc5a71b467a4788d6");
        assert_eq!(
            decode(&oversized, CHAIN),
            Err(EthTxError::ValueTooLarge(
                "340282366920938463463374607431768211456".into()
            ))
        );
    }

    #[test]
    fn a_changed_byte_changes_or_breaks_the_sender() {
        // The nonce byte of the EIP-1559 transaction (chain id 1337 takes
        // bytes 3..6): another body, so the signature recovers another
        // address, never the signer's.
        let mut raw = bytes(EIP1559.0);
        assert_eq!(raw[6], 5, "the nonce");
        raw[6] = 6;
        match decode(&raw, CHAIN) {
            Ok(tx) => assert_ne!(tx.sender, address(SENDER)),
            Err(e) => assert_eq!(e, EthTxError::BadSignature),
        }
    }

    #[test]
    fn a_high_s_signature_is_refused() {
        // The same EIP-1559 signature with s replaced by n - s (and the
        // parity flipped) recovers the same key, but EIP-2 refuses it.
        let tx = TxEnvelope::decode_2718_exact(&bytes(EIP1559.0)).expect("decodes");
        let TxEnvelope::Eip1559(signed) = tx else {
            panic!("an EIP-1559 transaction")
        };
        let sig = signed.signature();
        let n = alloy_primitives::U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            16,
        )
        .expect("the secp256k1 group order");
        let high = alloy_primitives::Signature::new(sig.r(), n - sig.s(), !sig.v());
        let malleated = Signed::new_unhashed(signed.tx().clone(), high);
        let mut raw = Vec::new();
        alloy_eips::eip2718::Encodable2718::encode_2718(&TxEnvelope::Eip1559(malleated), &mut raw);
        assert_eq!(decode(&raw, CHAIN), Err(EthTxError::BadSignature));
    }
}
