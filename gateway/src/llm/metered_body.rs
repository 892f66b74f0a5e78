//! The provider's answer on its way to the agent. Each chunk passes through unchanged and
//! unbuffered, read by the usage meter on the way; when the stream ends — finished, broken, or
//! dropped because the agent went away — its tally goes to the recorder, exactly once.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use billing::usage::UsageMeter;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::usage_recorder::{Tally, UsageReport};
use crate::lifecycle::activity::ModelCall;

pub struct MeteredBody<S> {
    upstream: S,
    upstream_status: u16,
    metering: Option<(UsageMeter, UsageReport)>,
    /// Ends (the agent may count as idle again) when the body does.
    _in_flight: ModelCall,
}

impl<S> MeteredBody<S> {
    pub fn new(
        upstream: S,
        upstream_status: u16,
        meter: UsageMeter,
        report: UsageReport,
        in_flight: ModelCall,
    ) -> Self {
        Self { upstream, upstream_status, metering: Some((meter, report)), _in_flight: in_flight }
    }

    fn finish(&mut self, ended_normally: bool) {
        if let Some((meter, report)) = self.metering.take() {
            let reading = meter.finish();
            report.send(Tally {
                upstream_status: self.upstream_status,
                usage: reading.usage,
                complete: ended_normally && reading.reported,
            });
        }
    }
}

impl<S> Stream for MeteredBody<S>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    type Item = reqwest::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(self.upstream.poll_next_unpin(cx));
        match &item {
            Some(Ok(chunk)) => {
                if let Some((meter, _)) = &mut self.metering {
                    meter.feed(chunk);
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the model provider's answer broke off");
                self.finish(false);
            }
            None => self.finish(true),
        }
        Poll::Ready(item)
    }
}

impl<S> Drop for MeteredBody<S> {
    fn drop(&mut self) {
        self.finish(false);
    }
}
