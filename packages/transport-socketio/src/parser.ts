/**
 * The socket.io packet parser both ends use: the stock one, with the decoder's attachment
 * limit raised from socket.io's default of 10 to the transport's `maxAttachments`.
 *
 * @module
 */
import { Decoder, Encoder } from 'socket.io-parser';

/** A socket.io `parser` option value (an `Encoder` and a `Decoder` class). */
export interface SocketIoParser {
  readonly Encoder: typeof Encoder;
  readonly Decoder: typeof Decoder;
}

/** Builds a parser whose decoder accepts packets with up to `maxAttachments` binary parts. */
export function createParser(maxAttachments: number): SocketIoParser {
  class LimitedDecoder extends Decoder {
    constructor() {
      super({ maxAttachments });
    }
  }
  return { Encoder, Decoder: LimitedDecoder };
}
