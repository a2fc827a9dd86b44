/**
 * The dialer's side of dinfer's handshake, done by hand over a raw socket, for tests that
 * speak to a listener frame by frame (hostile-input and fuzz tests of a transport).
 *
 * @module
 */
import { DialerHandshake } from '../protocol/handshake.js';
import type { MessageHeader } from '../transport.js';

/** The two steps of a dialer's handshake, for a test to send and check frame by frame. */
export interface HandshakeByHand {
  /** The `auth` header that answers the listener's `hello` header. */
  answer(hello: MessageHeader): Promise<MessageHeader>;
  /**
   * Checks the listener's last header (a `welcome` with a valid proof).
   * @throws DinferError AUTH_FAILED (or the refusal's code) otherwise.
   */
  confirm(welcome: MessageHeader): Promise<void>;
}

/**
 * Starts a dialer's handshake by hand.
 *
 * @param token The cluster token; `undefined` for a cluster that runs without one.
 */
export function handshakeByHand(token: string | undefined): HandshakeByHand {
  const handshake = new DialerHandshake(token);
  return {
    answer: async (hello) => ({ ...(await handshake.answer(hello)) }),
    confirm: async (welcome) => {
      await handshake.confirm(welcome);
    },
  };
}
