/**
 * `GET /`: the status page, one static HTML file (inline CSS and vanilla JS, no build step)
 * that polls `GET /api/status` every second and draws the pipeline of stages with their
 * workers, live throughput and latency with a sparkline, and a degraded-mode banner.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DinferError, DinferErrorCode } from '@dinfer/core';
import type { FastifyInstance } from 'fastify';

/** Where the page lives: `assets/status/index.html` of this package (same depth from src/ and dist/). */
export const STATUS_PAGE_URL = new URL('../../assets/status/index.html', import.meta.url);

/** Registers `GET /` on `app`; the file is read once, on the first request. */
export function registerStatusPage(app: FastifyInstance): void {
  let page: Promise<string> | undefined;
  app.get('/', async (_request, reply) => {
    page ??= readFile(STATUS_PAGE_URL, 'utf8');
    let html: string;
    try {
      html = await page;
    } catch (error) {
      page = undefined;
      throw new DinferError(
        DinferErrorCode.INTERNAL,
        `status page not found at ${fileURLToPath(STATUS_PAGE_URL)}`,
        { cause: error },
      );
    }
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(html);
  });
}
