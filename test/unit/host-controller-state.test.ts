import { describe, expect, it } from 'vitest';
import { ALLOWED_FROM, ControllerStateMachine, canTransition } from '../../host/controller-state.ts';
import type { ControllerState } from '../../host/path.ts';

const STATES: ControllerState[] = ['new', 'connecting', 'live', 'resetting', 'deleting', 'deleted'];

/** The table as Linux's nvme_change_ctrl_state has it (DEAD is our 'deleted'). */
const EXPECTED = new Set([
  'new>connecting',
  'resetting>connecting',
  'new>live',
  'connecting>live',
  'resetting>live',
  'new>resetting',
  'live>resetting',
  'live>deleting',
  'resetting>deleting',
  'connecting>deleting',
  'deleting>deleted',
]);

describe('controller state transitions', () => {
  it('allows exactly the transitions of the table', () => {
    for (const from of STATES) {
      for (const to of STATES) {
        expect(canTransition(from, to), `${from} -> ${to}`).toBe(EXPECTED.has(`${from}>${to}`));
      }
    }
    expect(Object.keys(ALLOWED_FROM).sort()).toEqual([...STATES].sort());
  });

  it('walks connect, error, reconnect, delete', () => {
    const seen: string[] = [];
    const sm = new ControllerStateMachine((to, from) => seen.push(`${from}>${to}`));
    expect(sm.state).toBe('new');
    for (const s of ['connecting', 'live', 'resetting', 'connecting', 'live', 'resetting', 'connecting', 'deleting', 'deleted'] as const) {
      expect(sm.change(s)).toBe(true);
    }
    expect(seen).toEqual([
      'new>connecting',
      'connecting>live',
      'live>resetting',
      'resetting>connecting',
      'connecting>live',
      'live>resetting',
      'resetting>connecting',
      'connecting>deleting',
      'deleting>deleted',
    ]);
  });

  it('refuses what is not in the table and leaves the state alone', () => {
    const sm = new ControllerStateMachine();
    expect(sm.change('deleted')).toBe(false);
    expect(sm.change('deleting')).toBe(false);
    expect(sm.state).toBe('new');
    sm.change('connecting');
    // A second error while already resetting does not start another reset.
    expect(sm.change('resetting')).toBe(false);
    sm.change('live');
    sm.change('resetting');
    expect(sm.change('resetting')).toBe(false);
    sm.change('deleting');
    // Nothing brings a deleting controller back.
    for (const s of ['new', 'connecting', 'live', 'resetting'] as const) expect(sm.change(s)).toBe(false);
    expect(sm.change('deleted')).toBe(true);
    for (const s of STATES) expect(sm.change(s)).toBe(false);
    expect(sm.state).toBe('deleted');
  });
});
