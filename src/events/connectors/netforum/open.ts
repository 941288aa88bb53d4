/** The netFORUM client of the service, when the organisation file turns netFORUM on. Nothing is loaded or called here. */
import type { NetforumConfig } from './config.ts';
import { createNetforumClient, type NetforumClient } from './client.ts';

export class NetforumSetupError extends Error {
  override readonly name = 'NetforumSetupError';
}

export function openNetforum(config: NetforumConfig | undefined, password: string | undefined): NetforumClient | undefined {
  if (!config) return undefined;
  if (!password) throw new NetforumSetupError('The organisation file configures connectors.netforum, but NETFORUM_PASSWORD is not set: set it to the xWeb password of ' + config.username);
  return createNetforumClient({ ...config, password });
}
