//! The sync protocol codec: one length-prefixed frame per direction per stream.
//!
//! Frame = `u32` big-endian payload length, then exactly that many payload bytes. The
//! requester writes one request frame and closes its write half; the responder writes one
//! response frame and closes. The length is checked against the configured bound *before*
//! any payload buffer is allocated or read, so a peer can never make us buffer more than the
//! bound.

use std::io;

use async_trait::async_trait;
use futures::prelude::*;
use libp2p::StreamProtocol;
use libp2p::request_response;

/// Why a sync frame could not be read or written; carried inside [`io::Error`] so the
/// swarm task can map a failed request to the right [`super::NetworkError`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The announced (or, when writing, the actual) payload length exceeds the bound.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// The remote closed the stream before sending a single byte of the response frame.
    #[error("stream closed without a response")]
    NoResponse,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {expected} bytes)")]
    Truncated { got: usize, expected: usize },
}

impl FrameError {
    fn into_io(self) -> io::Error {
        let kind = match self {
            FrameError::TooLarge { .. } => io::ErrorKind::InvalidData,
            FrameError::NoResponse | FrameError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
        };
        io::Error::new(kind, self)
    }

    /// Recovers a [`FrameError`] from an [`io::Error`] produced by this codec.
    pub(crate) fn from_io(e: &io::Error) -> Option<&FrameError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<FrameError>())
    }
}

/// Length-prefixed `Vec<u8>` codec for the `/cairn/{namespace}/sync/6` protocol.
#[derive(Clone, Debug)]
pub(crate) struct SyncCodec {
    /// Largest request payload accepted or sent, in bytes.
    pub(crate) request_max: usize,
    /// Largest response payload accepted or sent, in bytes.
    pub(crate) response_max: usize,
}

const LEN_PREFIX: usize = 4;

/// Reads the 4-byte length prefix. `Ok(None)` if the stream ended before its first byte.
async fn read_len<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Option<usize>> {
    let mut buf = [0u8; LEN_PREFIX];
    let mut got = 0;
    while got < LEN_PREFIX {
        let n = io.read(&mut buf[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                got,
                expected: LEN_PREFIX,
            }
            .into_io());
        }
        got += n;
    }
    Ok(Some(u32::from_be_bytes(buf) as usize))
}

/// Reads one frame whose payload must not exceed `max` bytes.
async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
    empty: FrameError,
) -> io::Result<Vec<u8>> {
    let Some(len) = read_len(io).await? else {
        return Err(empty.into_io());
    };
    if len > max {
        return Err(FrameError::TooLarge { len, max }.into_io());
    }
    // Bounded by `max` (checked above), so this allocation is safe.
    let mut data = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = io.read(&mut data[got..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated { got, expected: len }.into_io());
        }
        got += n;
    }
    Ok(data)
}

/// Writes one frame; refuses (without writing anything) if the payload exceeds `max` bytes.
async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    data: &[u8],
    max: usize,
) -> io::Result<()> {
    if data.len() > max {
        return Err(FrameError::TooLarge {
            len: data.len(),
            max,
        }
        .into_io());
    }
    let len = u32::try_from(data.len()).map_err(|_| {
        FrameError::TooLarge {
            len: data.len(),
            max,
        }
        .into_io()
    })?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(data).await?;
    io.flush().await
}

