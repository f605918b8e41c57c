//! `eth_subscribe`: `newHeads` (each new block's header, as
//! `eth_getBlockByNumber` shows it without transactions) and `logs` (each
//! log of a new block that matches a filter), over WebSocket.
//!
//! A new block is a new beacon height. The stream wakes on each final
//! shard head (a beacon block records them) and at least every
//! [`POLL`], and sends every height it has not sent, in order.

use super::super::error::invalid_params;
use super::super::server::Rpc;
use super::chain::log_object;
use super::logs::{LogFilter, Matcher};
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::{PendingSubscriptionSink, SubscriptionSink};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::broadcast;

/// Longest a stream waits before it looks for new blocks by itself.
pub const POLL: Duration = Duration::from_secs(1);

/// What a subscription sends.
enum Stream {
    Heads,
    Logs(Matcher),
}

impl Rpc {
    pub(super) async fn eth_subscribe(
        &self,
        pending: PendingSubscriptionSink,
        kind: String,
        filter: Option<LogFilter>,
    ) -> SubscriptionResult {
        let stream = match (kind.as_str(), filter) {
            ("newHeads", None) => Ok(Stream::Heads),
            ("newHeads", Some(_)) => Err(invalid_params("newHeads takes no filter")),
            ("logs", filter) => {
                let filter = filter.unwrap_or_default();
                if filter.from_block.is_some()
                    || filter.to_block.is_some()
                    || filter.block_hash.is_some()
                {
                    Err(invalid_params(
                        "a logs subscription follows new blocks: give only address and topics",
                    ))
                } else {
                    Matcher::new(&filter).map(Stream::Logs)
                }
            }
            (other, _) => Err(invalid_params(format!(
                "unknown subscription {other:?}; the ones offered are \"newHeads\" and \"logs\""
            ))),
        };
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                self.node.metrics().rpc("eth_subscribe", "invalid_params");
                pending.reject(error).await;
                return Ok(());
            }
        };
        let mut heads = self.node.subscribe_final_heads();
        let mut sent = self.node.eth_head().unwrap_or(0);
        let mut sink = pending.accept().await?;
        self.node.metrics().rpc("eth_subscribe", "ok");
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                head = heads.recv() => match head {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = tokio::time::sleep(POLL) => {}
            }
            let newest = self.node.eth_head().map_err(|e| e.to_string())?;
            while sent < newest {
                sent += 1;
                self.send_block(&mut sink, &stream, sent)?;
            }
        }
    }

    /// Sends what `stream` wants of block `number`.
    fn send_block(
        &self,
        sink: &mut SubscriptionSink,
        stream: &Stream,
        number: u64,
    ) -> Result<(), String> {
        let messages: Vec<Value> = match stream {
            Stream::Heads => {
                let Some(mut header) = self.eth_block(number, false).map_err(|e| e.to_string())?
                else {
                    return Ok(());
                };
                if let Value::Object(fields) = &mut header {
                    fields.remove("transactions");
                    fields.remove("uncles");
                }
                vec![header]
            }
            Stream::Logs(matcher) => {
                let Some(block) = self.node.eth_block(number).map_err(|e| e.to_string())? else {
                    return Ok(());
                };
                block
                    .logs()
                    .filter(|at| matcher.matches(at.log))
                    .map(|at| log_object(&at, &block))
                    .collect()
            }
        };
        for message in messages {
            let message = serde_json::value::to_raw_value(&message).map_err(|e| e.to_string())?;
            // A client that does not read fills its connection's bounded
            // buffer; it is dropped rather than buffered.
            if sink.try_send(message).is_err() {
                return Err("the subscriber does not keep up; subscription closed".into());
            }
        }
        Ok(())
    }
}
