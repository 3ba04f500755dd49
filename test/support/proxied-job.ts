import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runProcess, type Environment, type ProcessResult } from '../node/node-harness.ts';
import type { FakeCi } from './fake-ci.ts';

/**
 * A job's command run under `keyway proxy`, as a script: it writes its environment to the file
 * named first, makes each call named after the exit status (`METHOD /path` through GITHUB_API_URL
 * with GITHUB_TOKEN, as octokit does; `METHOD /path gh` as gh does with GH_HOST=github.localhost:
 * absolute-form through HTTP_PROXY with GH_TOKEN; `WAIT ms` pauses, as a long job does), prints what came back as one JSON line, and
 * exits with the status given. Each call follows its answer's `Link: <…>; rel="next"` as a paginating client does, with the
 * same credential and the same way of calling, and reports the pages it read (`pages`: each page's URL and status).
 */
export const PROXIED_JOB_SCRIPT = `
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';

const [environmentFile, status, ...calls] = process.argv.slice(2);
writeFileSync(environmentFile, JSON.stringify(process.env));
const env = process.env;

function viaGh(method, url, body) {
  const proxy = new URL(env.HTTP_PROXY);
  const host = 'api.' + env.GH_HOST;
  return new Promise((resolve, reject) => {
    const headers = { host, authorization: 'token ' + env.GH_TOKEN, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'content-type': 'application/json' };
    const outbound = request({ host: proxy.hostname, port: proxy.port, method, path: url, headers }, (response) => {
      let text = '';
      response.on('data', (chunk) => (text += chunk)).on('end', () =>
        resolve({ status: response.statusCode, keywayError: response.headers['keyway-error'] ?? null, link: response.headers['link'] ?? null, body: text }),
      );
    });
    outbound.once('error', reject);
    outbound.end(body);
  });
}

async function viaBaseUrl(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { authorization: 'Bearer ' + env.GITHUB_TOKEN, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'content-type': 'application/json' },
    body,
  });
  return { status: response.status, keywayError: response.headers.get('keyway-error'), link: response.headers.get('link'), body: await response.text() };
}

async function paginated(method, path, client, body) {
  const gh = client === 'gh';
  let url = (gh ? 'http://api.' + env.GH_HOST : env.GITHUB_API_URL) + path;
  const pages = [];
  for (;;) {
    const answer = await (gh ? viaGh : viaBaseUrl)(method, url, body);
    pages.push({ url, status: answer.status });
    const next = /<([^>]+)>; rel="next"/.exec(answer.link ?? '')?.[1];
    if (next === undefined || pages.length === 10) return { status: answer.status, keywayError: answer.keywayError, body: answer.body, pages };
    url = next;
  }
}

const results = [];
for (const call of calls) {
  const [method, path, client] = call.split(' ');
  if (method === 'WAIT') {
    await new Promise((resolve) => setTimeout(resolve, Number(path)));
    continue;
  }
  const body = method === 'POST' ? JSON.stringify({ body: 'Built by the job' }) : undefined;
  results.push({ call, ...(await paginated(method, path, client, body)) });
}
console.log(JSON.stringify(results));
process.exit(Number(status));
`;

export interface ProxiedCall {
  readonly call: string;
  readonly status: number;
  readonly keywayError: string | null;
  /** The last page's body. */
  readonly body: string;
  /** Each page read, the first included: its URL and status. */
  readonly pages: readonly { readonly url: string; readonly status: number }[];
}

/** What the job's command saw and got back: its environment, its calls' answers. */
export function proxiedJob(result: ProcessResult, directory: string): { env: Record<string, string>; calls: ProxiedCall[] } {
  const environmentFile = join(directory, 'env.json');
  const env = existsSync(environmentFile) ? (JSON.parse(readFileSync(environmentFile, 'utf8')) as Record<string, string>) : {};
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  return { env, calls: last.startsWith('[') ? (JSON.parse(last) as ProxiedCall[]) : [] };
}

/** `keyway proxy` as a job runs it, with the GitHub Actions token service of `ci` and nothing else from this process. */
export function runKeywayProxy(ci: FakeCi, args: readonly string[], directory: string, status: number, calls: readonly string[], extra: Environment = {}) {
  return runProcess(
    process.execPath,
    ['src/cli/main.ts', 'proxy', ...args, '--', process.execPath, join(directory, 'job.mjs'), join(directory, 'env.json'), String(status), ...calls],
    {
      env: {
        PATH: process.env['PATH'],
        GITHUB_ACTIONS: 'true',
        ACTIONS_ID_TOKEN_REQUEST_URL: ci.githubRequestUrl,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: ci.githubRequestToken,
        // What a step often has: the workflow's token. The command must not get it.
        GITHUB_TOKEN: 'ghs_the_steps_own_token',
        GITHUB_API_URL: 'https://api.github.com',
        ...extra,
      },
    },
  );
}
