//! The challenge a session opens with when homccd has a token: a fresh random nonce out, the
//! client's proof in, before any request is read (docs/protocol.md §5, *Authentication*).

use std::net::SocketAddr;

use homcc_proto::{
    auth::NONCE_LEN, AuthToken, ClientMessage, CodecError, RefusalReason, ServerMessage,
};

use crate::{
    conn::Conn,
    ending::{refuse, Ending},
};

/// The largest frame read before the client has authenticated. `Auth` has 33 body bytes and a
/// request always has more than this, so a request is refused from its length header, unread.
pub const AUTH_FRAME_LIMIT: usize = 64;

/// What a client without the token is told.
pub const REQUIRED: &str =
    "this server requires authentication: set auth_token_file in [homcc] to the server's token";

/// Sends a challenge and reads the answer; `Ok` when the client proved it holds `token`. The
/// connection then reads frames of up to `max_frame` bytes again.
pub(crate) async fn authenticate(
    conn: &mut Conn,
    token: &AuthToken,
    peer: SocketAddr,
    max_frame: usize,
) -> Result<(), Ending> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| {
        refuse(
            RefusalReason::Internal,
            format!("server error: no random bytes for the authentication challenge: {e}"),
        )
    })?;
    conn.send(ServerMessage::Challenge { nonce })
        .await
        .map_err(|e| Ending::Lost(e.to_string()))?;
    conn.set_max_frame(AUTH_FRAME_LIMIT);
    let why = match conn.next().await {
        Ok(Some(Ok(ClientMessage::Auth { proof }))) if token.verify(&nonce, &proof) => {
            conn.set_max_frame(max_frame);
            return Ok(());
        }
        Ok(None) => return Err(Ending::Lost("closed before authenticating".into())),
        Ok(Some(Err(CodecError::Io(e)))) => return Err(Ending::Lost(e.to_string())),
        Ok(Some(Ok(ClientMessage::Auth { .. }))) => {
            let detail = "authentication failed: the proof does not match this server's token \
                          (auth_token_file in [homcc] must hold the server's token)";
            tracing::warn!(client = %peer, "refused: a wrong authentication proof");
            return Err(refuse(RefusalReason::AuthFailed, detail));
        }
        Ok(Some(Ok(_))) => "its first frame is not Auth".to_owned(),
        Ok(Some(Err(e))) => format!("its first frame is not Auth: {e}"),
        Err(_) => format!("no Auth frame for {} s", conn.idle().as_secs()),
    };
    tracing::warn!(client = %peer, why, "refused: the client did not authenticate");
    Err(refuse(RefusalReason::AuthFailed, REQUIRED))
}
