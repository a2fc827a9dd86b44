/**
 * Takes the absolute paths of the machine out of text a client sees (error answers, the
 * reasons of the repository index): a path under a known root (the model repository) becomes
 * relative to it, any other absolute path keeps only its last segment (`<path>/model.json`).
 * API routes (`/v2/...`, `/api/...`) and URLs are left as they are.
 *
 * @module
 */

/** A directory whose paths are shown relative to it, and what it is called alone. */
export interface PathRoot {
  readonly dir: string;
  /** Shown for the directory itself, e.g. `the model repository`. */
  readonly name: string;
}

/** Paths of this server's own API, which messages quote (e.g. `use POST /v2/models/m/infer`). */
const ROUTE = /^\/(?:v2|api|metrics)(?:\/|$)/;

/** An absolute POSIX path (two segments or more, not inside a URL or a word), a file: URL, or a Windows path. */
const ABSOLUTE_PATH =
  /file:\/\/[^\s"'`<>()[\]{},;]+|(?<![\w.:/\\-])\/[^\s"'`<>()[\]{},;/]+(?:\/[^\s"'`<>()[\]{},;/]*)+|\b[A-Za-z]:\\[^\s"'`<>()[\]{},;]+/g;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function lastSegment(path: string): string {
  const parts = path.split(/[\\/]+/).filter((p) => p.length > 0);
  return parts.at(-1) ?? '';
}

/** `text` with the absolute paths taken out; see the module documentation. */
export function redactPaths(text: string, roots: readonly PathRoot[] = []): string {
  let out = text;
  const sorted = [...roots].filter((r) => r.dir.length > 1).sort((a, b) => b.dir.length - a.dir.length);
  for (const root of sorted) {
    const dir = root.dir.replace(/[\\/]+$/, '');
    out = out
      .replace(new RegExp(`${escapeRegExp(dir)}[\\\\/]`, 'g'), '')
      .replace(new RegExp(`${escapeRegExp(dir)}(?![\\w.-])`, 'g'), root.name);
  }
  return out.replace(ABSOLUTE_PATH, (path) => {
    if (ROUTE.test(path)) return path;
    const segment = lastSegment(path.replace(/^file:\/\//, ''));
    return segment === '' ? '<path>' : `<path>/${segment}`;
  });
}
