/**
 * @packageDocumentation
 */
export * from './errors-to-http.js';
export * from './http/api.js';
