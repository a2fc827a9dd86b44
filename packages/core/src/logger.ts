/**
 * A minimal structured logger interface. Compatible with pino's `(obj, msg)` call shape, so a
 * pino logger can be passed in directly. Core never imports a logging library.
 */
export interface Logger {
  debug(context: Record<string, unknown>, message: string): void;
  info(context: Record<string, unknown>, message: string): void;
  warn(context: Record<string, unknown>, message: string): void;
  error(context: Record<string, unknown>, message: string): void;
}

/** A logger that discards everything (the default when none is injected). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
