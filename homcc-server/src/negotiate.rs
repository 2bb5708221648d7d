//! The files of a compile: every manifest file the cache has is placed in the job root, and the
//! client is asked, in one `Need`, for the chunks and files it lacks (and again for what an
//! upload of another client's failed to bring), until the root is full. Every chunk, inline,
//! cached or uploaded, passes the manifest's bounds before it is placed.

use std::{collections::HashSet, path::Path};

use homcc_proto::{
    codec::encode_chunk, ClientMessage, CompileRequest, Digest, Need, RefusalReason, ServerMessage,
};

use crate::{
    conn::{Conn, Stalled},
    ending::{bad_frame, internal, invalid, limit, refuse, storage, Ending},
    fill::Filler,
    jobroot::JobRoot,
    request::DirCount,
    server::{Record, State},
};

/// Places every manifest file, asking the client for what the cache lacks, until the root is full.
pub async fn negotiate(
    conn: &mut Conn,
    state: &State,
    (req, mut dirs): (&CompileRequest, DirCount),
    job: &JobRoot,
    record: &mut Record,
) -> Result<(), Ending> {
    let cache = &state.cache;
    let limits = &state.config.limits;
    let mut filler = Filler::new(job, cache);
    let mut upload = 0u64;
    if req.manifest.len() > limits.manifest_entries {
        return Err(too_many_files(req.manifest.len(), limits));
    }
    // Thousands of hard links: blocking file work.
    let mut unknown_chunks =
        tokio::task::block_in_place(|| place_manifest(req, cache, &mut filler, &mut dirs, limits))?;
    let mut first = true;
    loop {
        let need = Need {
            chunks: std::mem::take(&mut unknown_chunks),
            blobs: filler.take_unrequested(),
        };
        upload = within_upload_bounds(&filler, &need.blobs, upload, limits)?;
        if first || !need.is_empty() {
            conn.send(ServerMessage::Need(need.clone()))
                .await
                .map_err(|e| Ending::Lost(e.to_string()))?;
            first = false;
        }
        receive(conn, state, &need, (&mut filler, &mut dirs), record).await?;
        if filler.waiting_on_others() {
            // Other clients' uploads may take long on thin links: heartbeats keep ours waiting.
            let waiting = std::time::Instant::now();
            conn.with_heartbeats(filler.await_other_jobs(state.config.idle_timeout / 2))
                .await??;
            record.upload_wait += waiting.elapsed();
        }
        if !filler.waiting_on_others() && unknown_chunks.is_empty() && !filler.has_unrequested() {
            break;
        }
    }
    record.files = filler.files;
    Ok(())
}

/// Caches the inline chunks and places the files of every chunk the cache has; returns the
/// chunks it lacks.
fn place_manifest(
    req: &CompileRequest,
    cache: &crate::cache::Cache,
    filler: &mut Filler<'_>,
    dirs: &mut DirCount,
    limits: &crate::server::Limits,
) -> Result<Vec<Digest>, Ending> {
    let mut unknown_chunks = Vec::new();
    for chunk_ref in &req.manifest {
        match &chunk_ref.inline {
            Some(chunk) => {
                let bytes = encode_chunk(chunk);
                if Digest::of(&bytes) != chunk_ref.digest {
                    return Err(invalid(format!(
                        "chunk {} does not match its digest",
                        chunk.dir
                    )));
                }
                fits(filler, dirs, chunk, limits)?;
                cache.insert(&chunk_ref.digest, &bytes).map_err(storage)?;
                filler.add_chunk(chunk)?;
            }
            None => match cache.chunk(&chunk_ref.digest).map_err(internal)? {
                Some(chunk) => {
                    fits(filler, dirs, &chunk, limits)?;
                    filler.add_chunk(&chunk)?;
                }
                None => unknown_chunks.push(chunk_ref.digest),
            },
        }
    }
    Ok(unknown_chunks)
}

/// Refuses a chunk that would take the manifest over `max_manifest_entries` files or the job's
/// directories over their bounds (`request::DirCount`), before anything of it is cached or
/// placed (a refused request leaves nothing behind): every chunk, inline, cached or uploaded,
/// passes here before `Filler::add_chunk`.
fn fits(
    filler: &Filler<'_>,
    dirs: &mut DirCount,
    chunk: &homcc_proto::Chunk,
    limits: &crate::server::Limits,
) -> Result<(), Ending> {
    let count = filler.files.saturating_add(chunk.files.len());
    if count > limits.manifest_entries {
        return Err(too_many_files(count, limits));
    }
    *dirs = dirs.add(Path::new(&chunk.dir), limits)?;
    Ok(())
}

