//! `dir:PATH`: one JSON file per message, token included, for development and tests.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use super::{Mail, MailError, Transport};

pub struct DirTransport {
    dir: PathBuf,
}

impl DirTransport {
    pub fn new(dir: PathBuf) -> DirTransport {
        DirTransport { dir }
    }
}

impl Transport for DirTransport {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let fail =
            |what: &str, err: std::io::Error| MailError::Send(format!("{what} in the mail dir: {err}"));
        tokio::fs::create_dir_all(&self.dir).await.map_err(|e| fail("cannot create", e))?;
        let json = serde_json::to_vec_pretty(mail).map_err(|e| MailError::Send(e.to_string()))?;
        // UUIDv7 names sort by time. Written under a dot-name and renamed, so whoever reads
        // `*.json` never sees half a file.
        let name = uuid::Uuid::now_v7().to_string();
        let partial = self.dir.join(format!(".{name}.partial"));
        // 0600: a mail file holds a live token (a password reset is an account takeover).
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .await
            .map_err(|e| fail("cannot create a file", e))?;
        file.write_all(&json).await.map_err(|e| fail("cannot write", e))?;
        file.sync_all().await.map_err(|e| fail("cannot write", e))?;
        drop(file);
        tokio::fs::rename(&partial, self.dir.join(format!("{name}.json")))
            .await
            .map_err(|e| fail("cannot rename", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MailKind;

    #[tokio::test]
    async fn writes_one_json_file_per_message() {
        let tmp = tempfile::tempdir().unwrap();
        let transport = DirTransport::new(tmp.path().join("mail"));
        let mail = Mail {
            to: "a@example.com".into(),
            subject: "Reset".into(),
            body: "use tok".into(),
            kind: MailKind::PasswordReset,
            token: "tok".into(),
        };
        transport.send(&mail).await.unwrap();
        transport.send(&mail).await.unwrap();
        let files: Vec<_> =
            std::fs::read_dir(tmp.path().join("mail")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 2);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the server's user may read a mailed token");
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
        assert_eq!(json["to"], "a@example.com");
        assert_eq!(json["kind"], "password_reset");
        assert_eq!(json["token"], "tok");
        assert_eq!(json["subject"], "Reset");
        assert_eq!(json["body"], "use tok");
    }
}
