//! Minimal Lower Layer Protocol: each HL7 message travels as `0x0B`, the message, `0x1C 0x0D`.

/// Start block character.
pub const START_BLOCK: u8 = 0x0B;
/// End block characters.
pub const END_BLOCK: [u8; 2] = [0x1C, 0x0D];

/// Why a byte stream is not valid MLLP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MllpError {
    /// Bytes arrived outside a frame (before a start block).
    #[error("{0} bytes arrived outside an MLLP frame")]
    OutsideFrame(usize),
    /// A frame grew past the configured limit without an end block.
    #[error("an MLLP frame exceeded {limit} bytes without an end block")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A start block appeared inside a frame.
    #[error("a start block appeared inside an MLLP frame")]
    NestedStart,
}

/// Wraps one message in an MLLP frame.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(message.len() + 3);
    framed.push(START_BLOCK);
    framed.extend_from_slice(message);
    framed.extend_from_slice(&END_BLOCK);
    framed
}

/// Splits a byte stream into MLLP frames, whatever the boundaries of the reads it arrives in.
/// Memory is bounded by `max_frame_bytes` (plus one read).
///
/// After an error, [`take_discarded`](Self::take_discarded) gives the bytes the error threw
/// away (at most `max_frame_bytes` of them), so the listener can keep them on the dead-letter
/// topic with the reason. Once a frame is refused as too large, the rest of it is dropped up to
/// its end block (or the next start block) without further errors.
#[derive(Debug)]
pub struct MllpDecoder {
    /// Bytes received and not yet returned as a frame.
    buffer: Vec<u8>,
    /// Largest message accepted.
    max_frame_bytes: usize,
    /// What the last error threw away, until taken.
    discarded: Vec<u8>,
    /// Inside a frame already refused as too large: its remaining bytes are dropped.
    skipping_oversized: bool,
}

