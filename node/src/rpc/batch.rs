//! Batches whose calls run concurrently.
//!
//! jsonrpsee runs the calls of a JSON-RPC batch one after another. For a
//! batch of `atoll_sendTransaction` calls that means one round trip to the
//! admission stage per transaction, so the admission stage saw a handful of
//! transactions at a time (its signature batches stayed small) and every
//! transaction cost two thread wake-ups. This middleware starts every call
//! of a batch at once and answers in request order, so a batch of 500
//! transfers reaches admission as one batch of 500, and a batch is as slow
//! as its slowest call rather than the sum of its calls.
//!
//! Calls per batch are bounded by the server's batch limit
//! ([`super::MAX_BATCH`]), and the answer by the response size limit, as for
//! jsonrpsee's own batches. The limit is applied as answers arrive, not
//! once they are all held: when the answers in hand (kept for the response
//! or waiting for an earlier call) pass it, the batch stops at once with
//! the "batch response was too large" error and its other calls are
//! dropped, so 10,000 `getBlock` calls on a full block hold about one
//! response limit of memory, not gigabytes.

use futures::future::Either;
use futures::stream::{FuturesUnordered, StreamExt};
use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, MethodResponse, Notification, Request, RpcServiceT,
};
use std::collections::BTreeMap;
use std::future::Future;

/// The middleware around the RPC service `S`.
#[derive(Clone)]
pub struct ConcurrentBatches<S> {
    service: S,
    max_response_bytes: usize,
}

impl<S> ConcurrentBatches<S> {
    /// Wraps `service`; batch answers are limited to `max_response_bytes`.
    pub fn new(service: S, max_response_bytes: usize) -> ConcurrentBatches<S> {
        ConcurrentBatches {
            service,
            max_response_bytes,
        }
    }
}

impl<S> RpcServiceT for ConcurrentBatches<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            NotificationResponse = MethodResponse,
            BatchResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.service.call(request)
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.service.notification(notification)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let service = self.service.clone();
        let limit = self.max_response_bytes;
        async move {
            let mut notifications = Vec::new();
            let mut answers = Vec::new();
            for entry in batch {
                match entry {
                    Ok(BatchEntry::Call(request)) => {
                        answers.push(Either::Left(service.call(request)))
                    }
                    Ok(BatchEntry::Notification(notification)) => notifications.push(notification),
                    Err(err) => {
                        let (err, id) = err.into_parts();
                        answers.push(Either::Right(std::future::ready(MethodResponse::error(
                            id, err,
                        ))));
                    }
                }
            }
            let got_notification = !notifications.is_empty();
            for notification in notifications {
                service.notification(notification).await;
            }
            let mut response = BatchResponseBuilder::new_with_limit(limit);
            match in_order_within(answers, limit, &mut response).await {
                Ok(()) => {}
                Err(too_large) => return too_large,
            }
            if response.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(response.finish())
            }
        }
    }
}

/// Runs every call of `answers` at once and appends their answers to
/// `response` in request order. Answers that finish early wait for the
/// ones before them; when the bytes of the answers in hand pass `limit`,
/// stops with the builder's "too large" error (the other calls are
/// dropped unfinished).
async fn in_order_within<F>(
    answers: Vec<F>,
    limit: usize,
    response: &mut BatchResponseBuilder,
) -> Result<(), MethodResponse>
where
    F: Future<Output = MethodResponse>,
{
    let mut running: FuturesUnordered<_> = answers
        .into_iter()
        .enumerate()
        .map(|(index, answer)| async move { (index, answer.await) })
        .collect();
    let mut waiting: BTreeMap<usize, MethodResponse> = BTreeMap::new();
    let (mut next, mut appended, mut waiting_bytes) = (0, 0usize, 0usize);
    while let Some((index, answer)) = running.next().await {
        waiting_bytes += answer.as_json().get().len();
        waiting.insert(index, answer);
        while let Some(answer) = waiting.remove(&next) {
            let size = answer.as_json().get().len();
            waiting_bytes -= size;
            appended += size;
            response.append(answer)?;
            next += 1;
        }
        if appended.saturating_add(waiting_bytes) > limit {
            // The whole answer cannot fit: fail now, as the builder would
            // once it got there.
            return Err(too_large(limit));
        }
    }
    Ok(())
}

/// The error of a batch whose answers pass `limit` bytes (the one
/// jsonrpsee gives for its own batches).
fn too_large(limit: usize) -> MethodResponse {
    MethodResponse::error(
        jsonrpsee::types::Id::Null,
        jsonrpsee::types::error::reject_too_big_batch_response(limit),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonrpsee::types::Id;
    use jsonrpsee::ResponsePayload;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn answer(index: usize, bytes: usize) -> MethodResponse {
        let payload = ResponsePayload::success("x".repeat(bytes));
        MethodResponse::response(Id::Number(index as u64), payload, usize::MAX)
    }

    /// Regression (hostile clients): every answer of a batch was held
    /// before the limit applied. Now a batch stops as soon as the answers
    /// in hand pass the limit: about limit / answer size calls finish,
    /// not all 10,000.
    #[tokio::test]
    async fn a_batch_stops_once_its_answers_pass_the_limit() {
        let finished = AtomicUsize::new(0);
        let calls: Vec<_> = (0..10_000)
            .map(|i| {
                let finished = &finished;
                async move {
                    tokio::task::yield_now().await;
                    finished.fetch_add(1, Ordering::Relaxed);
                    answer(i, 1_000)
                }
            })
            .collect();
        let limit = 100_000;
        let mut response = BatchResponseBuilder::new_with_limit(limit);
        let err = in_order_within(calls, limit, &mut response)
            .await
            .expect_err("10 MB of answers do not fit in 100 kB");
        assert!(err.as_json().get().contains("-32011"), "{}", err.as_json());
        let finished = finished.load(Ordering::Relaxed);
        assert!(finished <= 200, "{finished} calls ran to the end");
    }

    #[tokio::test]
    async fn answers_come_in_request_order_whatever_order_they_finish_in() {
        let calls: Vec<_> = (0..50usize)
            .map(|i| async move {
                for _ in 0..(50 - i) {
                    tokio::task::yield_now().await;
                }
                answer(i, 10)
            })
            .collect();
        let mut response = BatchResponseBuilder::new_with_limit(1 << 20);
        in_order_within(calls, 1 << 20, &mut response)
            .await
            .expect("fits");
        let json = MethodResponse::from_batch(response.finish());
        let ids: Vec<u64> = serde_json::from_str::<Vec<serde_json::Value>>(json.as_json().get())
            .expect("a JSON array")
            .iter()
            .map(|v| v["id"].as_u64().expect("an id"))
            .collect();
        assert_eq!(ids, (0..50).collect::<Vec<u64>>());
    }
}
