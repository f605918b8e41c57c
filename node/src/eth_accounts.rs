//! The dev accounts every Ethereum tool already knows: the keys of the
//! standard test mnemonic (`test test … junk`) at `m/44'/60'/0'/0/i`, the
//! ones anvil and Hardhat fund, derived with BIP-39 (the seed: pbkdf2 and
//! sha2) and BIP-32 (the `bip32` crate over k256). `atoll dev` and `atoll localnet init` fund
//! them beside the ed25519 dev accounts and print them as anvil does.

use atoll_primitives::Address;
use atoll_shard::workload::ethereum::EthKey;
use rayon::prelude::*;
use std::fmt::Write as _;

/// The standard test mnemonic.
pub const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Where the `i`th account's key is derived: this, then `i`.
pub const DERIVATION_PREFIX: &str = "m/44'/60'/0'/0/";

/// How many accounts of the mnemonic a dev chain funds unless told
/// otherwise (anvil's ten).
pub const DEFAULT_ETH_DEV_ACCOUNTS: usize = 10;

/// Most accounts of the mnemonic a dev chain may fund (enough for
/// `atoll load --eth`; deriving 100,000 takes seconds).
pub const MAX_ETH_DEV_ACCOUNTS: usize = 100_000;

/// One account of the mnemonic.
#[derive(Clone, Debug)]
pub struct EthDevAccount {
    /// Its key (and address).
    pub key: EthKey,
    /// Its secp256k1 private key, to print.
    pub private_key: [u8; 32],
}

impl EthDevAccount {
    /// Its address.
    pub fn address(&self) -> Address {
        self.key.address()
    }
}

/// The BIP-39 seed of [`TEST_MNEMONIC`] (no passphrase):
/// PBKDF2-HMAC-SHA512 of the phrase, salt `"mnemonic"`, 2,048 rounds (the
/// phrase is ASCII, so its NFKD form is itself).
fn test_seed() -> [u8; 64] {
    let mut seed = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(TEST_MNEMONIC.as_bytes(), b"mnemonic", 2048, &mut seed);
    seed
}

/// The first `count` accounts of [`TEST_MNEMONIC`].
pub fn derive(count: usize) -> anyhow::Result<Vec<EthDevAccount>> {
    let seed = test_seed();
    (0..count)
        .into_par_iter()
        .map(|i| {
            let path: bip32::DerivationPath = format!("{DERIVATION_PREFIX}{i}")
                .parse()
                .map_err(|e| anyhow::anyhow!("derivation path of account {i}: {e}"))?;
            let key = bip32::XPrv::derive_from_path(seed, &path)
                .map_err(|e| anyhow::anyhow!("deriving account {i}: {e}"))?;
            let private_key: [u8; 32] = key.private_key().to_bytes().into();
            let key = EthKey::from_private_key(&private_key)
                .ok_or_else(|| anyhow::anyhow!("account {i}: not a valid secp256k1 key"))?;
            Ok(EthDevAccount { key, private_key })
        })
        .collect()
}

/// `address` with EIP-55 mixed-case checksum, as wallets show it.
pub fn checksummed(address: &Address) -> String {
    alloy_primitives::Address::from(address.0).to_checksum(None)
}

/// The accounts as anvil prints them: addresses with their balance in
/// whole units of 10^18, private keys, and the wallet.
pub fn anvil_listing(accounts: &[EthDevAccount], balance: u128) -> String {
    let whole = balance / 10u128.pow(18);
    let fraction = balance % 10u128.pow(18);
    let mut text = String::new();
    let _ = writeln!(text, "Available Accounts\n==================\n");
    for (i, account) in accounts.iter().enumerate() {
        let _ = writeln!(
            text,
            "({i}) {} ({whole}.{fraction:018} ETH)",
            checksummed(&account.address())
        );
    }
    let _ = writeln!(text, "\nPrivate Keys\n==================\n");
    for (i, account) in accounts.iter().enumerate() {
        let _ = writeln!(text, "({i}) 0x{}", hex::encode(account.private_key));
    }
    let _ = writeln!(text, "\nWallet\n==================");
    let _ = writeln!(text, "Mnemonic:          {TEST_MNEMONIC}");
    let _ = write!(text, "Derivation path:   {DERIVATION_PREFIX}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mnemonic_gives_the_accounts_every_tool_knows() {
        let accounts = derive(3).expect("derives");
        // As anvil, Hardhat and eth-account list them.
        assert_eq!(
            checksummed(&accounts[0].address()),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        assert_eq!(
            hex::encode(accounts[0].private_key),
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
        assert_eq!(
            checksummed(&accounts[1].address()),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
        assert_eq!(
            checksummed(&accounts[2].address()),
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
        );
    }

    #[test]
    fn the_listing_reads_like_anvils() {
        let accounts = derive(1).expect("derives");
        let text = anvil_listing(&accounts, 10_000 * 10u128.pow(18) + 5);
        assert!(text.contains(
            "(0) 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (10000.000000000000000005 ETH)"
        ));
        assert!(
            text.contains("(0) 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
        );
        assert!(text.ends_with("Derivation path:   m/44'/60'/0'/0/"));
    }
}