impl MllpDecoder {
    /// A decoder accepting messages of up to `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        MllpDecoder { buffer: Vec::new(), max_frame_bytes, discarded: Vec::new(), skipping_oversized: false }
    }

    /// The bytes the last error discarded (the stretch outside a frame, the broken or refused
    /// frame's first `max_frame_bytes`), leaving none behind.
    pub fn take_discarded(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.discarded)
    }

    /// Removes the buffer's first `count` bytes for an error, keeping as what it discarded at
    /// most the frame limit of them after the first `skip` (the start block of a frame).
    fn discard(&mut self, count: usize, skip: usize) {
        let kept = count.min(skip + self.max_frame_bytes);
        self.discarded = self.buffer[skip.min(kept)..kept].to_vec();
        self.buffer.drain(..count);
    }

    /// Drops the rest of a frame refused as too large; whether it has ended.
    fn skip_oversized(&mut self) -> bool {
        let end = self.buffer.windows(2).position(|w| w == END_BLOCK).map(|at| at + 2);
        let start = self.buffer.iter().position(|b| *b == START_BLOCK);
        match end.into_iter().chain(start).min() {
            Some(cut) => {
                self.buffer.drain(..cut);
                self.skipping_oversized = false;
                true
            }
            None => {
                // Keep a last 0x1C: it may be the first half of the end block.
                let keep = usize::from(self.buffer.last() == Some(&END_BLOCK[0]));
                self.buffer.drain(..self.buffer.len() - keep);
                false
            }
        }
    }

    /// Adds bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. After an error the
    /// offending bytes are discarded, so the caller may answer the sender and go on.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, MllpError> {
        if self.skipping_oversized && !self.skip_oversized() {
            return Ok(None);
        }
        // Line noise between frames (CR/LF sent by some senders after the end block) is ignored.
        let leading = self.buffer.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
        self.buffer.drain(..leading);
        let Some(&first) = self.buffer.first() else { return Ok(None) };
        if first != START_BLOCK {
            let junk = self.buffer.iter().position(|b| *b == START_BLOCK).unwrap_or(self.buffer.len());
            self.discard(junk, 0);
            return Err(MllpError::OutsideFrame(junk));
        }
        let body = &self.buffer[1..];
        if let Some(nested) = body.iter().position(|b| *b == START_BLOCK)
            && !body[..nested].windows(2).any(|w| w == END_BLOCK)
        {
            self.discard(nested + 1, 1);
            return Err(MllpError::NestedStart);
        }
        match body.windows(2).position(|w| w == END_BLOCK) {
            Some(end) if end > self.max_frame_bytes => {
                self.discard(end + 3, 1);
                Err(MllpError::TooLarge { limit: self.max_frame_bytes })
            }
            Some(end) => {
                let message = body[..end].to_vec();
                self.buffer.drain(..end + 3);
                Ok(Some(message))
            }
            None if body.len() > self.max_frame_bytes + 1 => {
                self.discard(self.buffer.len(), 1);
                self.skipping_oversized = true;
                Err(MllpError::TooLarge { limit: self.max_frame_bytes })
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn frames_split_across_reads_are_reassembled() {
        let mut decoder = MllpDecoder::new(1024);
        let stream = [frame(b"MSH|one"), frame(b"MSH|two")].concat();
        let (a, b) = stream.split_at(5);
        decoder.extend(a);
        assert_eq!(decoder.next_message(), Ok(None));
        decoder.extend(b);
        assert_eq!(decoder.next_message(), Ok(Some(b"MSH|one".to_vec())));
        assert_eq!(decoder.next_message(), Ok(Some(b"MSH|two".to_vec())));
        assert_eq!(decoder.next_message(), Ok(None));
    }

    #[test]
    fn junk_oversize_and_nested_frames_are_errors_and_decoding_goes_on() {
        let mut decoder = MllpDecoder::new(8);
        decoder.extend(b"junk");
        decoder.extend(&frame(b"MSH|ok"));
        assert_eq!(decoder.next_message(), Err(MllpError::OutsideFrame(4)));
        assert_eq!(decoder.next_message(), Ok(Some(b"MSH|ok".to_vec())));
        decoder.extend(&frame(b"MSH|far too long"));
        assert_eq!(decoder.next_message(), Err(MllpError::TooLarge { limit: 8 }));
        decoder.extend(&[START_BLOCK, b'M']);
        decoder.extend(&frame(b"MSH|2"));
        assert_eq!(decoder.next_message(), Err(MllpError::NestedStart));
        assert_eq!(decoder.next_message(), Ok(Some(b"MSH|2".to_vec())));
    }

    #[test]
    fn what_an_error_discards_is_given_once_and_the_rest_of_an_oversized_frame_is_skipped() {
        let mut decoder = MllpDecoder::new(8);
        decoder.extend(b"GET / HTTP/1.1\r\n");
        decoder.extend(&frame(b"MSH|a"));
        assert_eq!(decoder.next_message(), Err(MllpError::OutsideFrame(16)));
        assert_eq!(decoder.take_discarded(), b"GET / HT", "at most the frame limit is kept");
        assert_eq!(decoder.take_discarded(), b"", "taken once");
        assert_eq!(decoder.next_message(), Ok(Some(b"MSH|a".to_vec())));

        // A frame still open past the limit: refused once, its rest (split end block) skipped.
        decoder.extend(&[START_BLOCK]);
        decoder.extend(b"MSH|0123456789");
        assert_eq!(decoder.next_message(), Err(MllpError::TooLarge { limit: 8 }));
        assert_eq!(decoder.take_discarded(), b"MSH|0123");
        decoder.extend(b"more of it\x1c");
        assert_eq!(decoder.next_message(), Ok(None));
        decoder.extend(b"\r");
        decoder.extend(&frame(b"MSH|b"));
        assert_eq!(decoder.next_message(), Ok(Some(b"MSH|b".to_vec())));
        assert_eq!(decoder.take_discarded(), b"");

        // A sender that gives up on a frame and starts another: the abandoned part is kept.
        decoder.extend(&[START_BLOCK, b'M', b'S']);
        decoder.extend(&frame(b"MSH|c"));
        assert_eq!(decoder.next_message(), Err(MllpError::NestedStart));
        assert_eq!(decoder.take_discarded(), b"MS");
        assert_eq!(decoder.next_message(), Ok(Some(b"MSH|c".to_vec())));

        // An oversized frame whose end is in the same read, and one skipped up to a new start block.
        decoder.extend(&frame(b"MSH|far too long"));
        assert_eq!(decoder.next_message(), Err(MllpError::TooLarge { limit: 8 }));
        assert_eq!(decoder.take_discarded(), b"MSH|far ");
        decoder.extend(&[START_BLOCK]);
        decoder.extend(b"MSH|0123456789");
        assert_eq!(decoder.next_message(), Err(MllpError::TooLarge { limit: 8 }));
        decoder.extend(b"rest");
        decoder.extend(&frame(b"MSH|d"));
        assert_eq!(decoder.next_message(), Ok(Some(b"MSH|d".to_vec())));
    }

    proptest! {
        #[test]
        fn any_messages_round_trip_through_frames_and_arbitrary_read_sizes(
            messages in proptest::collection::vec(proptest::collection::vec(0x20u8..0x7f, 0..200), 1..5),
            chunk in 1usize..64,
        ) {
            let stream: Vec<u8> = messages.iter().flat_map(|m| frame(m)).collect();
            let mut decoder = MllpDecoder::new(1 << 20);
            let mut received = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.extend(piece);
                while let Some(message) = decoder.next_message().unwrap() {
                    received.push(message);
                }
            }
            prop_assert_eq!(received, messages);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let mut decoder = MllpDecoder::new(64);
            decoder.extend(&bytes);
            for _ in 0..bytes.len() + 1 {
                let _ = decoder.next_message();
            }
        }
    }
}
