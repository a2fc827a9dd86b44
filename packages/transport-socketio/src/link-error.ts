/**
 * What a socket.io disconnect means for a channel.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';

/**
 * The error a socket.io disconnect `reason` stands for: `FRAME_TOO_LARGE` when the WebSocket
 * layer refused a message above `maxHttpBufferSize` (checked from the frame header, before
 * the bytes are buffered), else `TRANSPORT_CLOSED` (the peer left or the link dropped).
 */
export function linkError(
  reason: string,
  description: unknown,
  remoteAddress: string,
  maxMessageBytes: number,
): DinferError {
  const detail = description instanceof Error ? description.message : String(description ?? '');
  if (reason === 'transport error' && /max payload size exceeded/i.test(detail)) {
    return new DinferError(
      DinferErrorCode.FRAME_TOO_LARGE,
      `${remoteAddress} sent a WebSocket message above ${maxMessageBytes} bytes (one piece + overhead)`,
      { details: { remoteAddress, maxMessageBytes } },
    );
  }
  return new DinferError(DinferErrorCode.TRANSPORT_CLOSED, `link to ${remoteAddress} lost: ${reason}`, {
    details: { reason, ...(detail === '' ? {} : { description: detail }) },
  });
}
