//! The contracts atoll ships (an ERC-20 token, a constant-product AMM pair
//! and a probe of EVM features, sources in `contracts/src`), their
//! compiled bytecode, and the little ABI encoding tests, benchmarks and the
//! CLI need to call them.
//!
//! The bytecode in `contracts/out` is checked in; `scripts/contracts.sh`
//! recompiles it with the npm package `solc`.

use atoll_primitives::Address;
use revm::primitives::{keccak256, U256};

/// A shipped contract's creation code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contract {
    /// `Token(uint256 supply)`: an ERC-20 minting `supply` to its deployer.
    Token,
    /// `Pair(address token0, address token1)`: a constant-product AMM.
    Pair,
    /// `Probe()`: self-calls, reverts, CREATE/CREATE2, transient storage,
    /// MCOPY, `receive()`, block context.
    Probe,
    /// `Child(uint256 v)`: what `Probe` creates.
    Child,
    /// `Dispatcher()`: sends calls to other shards through the cross-shard
    /// contract.
    Dispatcher,
}

impl Contract {
    /// The creation code, without constructor arguments.
    pub fn creation_code(self) -> Vec<u8> {
        let hex = match self {
            Contract::Token => include_str!("../../contracts/out/Token.bin"),
            Contract::Pair => include_str!("../../contracts/out/Pair.bin"),
            Contract::Probe => include_str!("../../contracts/out/Probe.bin"),
            Contract::Child => include_str!("../../contracts/out/Child.bin"),
            Contract::Dispatcher => include_str!("../../contracts/out/Dispatcher.bin"),
        };
        hex::decode(hex.trim()).expect("the checked-in bytecode is hex")
    }

    /// The creation code followed by ABI-encoded constructor `args`.
    pub fn init_code(self, args: &[Word]) -> Vec<u8> {
        let mut code = self.creation_code();
        for arg in args {
            code.extend_from_slice(&arg.0);
        }
        code
    }
}

/// One 32-byte ABI word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word(pub [u8; 32]);

impl Word {
    /// An unsigned integer.
    pub fn uint(value: u128) -> Word {
        Word(U256::from(value).to_be_bytes())
    }

    /// The largest `uint256` (an unlimited ERC-20 allowance).
    pub fn max() -> Word {
        Word([0xff; 32])
    }

    /// An address.
    pub fn address(address: Address) -> Word {
        let mut word = [0; 32];
        word[12..].copy_from_slice(&address.0);
        Word(word)
    }

    /// A boolean.
    pub fn bool(value: bool) -> Word {
        Word::uint(u128::from(value))
    }

    /// The word as an unsigned integer, if it fits in a `u128`.
    pub fn to_u128(self) -> Option<u128> {
        u128::try_from(U256::from_be_bytes(self.0)).ok()
    }

    /// The word as an address, if its top 12 bytes are zero.
    pub fn to_address(self) -> Option<Address> {
        (self.0[..12] == [0; 12]).then(|| Address(self.0[12..].try_into().expect("20 bytes")))
    }
}

/// The 4-byte selector of a function `signature` such as
/// `transfer(address,uint256)`.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = keccak256(signature.as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

/// Call data for `signature` with static `args`.
pub fn call_data(signature: &str, args: &[Word]) -> Vec<u8> {
    let mut data = selector(signature).to_vec();
    for arg in args {
        data.extend_from_slice(&arg.0);
    }
    data
}

/// Word `index` of ABI-encoded return data.
pub fn word(output: &[u8], index: usize) -> Option<Word> {
    let bytes = output.get(index * 32..index * 32 + 32)?;
    Some(Word(bytes.try_into().expect("32 bytes")))
}

/// The address a contract created by `sender` with `nonce` gets (`CREATE`,
/// and a creation transaction).
pub fn create_address(sender: &Address, nonce: u64) -> Address {
    Address(
        revm::primitives::Address::from(sender.0)
            .create(nonce)
            .into_array(),
    )
}

/// The address `CREATE2` gives a contract created by `creator` with `salt`
/// and `init_code`.
pub fn create2_address(creator: &Address, salt: [u8; 32], init_code: &[u8]) -> Address {
    Address(
        revm::primitives::Address::from(creator.0)
            .create2(salt, keccak256(init_code))
            .into_array(),
    )
}

/// The storage slot of `mapping(address => …)` entry `key` declared at
/// slot `base` (Solidity's layout), e.g. an ERC-20 balance.
pub fn mapping_slot(base: u64, key: &Address) -> [u8; 32] {
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(&Word::address(*key).0);
    preimage[32..].copy_from_slice(&U256::from(base).to_be_bytes::<32>());
    keccak256(preimage).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_ethereum_s() {
        assert_eq!(
            selector("transfer(address,uint256)"),
            [0xa9, 0x05, 0x9c, 0xbb]
        );
        assert_eq!(selector("balanceOf(address)"), [0x70, 0xa0, 0x82, 0x31]);
    }

    #[test]
    fn create_addresses_are_ethereum_s() {
        // The first contract the well-known Hardhat account 0 deploys.
        let mut sender = Address([0; 20]);
        hex::decode_to_slice("f39fd6e51aad88f6f4ce6ab8827279cfffb92266", &mut sender.0)
            .expect("20 bytes of hex");
        assert_eq!(
            hex::encode(create_address(&sender, 0).0),
            "5fbdb2315678afecb367f032d93f642f64180aa3"
        );
    }

    #[test]
    fn shipped_bytecode_decodes_and_words_round_trip() {
        for contract in [
            Contract::Token,
            Contract::Pair,
            Contract::Probe,
            Contract::Child,
        ] {
            assert!(contract.creation_code().len() > 100, "{contract:?}");
        }
        let a = Address([7; 20]);
        assert_eq!(Word::address(a).to_address(), Some(a));
        assert_eq!(Word::uint(42).to_u128(), Some(42));
        assert_eq!(Word::max().to_u128(), None);
    }
}
