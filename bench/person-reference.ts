/**
 * The person reference: the least a server can do for `GET /api/people/:id` — a bare Fastify route
 * and a `pg` pool of the service's size, the reads of each event-loop turn coalesced into one
 * `SELECT * FROM people WHERE id = ANY($1)`, the row sent with JSON.stringify. No session, no
 * hooks, no schema. It is the issue's own yardstick ("a bare Fastify + pg route … ~29,000 req/s when
 * concurrent reads are coalesced"), measured in the same run on the same machine, so the person
 * figure can be read against what the machine allows that day. PostgreSQL only.
 */
import Fastify from 'fastify';
import pg from 'pg';

const [port, databaseUrl] = [Number(process.argv[2]), process.argv[3]];
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });

let waiting = new Map<number, ((row: unknown) => void)[]>();
let scheduled = false;
function load(id: number): Promise<unknown> {
  return new Promise((resolve) => {
    const list = waiting.get(id);
    if (list) list.push(resolve);
    else waiting.set(id, [resolve]);
    if (!scheduled) {
      scheduled = true;
      setImmediate(() => {
        const batch = waiting;
        waiting = new Map();
        scheduled = false;
        void pool.query<{ id: number }>({ name: 'people-by-ids', text: 'SELECT * FROM people WHERE id = ANY($1)', values: [[...batch.keys()]] }).then(({ rows }) => {
          const byId = new Map(rows.map((r) => [r.id, r]));
          for (const [key, resolvers] of batch) for (const r of resolvers) r(byId.get(key));
        });
      });
    }
  });
}

const app = Fastify();
app.get<{ Params: { id: string } }>('/people/:id', async (request, reply) => {
  const row = await load(Number(request.params.id));
  if (!row) return reply.code(404).send({ status: 'error' });
  return row;
});
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write('ready\n');
process.on('SIGTERM', () => void app.close().then(() => pool.end()).then(() => process.exit(0)));
