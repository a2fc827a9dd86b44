/**
 * Helpers that put tensors into an {@link Envelope} as a `tensors` message and take them out.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import { decodeTensors, type EncodeTensorsOptions, encodeTensors } from '../tensor/codec.js';
import type { TensorLimits } from '../tensor/descriptor.js';
import type { TensorData } from '../tensor/types.js';
import type { Envelope, MessageHeader } from '../transport.js';
import { parseMessageHeader } from './messages.js';

/** Builds a `tensors` message envelope (the header's `tag` is optional). */
export function tensorsEnvelope(
  tensors: readonly TensorData[],
  options: EncodeTensorsOptions & { tag?: string | undefined } = {},
): Envelope {
  const { descriptors, attachments } = encodeTensors(tensors, options);
  const header = {
    type: 'tensors',
    tensors: descriptors,
    ...(options.tag === undefined ? {} : { tag: options.tag }),
  };
  return { header: header as MessageHeader, attachments };
}

/**
 * Validates a `tensors` message envelope from a peer and decodes its tensors within
 * `limits`. Throws `DINFER_ERR_PROTOCOL` when it is another message, else as
 * {@link decodeTensors}.
 */
export function tensorsFromEnvelope(
  envelope: Envelope,
  limits: TensorLimits,
): { tag?: string; tensors: TensorData[] } {
  const message = parseMessageHeader(envelope.header, { tensors: limits });
  if (message.type !== 'tensors') {
    throw new DinferError(DinferErrorCode.PROTOCOL, `expected a tensors message, got ${message.type}`);
  }
  const tensors = decodeTensors(message.tensors, envelope.attachments, limits);
  return message.tag === undefined ? { tensors } : { tag: message.tag, tensors };
}
