//! The request-response wire format: a 4-byte big-endian length, then that
//! many bytes, refused past the limit before anything is read into memory.

use futures::prelude::*;
use libp2p::request_response;
use libp2p::StreamProtocol;
use std::io;

/// Length-prefixed byte messages of at most `limit` bytes.
#[derive(Clone, Debug)]
pub struct BytesCodec {
    /// The largest request or response accepted.
    pub limit: usize,
}

/// Reads one message: its 4-byte big-endian length, refused over `limit`
/// before anything more is read, then that many bytes. What the codec
/// reads every request and response with; public for the fuzz target
/// `p2p_framing`.
pub async fn read_framed<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {len} bytes, over the limit of {limit}"),
        ));
    }
    // Read what actually arrives (up to the announced length) instead of
    // allocating the announced length up front.
    let mut buf = Vec::new();
    io.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} of {len} announced bytes", buf.len()),
        ));
    }
    Ok(buf)
}

/// Writes `data` as one message (refused over `limit`) and closes the
/// stream; public for the fuzz target `p2p_framing`.
pub async fn write_framed<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    data: Vec<u8>,
    limit: usize,
) -> io::Result<()> {
    if data.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message of {} bytes, over the limit of {limit}",
                data.len()
            ),
        ));
    }
    let len = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message over 4 GiB"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&data).await?;
    io.close().await
}

impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_framed(io, self.limit).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_framed(io, self.limit).await
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
        write_framed(io, req, self.limit).await
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
        write_framed(io, res, self.limit).await
    }
}
