/**
 * The `transport` and `scheduler` settings of the commands: a built-in name, or the path of a
 * module whose default export makes one (`--transport ./my-transport.js`, relative to the
 * working directory; in a config file, relative to the file).
 *
 * @module
 */
import { isModulePath } from '../cluster/extension-module.js';
import {
  parseSchedulerKind,
  type SchedulerContext,
  type SchedulerOption,
  schedulerFromModule,
} from '../cluster/scheduler-factory.js';
import {
  parseTransportKind,
  type TransportFactoryOptions,
  type TransportOption,
  transportFromModule,
} from '../cluster/transport-factory.js';

/** The transport the `transport` setting names, made with `context` when it is a module. */
export function transportOf(value: string, context: TransportFactoryOptions): Promise<TransportOption> {
  return isModulePath(value)
    ? transportFromModule(value, context)
    : Promise.resolve(parseTransportKind(value));
}

/** The scheduler the `scheduler` setting names, made with `context` when it is a module. */
export function schedulerOf(value: string, context: SchedulerContext): Promise<SchedulerOption> {
  return isModulePath(value)
    ? schedulerFromModule(value, context)
    : Promise.resolve(parseSchedulerKind(value));
}

/** How a transport or scheduler is named in messages: its own name, or the built-in name. */
export function nameOf(option: string | { readonly name: string }): string {
  return typeof option === 'string' ? option : option.name;
}
