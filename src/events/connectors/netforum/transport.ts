/**
 * The HTTP under the xWeb client: `soap` takes a `request` function shaped like axios's (options
 * in; `{ status, headers, data }` out) and uses axios by default. axios's per-request work (config
 * merging, header normalising, redirect handling) was a fifth of a relay worker's CPU
 * (BENCHMARKS.md, relay-soap); this is a plain node:http/https request on a keep-alive agent.
 *
 * What `soap` asks of it: POST (a call) and GET (a WSDL read from a URL); the body answered as
 * text whatever the status (soap reads the SOAP fault out of a 500); `timeout` as the limit for the
 * whole exchange, failing with code ECONNABORTED as axios does; network errors as they come.
 */
import http from 'node:http';
import https from 'node:https';

/** What soap passes (the fields we use). */
interface SoapRequestOptions {
  url: string;
  method: string;
  headers: Record<string, string | number>;
  data?: string | Buffer;
  timeout?: number;
}

/** What soap reads of an answer. */
export interface SoapResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  data: string;
  config: { headers: Record<string, string | number> };
}

/** A larger answer is refused: xWeb's answers are lists of records, a few MB at most. */
export const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

export function createSoapTransport(): { request: (options: SoapRequestOptions) => Promise<SoapResponse>; close(): void } {
  const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  function request(options: SoapRequestOptions): Promise<SoapResponse> {
    const secure = options.url.startsWith('https:');
    const send = secure ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = send(options.url, { method: options.method, headers: options.headers, agent: secure ? agents.https : agents.http }, (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_ANSWER_BYTES) {
            req.destroy(Object.assign(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`), { code: 'ERESPONSETOOLARGE' }));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, data: Buffer.concat(chunks).toString('utf8'), config: { headers: options.headers } });
        });
        res.on('error', fail);
      });
      function fail(err: Error): void {
        clearTimeout(timer);
        reject(err);
      }
      // The whole exchange, as axios's timeout: an answer that trickles in is as late as none.
      const timer = options.timeout
        ? setTimeout(() => req.destroy(Object.assign(new Error(`timeout of ${options.timeout} ms exceeded`), { code: 'ECONNABORTED' })), options.timeout)
        : undefined;
      req.on('error', fail);
      req.end(options.data);
    });
  }
  return {
    request,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
