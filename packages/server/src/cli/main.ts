#!/usr/bin/env node
/**
 * The `dinfer` executable: `dinfer up | master | worker | inspect | plan | split | bench`. See `dinfer --help`.
 *
 * @module
 */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv);
