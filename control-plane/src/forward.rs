//! A follower forwards every admin and session request to the leader, as it is (the
//! gRPC request, body streaming included), so that emberctl and data nodes may talk to
//! any control-plane process and a leader change needs nothing of them but to reconnect
//! when the process they talk to goes away. With no leader known, the request is served
//! here: reads answer from this process's copy, changes are refused with "no leader".

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::leadership::Role;

/// Where requests go: here, or to the leader over a channel kept per leader URL.
pub struct Router {
    role: tokio::sync::watch::Receiver<Role>,
    channel: Mutex<Option<(String, Channel)>>,
}

impl Router {
    pub fn new(role: tokio::sync::watch::Receiver<Role>) -> Arc<Self> {
        Arc::new(Self {
            role,
            channel: Mutex::new(None),
        })
    }

    /// The leader's channel, when another process leads.
    fn leader(&self) -> Option<Result<Channel, Status>> {
        let Role::Follower { leader } = self.role.borrow().clone() else {
            return None;
        };
        let mut cached = self.channel.lock().unwrap();
        if let Some((url, channel)) = cached.as_ref() {
            if *url == leader {
                return Some(Ok(channel.clone()));
            }
        }
        let endpoint = match Endpoint::from_shared(leader.clone()) {
            // A leader that stops answering (paused, cut off) fails the requests
            // forwarded to it within about two seconds, so that data nodes reconnect
            // and reach the next leader.
            Ok(e) => e
                .connect_timeout(Duration::from_secs(2))
                .http2_keep_alive_interval(Duration::from_secs(1))
                .keep_alive_timeout(Duration::from_secs(1))
                .keep_alive_while_idle(true),
            Err(e) => {
                return Some(Err(Status::unavailable(format!(
                    "the leader announced an invalid URL {leader}: {e}"
                ))))
            }
        };
        let channel = endpoint.connect_lazy();
        *cached = Some((leader, channel.clone()));
        Some(Ok(channel))
    }
}

/// A gRPC service that a follower forwards (see the module).
#[derive(Clone)]
pub struct Forward<S> {
    inner: S,
    router: Arc<Router>,
}

impl<S> Forward<S> {
    pub fn new(inner: S, router: Arc<Router>) -> Self {
        Self { inner, router }
    }
}

impl<S: NamedService> NamedService for Forward<S> {
    const NAME: &'static str = S::NAME;
}

type Reply = http::Response<Body>;

impl<S> Service<http::Request<Body>> for Forward<S>
where
    S: Service<http::Request<Body>, Response = Reply, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.router.leader() {
            None => {
                let mut inner = self.inner.clone();
                Box::pin(async move {
                    std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                    inner.call(request).await
                })
            }
            Some(Err(status)) => Box::pin(async move { Ok(status.into_http()) }),
            Some(Ok(mut channel)) => Box::pin(async move {
                let ready = std::future::poll_fn(|cx| channel.poll_ready(cx)).await;
                let reply = match ready {
                    Ok(()) => channel.call(request).await,
                    Err(e) => Err(e),
                };
                match reply {
                    Ok(reply) => Ok(reply),
                    Err(e) => Ok(Status::unavailable(format!(
                        "the leading control plane is unreachable from this one: {e}"
                    ))
                    .into_http()),
                }
            }),
        }
    }
}
