/**
 * Names of the namespaces, bridge and veth ends the harness creates. Each name starts with
 * {@link NAME_PREFIX}, a sequence character and the owning process id (base 36), so a later run
 * can tell its own objects from those a crashed run left behind. Interface names stay within
 * the kernel's 15 characters.
 *
 * @module
 */

/** Prefix of every namespace and link the harness creates. */
export const NAME_PREFIX = 'dnf';

/** A host name the harness accepts: becomes part of a namespace name. */
const HOST_NAME = /^[a-z][a-z0-9]{0,15}$/;

/** `dnf<seq>-<pid36>-<rest>` */
const OWNED = new RegExp(`^${NAME_PREFIX}[0-9a-z]-([0-9a-z]+)-`);

/** The names of one network. */
export interface NetworkNames {
  /** Prefix of this network's objects, e.g. `dnf0-2hl0w-`. */
  readonly prefix: string;
  readonly bridge: string;
  /** Namespace of `host`. */
  namespace(host: string): string;
  /** Root-namespace end of the veth of the `index`-th host. */
  hostEnd(index: number): string;
  /** The end that moves into the namespace (renamed `eth0` there). */
  peerEnd(index: number): string;
}

/** Names for the `sequence`-th network of process `pid`. */
export function networkNames(pid: number, sequence: number): NetworkNames {
  const prefix = `${NAME_PREFIX}${(sequence % 36).toString(36)}-${pid.toString(36)}-`;
  return {
    prefix,
    bridge: `${prefix}br`,
    namespace: (host) => `${prefix}${host}`,
    hostEnd: (index) => `${prefix}h${index}`,
    peerEnd: (index) => `${prefix}n${index}`,
  };
}

/** Throws when `host` cannot name a namespace. */
export function checkHostName(host: string): void {
  if (!HOST_NAME.test(host)) {
    throw new Error(`host name "${host}" must match ${HOST_NAME} (it becomes part of a namespace name)`);
  }
}

/** The process id that owns a harness object, or `undefined` when `name` is not one. */
export function ownerOf(name: string): number | undefined {
  const match = OWNED.exec(name);
  if (!match?.[1]) return undefined;
  const pid = Number.parseInt(match[1], 36);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}
