//! An interface engine's end of an MLLP connection, for tests and benchmarks of the HL7 v2
//! listener: it frames one message, sends it and waits for the acknowledgement before the next,
//! as engines do.

use std::{net::SocketAddr, time::Duration};

use sluice_producers::hl7::{
    message::Message,
    mllp::{MllpDecoder, frame},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

/// Why a message got no acknowledgement.
#[derive(Debug, thiserror::Error)]
pub enum NoAck {
    /// The message could not be written (the listener closed or refused the connection).
    #[error("the message could not be sent: {0}")]
    Send(std::io::Error),
    /// The connection ended, or failed, before an acknowledgement came.
    #[error("the listener closed the connection before its ACK")]
    Closed,
    /// What came back is not MLLP (a TLS alert to a plain-TCP sender, say).
    #[error("the answer is not an MLLP frame: {0}")]
    NotMllp(sluice_producers::hl7::mllp::MllpError),
    /// The frame that came back is not an HL7 v2 message.
    #[error("the ACK is not HL7 v2: {0}")]
    NotHl7(String),
    /// Nothing came back in time.
    #[error("no ACK within {0:?}")]
    Timeout(Duration),
}

/// One connection of a sending interface engine.
pub struct MllpSender<S> {
    /// The connection: plain TCP, or TLS.
    stream: S,
    /// Reassembles the listener's frames from what is read.
    decoder: MllpDecoder,
    /// How long to wait for each acknowledgement.
    timeout: Duration,
}

impl MllpSender<TcpStream> {
    /// Connects over plain TCP.
    pub async fn connect(address: SocketAddr) -> std::io::Result<Self> {
        Ok(Self::new(TcpStream::connect(address).await?))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> MllpSender<S> {
    /// A sender on an open connection, waiting up to 60 seconds for each acknowledgement.
    pub fn new(stream: S) -> Self {
        MllpSender { stream, decoder: MllpDecoder::new(1 << 20), timeout: Duration::from_secs(60) }
    }

    /// Waits up to `timeout` for each acknowledgement instead.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Frames `message` (segments ended by carriage returns), sends it and returns its
    /// acknowledgement with the framed bytes sent.
    pub async fn send(&mut self, message: &[u8]) -> Result<(Message, usize), NoAck> {
        let framed = frame(message);
        self.stream.write_all(&framed).await.map_err(NoAck::Send)?;
        self.stream.flush().await.map_err(NoAck::Send)?;
        Ok((self.receive_ack().await?, framed.len()))
    }

    /// [`Self::send`] for a test that expects an answer: the acknowledgement, or a panic saying
    /// why none came.
    pub async fn send_expecting_ack(&mut self, message: &[u8]) -> Message {
        self.send(message).await.unwrap_or_else(|no_ack| panic!("{no_ack}")).0
    }

    /// The connection, for a test that writes something other than one framed message.
    pub fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Reads until a whole frame has come back: the answer to what was last written.
    pub async fn receive_ack(&mut self) -> Result<Message, NoAck> {
        let mut buffer = [0u8; 8192];
        loop {
            if let Some(ack) = self.decoder.next_message().map_err(NoAck::NotMllp)? {
                return Message::parse(&ack).map_err(|e| NoAck::NotHl7(e.to_string()));
            }
            let read = tokio::time::timeout(self.timeout, self.stream.read(&mut buffer))
                .await
                .map_err(|_| NoAck::Timeout(self.timeout))?;
            match read {
                Ok(0) | Err(_) => return Err(NoAck::Closed),
                Ok(n) => self.decoder.extend(&buffer[..n]),
            }
        }
    }
}

/// A fixture of `producers/tests/fixtures/hl7` as a sender puts it on the wire: segments ended
/// by carriage returns.
pub fn hl7_fixture(name: &str) -> Vec<u8> {
    let path = crate::repository().join("producers/tests/fixtures/hl7").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    bytes.into_iter().map(|b| if b == b'\n' { b'\r' } else { b }).collect()
}
