/**
 * What exists in the root network namespace: namespace names, link names and the IPv4
 * prefixes in use (addresses and routes), read from `ip -j`.
 *
 * @module
 */
import { ip, runSyncQuietly } from './commands.js';

function parseJsonArray(text: string | undefined): Record<string, unknown>[] {
  if (text === undefined || text.trim() === '') return [];
  const parsed: unknown = JSON.parse(text);
  return Array.isArray(parsed) ? (parsed as Record<string, unknown>[]) : [];
}

function namesOf(rows: readonly Record<string, unknown>[], key: string): string[] {
  return rows.map((row) => row[key]).filter((name): name is string => typeof name === 'string');
}

/** Names of the network namespaces `ip netns` knows. */
export async function listNamespaces(): Promise<string[]> {
  return namesOf(parseJsonArray(await ip('-j', 'netns', 'list')), 'name');
}

/** {@link listNamespaces}, synchronously (for cleanup while exiting). */
export function listNamespacesSync(): string[] {
  return namesOf(parseJsonArray(runSyncQuietly('ip', ['-j', 'netns', 'list'])), 'name');
}

/** Names of the links of the root namespace. */
export async function listLinks(): Promise<string[]> {
  return namesOf(parseJsonArray(await ip('-j', 'link', 'show')), 'ifname');
}

/** {@link listLinks}, synchronously. */
export function listLinksSync(): string[] {
  return namesOf(parseJsonArray(runSyncQuietly('ip', ['-j', 'link', 'show'])), 'ifname');
}

/** Process ids running in namespace `name` (none when it does not exist). */
export async function namespacePids(name: string): Promise<number[]> {
  let text: string;
  try {
    text = await ip('netns', 'pids', name);
  } catch {
    return [];
  }
  return text
    .split(/\s+/)
    .filter((token) => /^\d+$/.test(token))
    .map(Number);
}

/** {@link namespacePids}, synchronously. */
export function namespacePidsSync(name: string): number[] {
  return runSyncQuietly('ip', ['netns', 'pids', name])
    .split(/\s+/)
    .filter((token) => /^\d+$/.test(token))
    .map(Number);
}

/** IPv4 prefixes (`a.b.c.d/len`) of every local address and route of the root namespace. */
export async function prefixesInUse(): Promise<string[]> {
  const prefixes: string[] = [];
  for (const link of parseJsonArray(await ip('-j', '-4', 'addr', 'show'))) {
    const infos = Array.isArray(link.addr_info) ? (link.addr_info as Record<string, unknown>[]) : [];
    for (const info of infos) {
      if (typeof info.local === 'string' && typeof info.prefixlen === 'number') {
        prefixes.push(`${info.local}/${info.prefixlen}`);
      }
    }
  }
  for (const route of parseJsonArray(await ip('-j', '-4', 'route', 'show', 'table', 'all'))) {
    const dst = route.dst;
    if (typeof dst !== 'string' || dst === 'default') continue;
    prefixes.push(dst.includes('/') ? dst : `${dst}/32`);
  }
  return prefixes;
}
