//! HTTP plumbing shared by every route: correlation ids, request logs and
//! metrics, body and header extraction, and `Idempotency-Key` handling.

pub mod correlation;
pub mod deadline;
pub mod extract;
pub mod headers;
pub mod idempotency;
pub mod observe;
pub mod rate;
pub mod server;
pub mod spool;

/// A reply's body holding `T` until the body is done with (sent whole, or
/// dropped when its client leaves): what must last as long as the reply does.
pub(crate) struct Holding<T> {
    pub body: axum::body::Body,
    /// Never read: dropped with the body, which is its purpose.
    #[allow(dead_code)]
    pub held: T,
}

impl<T: Unpin + Send + 'static> http_body::Body for Holding<T> {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
