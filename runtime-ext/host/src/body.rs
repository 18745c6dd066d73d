//! A request body with a deadline for all of it: a client sending its body a byte at a time
//! would otherwise hold its request, and an instance, for as long as it likes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error as HttpError;

/// `inner`, failing with `connection-read-timeout` once `timeout` has passed since it was made.
pub struct Deadline<B> {
    inner: Pin<Box<B>>,
    expires: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner: Box::pin(inner),
            expires: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<B: Body<Error = HttpError>> Body for Deadline<B> {
    type Data = B::Data;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = self.inner.as_mut().poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.expires.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_slower_than_its_deadline_fails() {
        // A byte every 50 ms, ten in all: 500 ms, past a 200 ms deadline.
        let drip = futures::stream::unfold(0, |sent| async move {
            (sent < 10).then_some(())?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok(Frame::data(bytes::Bytes::from_static(b"x"))), sent + 1))
        });
        let body = http_body_util::StreamBody::new(drip);
        let mut body = Deadline::new(body, Duration::from_millis(200));
        let mut got = 0;
        loop {
            match body.frame().await {
                Some(Ok(_)) => got += 1,
                Some(Err(HttpError::ConnectionReadTimeout)) => break,
                other => panic!("expected the deadline, got {other:?} after {got} frames"),
            }
        }
        assert!((2..10).contains(&got), "{got} frames before the deadline");
    }

    #[tokio::test]
    async fn a_body_within_its_deadline_is_whole() {
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"whole"))
            .map_err(|never| match never {});
        let body = Deadline::new(body, Duration::from_secs(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"whole");
    }
}
