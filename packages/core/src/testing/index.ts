/**
 * Test kit for implementers of dinfer extension points: an in-memory transport and
 * runner-agnostic compliance suites.
 *
 * @packageDocumentation
 */
export {};
