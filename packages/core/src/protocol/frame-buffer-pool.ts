/**
 * Reuse of the buffers that large incoming frames are assembled in.
 *
 * A pipeline receives one activation per request per hop, 1.6 MB for ResNet50, and keeps it
 * until the next stage has answered: long enough to outlive a young-generation GC, so every
 * buffer ends up in the old generation and V8 runs a full mark-compact every few requests to
 * free them (measured: receiving 1.6 MB frames held for 150 ms costs twice the CPU of the
 * same frames dropped at once). The {@link FrameDecoder} takes the body of every frame of at
 * least {@link POOLED_FRAME_BYTES} from here; whoever holds the last view of a decoded
 * envelope's attachments gives the body back with {@link releaseAttachments} once it will
 * never read them again, and the next frame of the same size reuses it.
 *
 * Only bodies this pool allocated are taken back (any other buffer is ignored), each at most
 * once until it is handed out again, and at most {@link MAX_IDLE_FRAME_BYTES} wait idle.
 * Giving back a body that is still read elsewhere corrupts that reader's data: release only
 * as the sole, last reader.
 *
 * @module
 */

/** Frames bodies at least this big come from the pool; smaller ones are cheap to allocate. */
export const POOLED_FRAME_BYTES = 64 * 1024;

/** Most bytes of released bodies kept for reuse; beyond, a released body is left to the GC. */
export const MAX_IDLE_FRAME_BYTES = 64 * 1024 * 1024;

const nodeBuffer = (globalThis as { Buffer?: { allocUnsafe(size: number): Uint8Array } }).Buffer;

/** A fresh body of `size` bytes with its own `ArrayBuffer` (uninitialised in Node). */
function allocateOwn(size: number): Uint8Array {
  // Buffer.allocUnsafe hands out slices of a shared slab below 4 KiB, never at these sizes.
  return nodeBuffer === undefined ? new Uint8Array(size) : nodeBuffer.allocUnsafe(size);
}

/** Bodies handed out (`false`) or idle in the pool (`true`), by their buffer. */
const owned = new WeakMap<ArrayBufferLike, boolean>();
const idle = new Map<number, Uint8Array[]>();
let idleBytes = 0;

/**
 * A buffer for a frame body of `size` bytes: an idle one of exactly that size when there is
 * one, else a new one (pooled from `POOLED_FRAME_BYTES` up).
 */
export function allocateFrameBody(size: number): Uint8Array {
  if (size < POOLED_FRAME_BYTES) return allocateOwn(size);
  const reused = idle.get(size)?.pop();
  if (reused !== undefined) {
    idleBytes -= size;
    owned.set(reused.buffer, false);
    return reused;
  }
  const body = allocateOwn(size);
  if (body.byteOffset === 0 && body.buffer.byteLength === size) owned.set(body.buffer, false);
  return body;
}

/**
 * Gives back the frame bodies behind `attachments` (views of envelopes a `FrameDecoder`
 * produced), for reuse by later frames. Call it only when nothing will read any view of
 * those envelopes again: attachments, tensors decoded from them, or anything else sharing
 * their buffers. Attachments of other origins, and bodies given back already, are ignored.
 */
export function releaseAttachments(attachments: readonly Uint8Array[]): void {
  for (const attachment of attachments) {
    const buffer = attachment.buffer;
    if (owned.get(buffer) !== false) continue;
    const size = buffer.byteLength;
    if (idleBytes + size > MAX_IDLE_FRAME_BYTES) {
      owned.delete(buffer);
      continue;
    }
    owned.set(buffer, true);
    const list = idle.get(size);
    const body = new Uint8Array(buffer, 0, size);
    if (list === undefined) idle.set(size, [body]);
    else list.push(body);
    idleBytes += size;
  }
}

/** Bytes of released bodies waiting for reuse (for tests and metrics). */
export function idleFrameBytes(): number {
  return idleBytes;
}
