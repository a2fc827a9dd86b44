/**
 * The `application/json` body parser of the HTTP API: fastify's own (prototype-poisoning
 * safe), behind the {@link scanJson} bounds, so every JSON route refuses deeply nested or
 * huge bodies before anything is parsed. It remembers how many values each body holds at most,
 * which bounds the tensors the routes read from it.
 *
 * @module
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DEFAULT_JSON_MAX_VALUES, type JsonLimits, scanJson } from './json-limits.js';

const valueCounts = new WeakMap<FastifyRequest, number>();

/** Registers the bounded JSON parser on `app` (it replaces fastify's default one). */
export function registerJsonBody(app: FastifyInstance, bodyLimit: number, limits: JsonLimits): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit },
    (request, body: Buffer, done) => {
      let values: number;
      try {
        values = scanJson(body, limits);
      } catch (error) {
        done(error as Error, undefined);
        return;
      }
      valueCounts.set(request, values);
      parse(request, body.toString('utf8'), done);
    },
  );
}

/**
 * The most values the JSON body of `request` holds (so the most numbers any array in it can
 * have); the configured maximum when the body was not parsed by {@link registerJsonBody}.
 */
export function jsonValueCount(request: FastifyRequest, limits: JsonLimits = {}): number {
  return valueCounts.get(request) ?? limits.maxValues ?? DEFAULT_JSON_MAX_VALUES;
}
