/**
 * The socket.io packet parser both ends use: the stock one, with the decoder accepting at
 * most one binary part per packet (every event of this transport carries exactly one).
 *
 * @module
 */
import { Decoder, Encoder } from 'socket.io-parser';

/** A socket.io `parser` option value (an `Encoder` and a `Decoder` class). */
export interface SocketIoParser {
  readonly Encoder: typeof Encoder;
  readonly Decoder: typeof Decoder;
}

/** Builds a parser whose decoder accepts packets with at most `maxAttachments` binary parts. */
export function createParser(maxAttachments: number): SocketIoParser {
  class LimitedDecoder extends Decoder {
    constructor() {
      super({ maxAttachments });
    }
  }
  return { Encoder, Decoder: LimitedDecoder };
}
