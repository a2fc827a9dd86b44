import { describe, expect, it } from 'vitest';
import { DinferError, DinferErrorCode, isDinferError } from '../src/errors.js';

describe('DinferError', () => {
  it('carries code, details and cause', () => {
    const cause = new Error('disk on fire');
    const error = new DinferError(DinferErrorCode.MODEL_IO, 'cannot read', {
      cause,
      details: { path: '/x' },
    });
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('DINFER_ERR_MODEL_IO');
    expect(error.cause).toBe(cause);
    expect(error.details).toEqual({ path: '/x' });
    expect(isDinferError(error, DinferErrorCode.MODEL_IO)).toBe(true);
    expect(isDinferError(error, DinferErrorCode.TIMEOUT)).toBe(false);
  });

  it('is recognised across duplicate copies of the class (Symbol.for brand)', () => {
    const foreign = Object.assign(new Error('x'), {
      [Symbol.for('@dinfer/error')]: true,
      code: 'DINFER_ERR_TIMEOUT',
    });
    expect(foreign instanceof DinferError).toBe(true);
    expect(new Error('plain') instanceof DinferError).toBe(false);
    expect((null as unknown as object) instanceof DinferError).toBe(false);
  });

  it('has unique, prefixed codes', () => {
    const codes = Object.values(DinferErrorCode);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^DINFER_ERR_[A-Z_]+$/);
  });
});
