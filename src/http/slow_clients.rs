//! Slow-client (slow-loris) protection. poem closes a connection only after it has been
//! completely idle, so a client that trickles one header byte every few seconds could hold
//! a connection forever. Here every connection must see the server write something (that
//! is, finish a request) within a deadline from when it opened or last got an answer;
//! otherwise it is closed. Every request latchkey serves is small and quick, so an honest
//! client never meets the deadline.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps an acceptor so each of its connections carries the deadline.
pub struct SlowClientGuard<A> {
    inner: A,
    deadline: Duration,
}

impl<A> SlowClientGuard<A> {
    pub fn new(inner: A, deadline: Duration) -> Self {
        SlowClientGuard { inner, deadline }
    }
}

impl<A: Acceptor> Acceptor for SlowClientGuard<A> {
    type Io = DeadlineIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let timer = Box::pin(tokio::time::sleep(self.deadline));
        Ok((DeadlineIo { inner: io, timer, deadline: self.deadline }, local, remote, scheme))
    }
}

/// A connection that fails its reads once the deadline passes with nothing written.
pub struct DeadlineIo<T> {
    inner: T,
    timer: Pin<Box<Sleep>>,
    deadline: Duration,
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Polling the timer also registers the waker, so a stalled client is woken up
        // (and dropped) even when it sends nothing at all.
        if self.timer.as_mut().poll(cx).is_ready() {
            // Not silent: an operator seeing these under load (rather than under attack)
            // has requests waiting longer than the deadline, e.g. a too long --hash-queue.
            tracing::info!(
                deadline_secs = self.deadline.as_secs(),
                "closed a connection that got no answer within the deadline"
            );
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client too slow")));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            // An answer went out: the client has a fresh deadline for its next request.
            let next = Instant::now() + self.deadline;
            self.timer.as_mut().reset(next);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
