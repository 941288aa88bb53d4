import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Deps } from '../deps.ts';
import type { Guards } from '../http/auth.ts';

export function liveRoutes(_deps: Deps, _guards: Guards): FastifyPluginAsyncTypebox {
  return async () => {};
}
