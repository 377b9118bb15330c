export { MultipathHead, DEFAULT_SUSPECT_TIMEOUT_MS } from './head.ts';
export type {
  HeadOptions,
  HeadIdentity,
  HeadEvents,
  HeadCounters,
  HeadSnapshot,
  PathSnapshot,
  PathUpEvent,
  PathDownEvent,
  FailoverStartEvent,
  FailoverEndEvent,
  NoPathEvent,
} from './head.ts';
export { MultipathRegistry } from './grouping.ts';
export type { RegistryOptions } from './grouping.ts';
export { MultipathError, NoPathError, NvmeStatusError } from './errors.ts';
export type { MultipathErrorCode } from './errors.ts';
export { decideDisposition, mayHaveExecuted, DEFAULT_MAX_RETRIES } from './disposition.ts';
export type { Disposition } from './disposition.ts';
export { IO_POLICIES, DEFAULT_IO_POLICY, isIoPolicy, selectPath, selectActivationCandidate, isUsableForIo } from './selector.ts';
export type { IoPolicy, Candidate, SelectContext } from './selector.ts';
export { primaryId, describeIds, idDifferences, normalizeId, isZeroId, ID_KINDS } from './ids.ts';
export type { IdKind } from './ids.ts';
