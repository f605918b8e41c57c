//! Ethereum methods that do not apply to an atoll node, each answered
//! with -32601 (method not found) and the reason, instead of a bare "not
//! found" that reads like a typo.

use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;

/// The code geth gives an unknown method.
pub const METHOD_NOT_FOUND: i32 = -32601;

/// The methods and why each is not served.
pub const UNSERVED: &[(&str, &str)] = &[
    ("eth_sendTransaction", "the node holds no client keys: sign the transaction in the client and send it with eth_sendRawTransaction"),
    ("eth_sign", "the node holds no client keys: sign in the client"),
    ("eth_signTransaction", "the node holds no client keys: sign in the client"),
    ("eth_signTypedData_v4", "the node holds no client keys: sign in the client"),
    ("eth_coinbase", "atoll has no coinbase: fees are burnt"),
    ("eth_mining", "atoll is not mined"),
    ("eth_hashrate", "atoll is not mined"),
    ("eth_getWork", "atoll is not mined"),
    ("eth_submitWork", "atoll is not mined"),
    ("eth_getUncleByBlockHashAndIndex", "atoll blocks have no uncles"),
    ("eth_getUncleByBlockNumberAndIndex", "atoll blocks have no uncles"),
    ("eth_getUncleCountByBlockHash", "atoll blocks have no uncles"),
    ("eth_getUncleCountByBlockNumber", "atoll blocks have no uncles"),
    ("eth_getProof", "atoll's state tree is not an Ethereum trie: ask atoll_getProof"),
    ("eth_newFilter", "filters are not kept on the node: use eth_getLogs, or eth_subscribe over WebSocket"),
    ("eth_newBlockFilter", "filters are not kept on the node: use eth_getBlockByNumber, or eth_subscribe over WebSocket"),
    ("eth_newPendingTransactionFilter", "filters are not kept on the node"),
    ("eth_getFilterChanges", "filters are not kept on the node: use eth_getLogs"),
    ("eth_getFilterLogs", "filters are not kept on the node: use eth_getLogs"),
    ("eth_uninstallFilter", "filters are not kept on the node"),
    ("eth_blobBaseFee", "atoll carries no blobs"),
];

/// Registers every method of [`UNSERVED`] on `module`.
pub fn register<C: Send + Sync + 'static>(module: &mut RpcModule<C>) -> anyhow::Result<()> {
    for (name, reason) in UNSERVED {
        module
            .register_method(name, move |_, _, _| {
                Err::<(), _>(ErrorObjectOwned::owned(
                    METHOD_NOT_FOUND,
                    format!("{name} is not served: {reason}"),
                    None::<()>,
                ))
            })
            .map_err(|e| anyhow::anyhow!("{name} clashes with a served method: {e}"))?;
    }
    Ok(())
}