fn too_many_files(count: usize, limits: &crate::server::Limits) -> Ending {
    limit(format!(
        "the manifest lists {count} files, more than {} (max_manifest_entries)",
        limits.manifest_entries
    ))
}

/// The bytes to upload once `blobs` are too (`upload` so far), or the bound they pass: each
/// file at most `max_file_size`, all of them at most `max_upload_size`.
fn within_upload_bounds(
    filler: &Filler<'_>,
    blobs: &[Digest],
    mut upload: u64,
    limits: &crate::server::Limits,
) -> Result<u64, Ending> {
    for digest in blobs {
        let size = filler.expected_size(digest).unwrap_or(0);
        if size > limits.file_size {
            return Err(limit(format!(
                "a file of {size} bytes is larger than {} bytes (max_file_size)",
                limits.file_size
            )));
        }
        upload = upload.saturating_add(size);
        if upload > limits.upload_size {
            return Err(limit(format!(
                "the files to upload are larger than {} bytes together (max_upload_size)",
                limits.upload_size
            )));
        }
    }
    Ok(upload)
}

/// Reads the client's uploads until everything `need` named has arrived.
async fn receive(
    conn: &mut Conn,
    state: &State,
    need: &Need,
    (filler, dirs): (&mut Filler<'_>, &mut DirCount),
    record: &mut Record,
) -> Result<(), Ending> {
    let mut chunks: HashSet<Digest> = need.chunks.iter().copied().collect();
    let mut blobs: HashSet<Digest> = need.blobs.iter().copied().collect();
    let pace = conn.pace(state.config.min_upload_rate);
    while !chunks.is_empty() || !blobs.is_empty() {
        let waiting = std::time::Instant::now();
        let frame = conn.next_paced(&pace).await;
        record.upload_wait += waiting.elapsed();
        let frame = frame.map_err(|stalled| match stalled {
            Stalled::Silent => {
                Ending::Lost(format!("upload silent for {} s", conn.idle().as_secs()))
            }
            Stalled::Slow(rate) => refuse(
                RefusalReason::Timeout,
                format!("the upload averaged less than {rate} bytes/s (min_upload_rate): too slow a link to compile here"),
            ),
        })?;
        match frame {
            None => {
                return Err(Ending::Lost(
                    "client closed the connection during the upload".into(),
                ))
            }
            Some(Err(e)) => return Err(bad_frame(e)),
            Some(Ok(ClientMessage::Chunks(list))) => tokio::task::block_in_place(|| {
                for chunk in list {
                    let bytes = encode_chunk(&chunk);
                    let digest = Digest::of(&bytes);
                    if !chunks.remove(&digest) {
                        return Err(invalid(format!("chunk {} was not asked for", chunk.dir)));
                    }
                    fits(filler, dirs, &chunk, &state.config.limits)?;
                    state.cache.insert(&digest, &bytes).map_err(storage)?;
                    filler.add_chunk(&chunk)?;
                    record.chunks_in += 1;
                }
                Ok(())
            })?,
            Some(Ok(ClientMessage::Blob(blob))) => {
                if !blobs.remove(&blob.digest) {
                    return Err(invalid(format!("blob {} was not asked for", blob.digest)));
                }
                let size = filler.expected_size(&blob.digest).unwrap_or(0);
                if blob.payload.size != size {
                    return Err(invalid(format!(
                        "blob {} is {} bytes, the manifest says {size}",
                        blob.digest, blob.payload.size
                    )));
                }
                let digest = blob.digest;
                // The file unpacked beside the payload, until it is written.
                let unpacked = usize::try_from(size).unwrap_or(usize::MAX);
                let _memory = (state.frame_memory)
                    .take(unpacked.saturating_add(blob.payload.data.len()))
                    .map_err(bad_frame)?;
                let bytes = tokio::task::spawn_blocking(move || {
                    let bytes = blob.payload.unpack(size)?;
                    Ok::<_, homcc_proto::CompressionError>(
                        (Digest::of(&bytes) == digest).then_some(bytes),
                    )
                })
                .await
                .map_err(internal)?
                .map_err(invalid)?
                .ok_or_else(|| invalid(format!("blob {digest} does not match its digest")))?;
                tokio::task::block_in_place(|| filler.complete_upload(&digest, &bytes))?;
                record.blobs_in += 1;
            }
            Some(Ok(ClientMessage::Compile(_))) => {
                return Err(invalid("a second Compile request on one connection"))
            }
            Some(Ok(ClientMessage::Auth { .. })) => {
                return Err(invalid("an Auth frame during the upload"))
            }
            // Sent over SSH after an empty first Need, before this second one: nothing to do.
            Some(Ok(ClientMessage::Ready)) => {}
        }
    }
    Ok(())
}
