// Types of launch.js for the TypeScript that imports it (scripts/lib/processes.ts).
import type { ChildProcess } from 'node:child_process';

export declare const ROOT: string;
export declare const NODE_HEAP_FLAGS: readonly string[];
export declare const MALLOC_TUNABLES: string;
export declare function dataProcessEnv(env?: NodeJS.ProcessEnv, extra?: Record<string, string>): NodeJS.ProcessEnv;
export declare const TSX_LOADER: string;
export declare const FORWARDED_SIGNALS: readonly NodeJS.Signals[];
export declare function launch(script: string, args: readonly string[], opts?: { dataProcess?: boolean }): ChildProcess;
