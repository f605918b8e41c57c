//! The accounts a load sends from: native dev keys (ed25519), or with
//! `--eth` the accounts of the standard test mnemonic, whose transactions
//! are Ethereum-signed (secp256k1, EIP-1559), so the two kinds' costs can
//! be measured side by side.

use atoll_primitives::{Action, Address, ChainId, KeyPair, SignedTransaction, Transaction};
use atoll_shard::workload::ethereum::{EthCall, EthKey};

/// The gas limit of an Ethereum-signed value transfer (a call without
/// input to an account without code).
const VALUE_GAS: u64 = 21_000;

/// One account of the load.
#[derive(Clone, Debug)]
pub enum LoadKey {
    /// A native account.
    Native(KeyPair),
    /// An Ethereum account.
    Ethereum(EthKey),
}

impl LoadKey {
    /// Its address.
    pub fn address(&self) -> Address {
        match self {
            LoadKey::Native(key) => key.address(),
            LoadKey::Ethereum(key) => key.address(),
        }
    }

    /// `action` signed with `nonce` at price (or fee) 1, the base fee a dev
    /// chain has: a native transaction, or an EIP-1559 one (a transfer
    /// becoming a call without input, with 21,000 gas).
    pub fn sign(&self, chain_id: ChainId, nonce: u64, action: Action) -> SignedTransaction {
        match self {
            LoadKey::Native(key) => Transaction {
                chain_id,
                sender: key.public(),
                nonce,
                fee: 1,
                action,
            }
            .sign(key)
            .into(),
            LoadKey::Ethereum(key) => {
                let (to, value, input, gas_limit) = match action {
                    Action::Transfer { to, amount } => (Some(to), amount, Vec::new(), VALUE_GAS),
                    Action::Call {
                        to,
                        value,
                        input,
                        gas_limit,
                    } => (Some(to), value, input, gas_limit),
                    Action::Create {
                        value,
                        init_code,
                        gas_limit,
                    } => (None, value, init_code, gas_limit),
                };
                let call = EthCall {
                    chain_id,
                    nonce,
                    to,
                    value,
                    input,
                    gas_limit,
                };
                key.eip1559(&call, 1, 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::ethereum;

    #[test]
    fn both_kinds_sign_what_the_load_asks() {
        let native = LoadKey::Native(KeyPair::from_seed([4; 32]));
        let transfer = Action::Transfer {
            to: Address([9; 20]),
            amount: 3,
        };
        let signed = native.sign(ChainId(5), 2, transfer.clone());
        assert_eq!(signed.verify(), Ok(()));
        let eth = LoadKey::Ethereum(EthKey::from_private_key(&[4; 32]).expect("valid"));
        let SignedTransaction::Ethereum(raw) = eth.sign(ChainId(5), 2, transfer) else {
            panic!("an Ethereum transaction")
        };
        let decoded = ethereum::decode(&raw, ChainId(5)).expect("decodes");
        assert_eq!(decoded.sender, eth.address());
        assert_eq!(
            (decoded.to, decoded.value, decoded.gas_limit, decoded.nonce),
            (Some(Address([9; 20])), 3, VALUE_GAS, 2)
        );
        assert_eq!(decoded.terms().price(1), 1, "the base fee, no tip");
    }
}
