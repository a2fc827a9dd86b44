/**
 * The errors the model readers raise, in one place. Internal module, not part of the public
 * API.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';

/** A MODEL_CORRUPT error about the artifacts at `path`. */
export function corrupt(
  path: string,
  message: string,
  extra: Record<string, unknown> = {},
  cause?: unknown,
): DinferError {
  return new DinferError(DinferErrorCode.MODEL_CORRUPT, `${path}: ${message}`, {
    details: { path, ...extra },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The DinferError for a failed file operation: ABORTED, MODEL_NOT_FOUND or MODEL_IO. */
export function ioError(path: string, action: string, error: unknown): DinferError {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 'ABORT_ERR' || (error as Error | undefined)?.name === 'AbortError') {
    return new DinferError(DinferErrorCode.ABORTED, `${action} ${path} was aborted`, {
      details: { path },
      cause: error,
    });
  }
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new DinferError(DinferErrorCode.MODEL_NOT_FOUND, `model file not found: ${path}`, {
      details: { path },
      cause: error,
    });
  }
  return new DinferError(DinferErrorCode.MODEL_IO, `${action} ${path} failed: ${(error as Error).message}`, {
    details: { path, errno: code },
    cause: error,
  });
}

/**
 * The error for a model TF.js could not build from its topology: MODEL_UNSUPPORTED for an
 * unknown layer (or other) class, MODEL_CORRUPT otherwise.
 */
export function modelBuildError(path: string, error: unknown): DinferError {
  const message = (error as Error | undefined)?.message ?? String(error);
  const unknown = /Unknown (layer|class|activation|initializer|regularizer|constraint)/i.test(message);
  return new DinferError(
    unknown ? DinferErrorCode.MODEL_UNSUPPORTED : DinferErrorCode.MODEL_CORRUPT,
    `${path}: cannot build the model: ${message}`,
    { details: { path }, cause: error },
  );
}
