import type { Clock } from '../../src/clock.ts';

export interface TestClock extends Clock {
  advance(ms: number): void;
  set(date: Date): void;
}

export const DAY = 86_400_000;

/** A clock that stands still until the test moves it. */
export function createTestClock(start = new Date('2026-06-01T12:00:00Z')): TestClock {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    advance(ms) {
      now += ms;
    },
    set(date) {
      now = date.getTime();
    },
  };
}