#[async_trait]
impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(
            io,
            self.request_max,
            FrameError::Truncated {
                got: 0,
                expected: LEN_PREFIX,
            },
        )
        .await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.response_max, FrameError::NoResponse).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.request_max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, self.response_max).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use request_response::Codec as _;

    fn codec() -> SyncCodec {
        SyncCodec {
            request_max: 16,
            response_max: 32,
        }
    }

    fn proto() -> StreamProtocol {
        StreamProtocol::new("/cairn/test/sync/1")
    }

    #[tokio::test]
    async fn roundtrip_request_and_response() {
        let mut c = codec();
        let mut buf = Cursor::new(Vec::new());
        c.write_request(&proto(), &mut buf, b"hello".to_vec())
            .await
            .unwrap();
        assert_eq!(buf.get_ref(), &[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
        buf.set_position(0);
        assert_eq!(c.read_request(&proto(), &mut buf).await.unwrap(), b"hello");

        let mut buf = Cursor::new(Vec::new());
        c.write_response(&proto(), &mut buf, vec![7; 32])
            .await
            .unwrap();
        buf.set_position(0);
        assert_eq!(
            c.read_response(&proto(), &mut buf).await.unwrap(),
            vec![7; 32]
        );
    }

    #[tokio::test]
    async fn empty_payload_is_valid() {
        let mut c = codec();
        let mut buf = Cursor::new(vec![0, 0, 0, 0]);
        assert_eq!(
            c.read_response(&proto(), &mut buf).await.unwrap(),
            Vec::<u8>::new()
        );
    }

    #[tokio::test]
    async fn oversize_length_prefix_is_refused_before_reading_payload() {
        let mut c = codec();
        // Announces 4 GiB - 1 but carries nothing: must fail on the prefix alone.
        let mut buf = Cursor::new(vec![0xff, 0xff, 0xff, 0xff]);
        let err = c.read_request(&proto(), &mut buf).await.unwrap_err();
        assert!(matches!(
            FrameError::from_io(&err),
            Some(FrameError::TooLarge {
                len: 0xffff_ffff,
                max: 16
            })
        ));
        assert_eq!(buf.position(), 4, "no payload byte may be read");

        let mut buf = Cursor::new([0u32.to_be_bytes().to_vec(), vec![]].concat());
        buf.get_mut()[3] = 33;
        let err = c.read_response(&proto(), &mut buf).await.unwrap_err();
        assert!(matches!(
            FrameError::from_io(&err),
            Some(FrameError::TooLarge { len: 33, max: 32 })
        ));
    }

    #[tokio::test]
    async fn oversize_write_is_refused_without_writing() {
        let mut c = codec();
        let mut buf = Cursor::new(Vec::new());
        let err = c
            .write_request(&proto(), &mut buf, vec![0; 17])
            .await
            .unwrap_err();
        assert!(matches!(
            FrameError::from_io(&err),
            Some(FrameError::TooLarge { len: 17, max: 16 })
        ));
        assert!(buf.get_ref().is_empty());
        let err = c
            .write_response(&proto(), &mut buf, vec![0; 33])
            .await
            .unwrap_err();
        assert!(matches!(
            FrameError::from_io(&err),
            Some(FrameError::TooLarge { len: 33, max: 32 })
        ));
        assert!(buf.get_ref().is_empty());
    }

    #[tokio::test]
    async fn eof_and_truncation_are_distinguished() {
        let mut c = codec();
        let err = c
            .read_response(&proto(), &mut Cursor::new(Vec::new()))
            .await
            .unwrap_err();
        assert!(matches!(
            FrameError::from_io(&err),
            Some(FrameError::NoResponse)
        ));

        let err = c
            .read_response(&proto(), &mut Cursor::new(vec![0, 0]))
            .await
            .unwrap_err();
        assert!(matches!(
            FrameError::from_io(&err),
            Some(FrameError::Truncated {
                got: 2,
                expected: 4
            })
        ));

        let err = c
            .read_response(&proto(), &mut Cursor::new(vec![0, 0, 0, 3, 1]))
            .await
            .unwrap_err();
        assert!(matches!(
            FrameError::from_io(&err),
            Some(FrameError::Truncated {
                got: 1,
                expected: 3
            })
        ));

        let err = c
            .read_request(&proto(), &mut Cursor::new(Vec::new()))
            .await
            .unwrap_err();
        assert!(matches!(
            FrameError::from_io(&err),
            Some(FrameError::Truncated {
                got: 0,
                expected: 4
            })
        ));
    }
}
