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
//! jsonrpsee's own batches.

use futures::future::{join_all, Either};
use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, MethodResponse, Notification, Request, RpcServiceT,
};
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
            for answer in join_all(answers).await {
                if let Err(too_large) = response.append(answer) {
                    return too_large;
                }
            }
            if response.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(response.finish())
            }
        }
    }
}
