/**
 * Picks the /24 a test network uses: inside 198.18.0.0/15 (reserved for network
 * benchmark tests, RFC 2544, so unlikely to clash with a real network), starting from a slot
 * derived from the process id and skipping every slot the machine already uses.
 *
 * @module
 */

/** 198.18.0.0/15 holds 512 /24 slots. */
const SLOTS = 512;

/** A chosen /24: `base` is its first three octets, e.g. `198.18.7`. */
export interface Subnet {
  readonly base: string;
  /** `<base>.0/24`. */
  readonly cidr: string;
  /** The address `<base>.<host>`. */
  address(host: number): string;
}

function toNumber(address: string): number {
  const octets = address.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new Error(`not an IPv4 address: ${address}`);
  }
  return octets.reduce((n, o) => n * 256 + o, 0);
}

/** The `[first, last]` addresses of an IPv4 prefix `a.b.c.d/len`. */
function range(prefix: string): [number, number] {
  const [address = '', lengthText = '32'] = prefix.split('/');
  const length = Number(lengthText);
  const size = 2 ** (32 - length);
  const first = Math.floor(toNumber(address) / size) * size;
  return [first, first + size - 1];
}

/** True when two IPv4 prefixes share an address. */
export function overlaps(a: string, b: string): boolean {
  const [a0, a1] = range(a);
  const [b0, b1] = range(b);
  return a0 <= b1 && b0 <= a1;
}

function slotSubnet(slot: number): Subnet {
  const base = `198.${18 + (slot >> 8)}.${slot & 255}`;
  return { base, cidr: `${base}.0/24`, address: (host) => `${base}.${host}` };
}

/**
 * The first free /24 of 198.18.0.0/15, searching from a slot derived from `seed`.
 *
 * @throws Error when all 512 slots overlap a prefix in `inUse`.
 */
export function pickSubnet(seed: number, inUse: readonly string[]): Subnet {
  for (let i = 0; i < SLOTS; i++) {
    const candidate = slotSubnet((seed + i) % SLOTS);
    if (!inUse.some((prefix) => overlaps(prefix, candidate.cidr))) return candidate;
  }
  throw new Error('every /24 of 198.18.0.0/15 is in use on this machine');
}
