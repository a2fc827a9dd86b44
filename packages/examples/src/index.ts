/**
 * Runnable dinfer examples: generated models, demos and benchmarks.
 *
 * @packageDocumentation
 */
export {};
