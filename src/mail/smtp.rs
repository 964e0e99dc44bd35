//! `smtp://…` and `smtps://…` through lettre.
//!
//! - `smtps://host[:465]`: TLS from the first byte.
//! - `smtp://host[:587]`: STARTTLS, required; `?tls=opportunistic` uses it when offered,
//!   `?tls=none` sends in clear text (only for a relay on the same host).
//! - `user:password@` in the URL (percent-encoded) logs in; `?from=` sets the sender,
//!   by default `noreply@` + the issuer's host.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use url::Url;

use super::{Mail, MailError, Transport};

/// One SMTP conversation may take this long before the attempt counts as failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SmtpTransport {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpTransport {
    pub fn new(url: &Url, issuer: &Url) -> Result<SmtpTransport, MailError> {
        let setup = |reason: String| MailError::Setup(reason);
        let mut from = None;
        let mut tls = None;
        let mut rest = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "from" => from = Some(value.into_owned()),
                "tls" => tls = Some(value.into_owned()),
                _ => rest.push((key.into_owned(), value.into_owned())),
            }
        }
        // lettre reads its own `tls` parameter; translate ours (STARTTLS required unless
        // said otherwise) into its spelling.
        let lettre_tls = match (url.scheme(), tls.as_deref()) {
            ("smtps", None) => None,
            ("smtp", None | Some("required")) => Some("required"),
            ("smtp", Some("opportunistic")) => Some("opportunistic"),
            ("smtp", Some("none")) => None,
            (_, Some(other)) => {
                return Err(setup(format!("unknown tls={other:?} (use required, opportunistic or none)")));
            }
            (scheme, None) => return Err(setup(format!("unknown scheme {scheme:?}"))),
        };
        let mut lettre_url = url.clone();
        {
            let mut query = lettre_url.query_pairs_mut();
            query.clear();
            query.extend_pairs(rest);
            if let Some(tls) = lettre_tls {
                query.append_pair("tls", tls);
            }
        }
        if lettre_url.query() == Some("") {
            lettre_url.set_query(None);
        }
        // lettre's error text may quote the URL, and the URL may hold a password.
        let mailer = AsyncSmtpTransport::<Tokio1Executor>::from_url(lettre_url.as_str())
            .map_err(|_| setup("lettre refused the smtp URL".into()))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from_text =
            from.unwrap_or_else(|| format!("noreply@{}", issuer.host_str().unwrap_or("localhost")));
        let from = from_text
            .parse::<Mailbox>()
            .map_err(|_| setup(format!("{from_text:?} is not a sender address; set one with ?from=")))?;
        Ok(SmtpTransport { mailer, from })
    }
}

impl Transport for SmtpTransport {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to = mail.to.parse::<Mailbox>().map_err(|e| MailError::Send(format!("bad recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| MailError::Send(format!("cannot build the message: {e}")))?;
        self.mailer.send(message).await.map_err(|e| MailError::Send(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> Url {
        "https://auth.example.com".parse().unwrap()
    }

    /// The connection pool starts a task, hence the runtime.
    #[tokio::test]
    async fn urls_are_understood() {
        for ok in [
            "smtp://mail.example.com",
            "smtp://user:p%40ss@mail.example.com:587?tls=opportunistic",
            "smtp://localhost:25?tls=none&from=auth@example.com",
            "smtps://user:pw@mail.example.com",
        ] {
            assert!(SmtpTransport::new(&ok.parse().unwrap(), &issuer()).is_ok(), "{ok}");
        }
        for bad in ["smtp://mail.example.com?tls=maybe", "smtp://mail.example.com?from=not-an-address"] {
            assert!(SmtpTransport::new(&bad.parse().unwrap(), &issuer()).is_err(), "{bad}");
        }
    }

    /// Just enough of an SMTP server to accept one message; returns what it received.
    async fn fake_smtp_server(listener: tokio::net::TcpListener) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        let mut received = String::new();
        let mut in_data = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            received.push_str(&line);
            received.push('\n');
            let reply: &[u8] = if in_data {
                if line != "." {
                    continue;
                }
                in_data = false;
                b"250 queued\r\n"
            } else if line.starts_with("EHLO") {
                b"250 fake\r\n"
            } else if line == "DATA" {
                in_data = true;
                b"354 go on\r\n"
            } else if line == "QUIT" {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else {
                b"250 ok\r\n"
            };
            write.write_all(reply).await.unwrap();
        }
        received
    }

    #[tokio::test]
    async fn a_message_reaches_the_smtp_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(fake_smtp_server(listener));
        let url = format!("smtp://127.0.0.1:{port}?tls=none&from=auth@example.com").parse().unwrap();
        let transport = SmtpTransport::new(&url, &issuer()).unwrap();
        let mail = Mail {
            to: "alice@example.com".into(),
            subject: "Verify your email address".into(),
            body: "the token is tok123".into(),
            kind: super::super::MailKind::VerifyEmail,
            token: "tok123".into(),
        };
        transport.send(&mail).await.unwrap();
        drop(transport);
        let received =
            tokio::time::timeout(std::time::Duration::from_secs(5), server).await.unwrap().unwrap();
        assert!(received.contains("MAIL FROM:<auth@example.com>"), "{received}");
        assert!(received.contains("RCPT TO:<alice@example.com>"), "{received}");
        assert!(received.contains("Subject: Verify your email address"), "{received}");
        assert!(received.contains("the token is tok123"), "{received}");
    }

    /// Nothing listens on the port: the attempt fails rather than hangs.
    #[tokio::test]
    async fn an_unreachable_server_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("smtp://127.0.0.1:{port}?tls=none").parse().unwrap();
        let transport = SmtpTransport::new(&url, &issuer()).unwrap();
        let mail = Mail {
            to: "a@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
            kind: super::super::MailKind::VerifyEmail,
            token: "t".into(),
        };
        assert!(transport.send(&mail).await.is_err());
    }
}
