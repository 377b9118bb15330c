/**
 * A store made slow on purpose, for tests that need a write to be executing
 * (in the store, not yet landed) while something else happens: a fence, an
 * active-path move, a lease loss. The store object the namespace holds is
 * changed in place, so the target under test needs no hook for it.
 */
import type { BlockStore } from '../../target/store/index.ts';

export interface HeldWrite {
  /** Let the held write go on into the real store (before or after it arrived). */
  open(): void;
  /** True once the held write has reached the store and is waiting. */
  readonly holding: boolean;
  /** True once the held write has landed in the real store. */
  readonly landed: boolean;
}

/**
 * Holds the next write that reaches `store` until open() is called; the
 * writes after it go straight through. The store stops offering a synchronous
 * write (one that takes its time has none), so every write goes through the
 * held path.
 */
export function holdNextWrite(store: BlockStore): HeldWrite {
  const write = store.write.bind(store);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  let armed = true;
  const held = { open, holding: false, landed: false };
  store.writeSync = undefined;
  store.write = async (slba, data) => {
    if (!armed) return write(slba, data);
    armed = false;
    held.holding = true;
    await gate;
    held.holding = false;
    await write(slba, data);
    held.landed = true;
  };
  return held;
}
