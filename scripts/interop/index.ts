// The interop rig's TypeScript API in one import.
export * from './boot.ts';
export * from './capture.ts';
export * from './nvmet.ts';
export { buildCpio, type CpioEntry } from './cpio.ts';
