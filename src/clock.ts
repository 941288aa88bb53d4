/** Time comes from here, so renewal, expiry and rate windows are tested by moving the clock. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
