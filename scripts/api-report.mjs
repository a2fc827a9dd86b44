#!/usr/bin/env node
/**
 * Checks every package entry point's public surface against its committed API report
 * (`packages/<pkg>/api/*.api.md`, written by @microsoft/api-extractor). A surface that changed
 * without its report being updated fails: run `pnpm api:update` and commit the reports.
 *
 * Usage: node scripts/api-report.mjs [--update]
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';

const update = process.argv.includes('--update');
const root = new URL('..', import.meta.url).pathname;
const configs = readdirSync(join(root, 'packages'), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(join(root, 'packages', d.name))
      .filter((f) => /^api-extractor(\..+)?\.json$/.test(f))
      .map((f) => join(root, 'packages', d.name, f)),
  )
  .sort();
const changed = [];
let problems = 0;
for (const file of configs) {
  const config = ExtractorConfig.loadFileAndPrepare(file);
  const result = Extractor.invoke(config, {
    localBuild: update,
    showVerboseMessages: false,
    messageCallback: (message) => {
      // Report-file differences are summarised below; everything else is printed as it comes.
      if (message.messageId === 'console-api-report-changed') message.handled = true;
    },
  });
  if (result.apiReportChanged) changed.push(config.reportFilePath.slice(root.length));
  problems += result.errorCount;
}
if (changed.length > 0 && !update) {
  console.error(
    `The public API changed without its report:\n  ${changed.join('\n  ')}\n` +
      'Review the change, run `pnpm api:update` and commit the updated reports.',
  );
  process.exit(1);
}
if (problems > 0) process.exit(1);
console.log(
  update && changed.length > 0
    ? `API reports updated: ${changed.join(', ')}`
    : `API reports match the public surface of ${configs.length} entry points`,
);
