// Built by `npm run build:action` from action/src; do not edit.

// src/core/inert-text.ts
var INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
var EVERY_INVISIBLE = new RegExp(INVISIBLE.source, "gu");
function inert(text) {
  return text.replace(
    EVERY_INVISIBLE,
    (char) => Array.from({ length: char.length }, (_, unit) => `\\u${char.charCodeAt(unit).toString(16).padStart(4, "0")}`).join("")
  );
}

// src/cli/pipeline/github-commands.ts
function annotation(level, message) {
  return `::${level}::${escapeData(inert(message))}
`;
}
function escapeData(value) {
  return value.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

// src/cli/pipeline/job-log-line.ts
function jobLogLine(line) {
  return `keyway: ${inert(line)}
`;
}

// src/core/errors/keyway-error.ts
var KeywayError = class extends Error {
};

// src/core/outbound/read-bounded.ts
var FetchError = class extends KeywayError {
  name = "FetchError";
  code = "fetch_failed";
};
var AnswerTooLargeError = class extends FetchError {
  name = "AnswerTooLargeError";
  code = "answer_too_large";
};
async function readBounded(response, maxBytes, request) {
  const tooLarge = () => new AnswerTooLargeError(`the answer to ${request} is larger than ${maxBytes} bytes: not read further`);
  const declared = Number(response.headers.get("content-length") ?? 0);
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks = [];
  let total = 0;
  for (; ; ) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (cause) {
      throw new FetchError(`the answer to ${request} broke off while reading its body: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

// src/cli/pipeline/retrying-fetch.ts
var DEFAULT_RETRY_POLICY = { attempts: 4, baseDelayMs: 500, maxDelayMs: 5e3, attemptTimeoutMs: 1e4 };
var MAX_ANSWER_BYTES = 64 * 1024;
function backoffDelayMs(policy, attempt, retryAfter, random = Math.random) {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  const asked = retryAfter !== null && /^\d+$/.test(retryAfter) ? Math.min(Number(retryAfter) * 1e3, policy.maxDelayMs) : 0;
  return Math.round(Math.max(jittered, asked));
}
var REDIRECT_STATUSES = /* @__PURE__ */ new Set([301, 302, 303, 307, 308]);
var RedirectRefusedError = class extends KeywayError {
  name = "RedirectRefusedError";
  code = "redirect_refused";
  status;
  /** The origin the redirect pointed to (not its path or query, which the job log has no use for). */
  locationOrigin;
  constructor(method, url, status, location) {
    const origin = URL.canParse(location, url) ? new URL(location, url).origin : "an unreadable Location";
    super(`${method} ${url.split("?")[0]} answered a ${status} redirect to ${origin}; keyway does not follow redirects with a token`);
    this.status = status;
    this.locationOrigin = origin;
  }
};
var UNSENT = /* @__PURE__ */ new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"]);
function neverSent(error) {
  const code = error instanceof Error ? error.cause?.code : void 0;
  return typeof code === "string" && UNSENT.has(code);
}
function retryingFetch(policy, onRetry, fetchImpl = fetch) {
  const renewing = async (send) => {
    let earlier;
    for (let attempt = 1; ; attempt += 1) {
      const last = attempt >= policy.attempts;
      let retry;
      const once = async (url, init = {}) => {
        const method = init.method ?? "GET";
        retry = void 0;
        let response;
        try {
          const signals = [AbortSignal.timeout(policy.attemptTimeoutMs), ...init.signal ? [init.signal] : []];
          response = await fetchImpl(url, { ...init, redirect: init.redirect ?? "manual", signal: AbortSignal.any(signals) });
        } catch (error) {
          if (!last && init.signal?.aborted !== true) {
            retry = { method, url, reason: describeNetworkError(error), retryAfter: null, ...neverSent(error) ? { unsent: true } : {} };
          }
          throw error;
        }
        const location = response.headers.get("location");
        if (init.redirect === void 0 && REDIRECT_STATUSES.has(response.status) && location !== null) {
          await response.body?.cancel();
          throw new RedirectRefusedError(method, url, response.status, location);
        }
        if (response.status < 500 || last) return readWhole(response, `${method} ${url.split("?")[0]}`);
        const answer = await readWhole(response, `${method} ${url.split("?")[0]}`).catch(async () => {
          await response.body?.cancel().catch(() => {
          });
          return new Response(null, { status: response.status, headers: response.headers });
        });
        retry = { method, url, reason: `answered ${response.status}`, retryAfter: response.headers.get("retry-after"), answer };
        return answer.clone();
      };
      let outcome;
      try {
        outcome = { value: await send(once, earlier) };
      } catch (error) {
        outcome = { error };
      }
      if (retry === void 0) {
        if ("error" in outcome) throw outcome.error;
        return outcome.value;
      }
      if (retry.unsent === void 0) earlier = { reason: retry.reason, answer: retry.answer };
      await pause(policy, onRetry, { ...retry, attempt });
    }
  };
  const retrying = (url, init) => renewing((once) => once(url, init));
  return Object.assign(retrying, { renewing });
}
async function readWhole(response, request) {
  if (response.body === null) return response;
  const body = await readBounded(response, MAX_ANSWER_BYTES, request);
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}
async function pause(policy, onRetry, { method, url, attempt, reason, retryAfter }) {
  const delayMs = backoffDelayMs(policy, attempt, retryAfter);
  onRetry({ method, url, attempt, attempts: policy.attempts, reason, delayMs });
  await new Promise((resolve) => setTimeout(resolve, delayMs));
}
function describeNetworkError(error) {
  if (!(error instanceof Error)) return String(error);
  if (error instanceof KeywayError) return error.message;
  if (error.cause instanceof KeywayError) return error.cause.message;
  const cause = error.cause;
  if (error.name === "TimeoutError") return "timed out";
  if (cause !== void 0 && typeof cause.code === "string") return `${error.message} (${cause.code})`;
  if (cause !== void 0 && typeof cause.message === "string") return `${error.message} (${cause.message})`;
  return error.message;
}

// src/core/dpop/dpop-proof.ts
var DPOP_PROOF_LIMITS = {
  /** A proof is a header with a public key and five short claims; anything near this is not one. */
  bytes: 8 * 1024,
  jtiChars: 256,
  /** How long after its `iat` a proof is accepted; its `jti` is remembered that long. */
  maxAgeSeconds: 60,
  /** How far in the future `iat` may be (the job's clock running ahead of the broker's). */
  clockSkewSeconds: 5,
  /**
   * The largest RSA modulus taken (jose refuses under 2048). A signature check costs in proportion to the key's size, which
   * the sender picks: a 16384-bit key makes it about 30 times dearer, before the sender is known to be anyone.
   */
  rsaModulusBits: 4096
};

// src/core/exchange/token-exchange-request.ts
var TOKEN_TYPE = {
  accessToken: "urn:ietf:params:oauth:token-type:access_token",
  idToken: "urn:ietf:params:oauth:token-type:id_token",
  jwt: "urn:ietf:params:oauth:token-type:jwt",
  /** keyway's own type: a GitHub App installation token (`grant.github`). */
  githubInstallationToken: "urn:keyway:params:oauth:token-type:github-installation-token",
  /** keyway's own type: one GitHub App installation token per owner the resources name, answered as a map (github-token-map.ts). */
  githubInstallationTokenMap: "urn:keyway:params:oauth:token-type:github-installation-token-map"
};
var REQUEST_LIMITS = {
  /** Whole form body. */
  bodyBytes: 64 * 1024,
  /** CI ID tokens are 1-3 KB; anything near this is not one. */
  subjectTokenBytes: 16 * 1024,
  /** Repeated `audience` plus `resource` parameters. */
  targets: 10,
  targetChars: 2048,
  scopeChars: 2048
};

// src/core/outbound/loopback-http-url.ts
var LOOPBACK_HOSTS = /* @__PURE__ */ new Set(["127.0.0.1", "localhost", "[::1]"]);
function isLoopbackHttpUrl(url) {
  return url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname);
}

// src/core/revocation/handed-back-tokens.ts
var HANDED_BACK_HEADER = "Keyway-Revokes";

// src/cli/pipeline/revoke-token.ts
var GITHUB_INSTALLATION_TOKEN_TYPE = TOKEN_TYPE.githubInstallationToken;
var REVOCATIONS = /* @__PURE__ */ new Map([[GITHUB_INSTALLATION_TOKEN_TYPE, handBackGithubInstallationToken]]);
async function handBackGithubInstallationToken(token, { broker, env, fetch: fetch2 }) {
  const answer = await revokeAtBroker(token, { url: revocationEndpoint(broker), fetch: fetch2 });
  const takes = (answer.get(HANDED_BACK_HEADER) ?? "").split(",").map((type) => type.trim());
  if (takes.includes(GITHUB_INSTALLATION_TOKEN_TYPE)) {
    return "handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API";
  }
  return revokeAtRunnersGitHub(token, { env, fetch: fetch2 });
}
async function revokeAtRunnersGitHub(token, { env, fetch: fetch2 }) {
  const api = env["GITHUB_API_URL"];
  if (!api) throw new Error("the broker does not take GitHub tokens back, and GITHUB_API_URL is not set: the runner names the GitHub API");
  const url = URL.canParse(api) ? new URL(api) : void 0;
  if (url === void 0 || url.protocol !== "https:" && !isLoopbackHttpUrl(url)) {
    throw new Error(`GITHUB_API_URL ${api} is not an https URL: the token was not sent there`);
  }
  const response = await fetch2(`${api.replace(/\/$/, "")}/installation/token`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${token}`, accept: "application/vnd.github+json", "x-github-api-version": "2022-11-28" }
  });
  await response.body?.cancel();
  if (response.status === 204) return "revoked the GitHub installation token at the runner's GitHub (the broker does not take GitHub tokens back)";
  if (response.status === 401 && response.headers.has("x-github-request-id") && !response.headers.has("keyway-error")) {
    return "the runner's GitHub no longer takes the GitHub installation token: it expired, was revoked, or is another GitHub deployment's";
  }
  const from = response.headers.has("x-github-request-id") ? "GitHub" : `${url.host} (not GitHub: no x-github-request-id)`;
  throw new Error(`${from} answered ${response.status} to the revocation: the token was not revoked`);
}
function revocationEndpoint(broker) {
  return new URL("/revoke", broker).href;
}
async function revokeAtBroker(token, { url, fetch: fetch2, proof }) {
  const response = await fetch2(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...proof === void 0 ? {} : { dpop: proof } },
    body: new URLSearchParams({ token, token_type_hint: "access_token" }).toString()
  });
  await response.body?.cancel();
  if (response.status !== 200) throw new Error(`the broker answered ${response.status} to the revocation`);
  return response.headers;
}

// action/src/runner.ts
var REVOKE_STATE = "revoke";

// action/src/post.ts
var log = (line) => {
  process.stdout.write(jobLogLine(line));
};
async function post() {
  const saved = process.env[`STATE_${REVOKE_STATE}`];
  if (!saved) return log("nothing to revoke: keyway access tokens expire on their own");
  const state = JSON.parse(saved);
  const { type, token, tokens } = state;
  const revoke = REVOCATIONS.get(type);
  if (revoke === void 0) return log(`nothing to revoke: no revocation for ${type}`);
  const fetch2 = retryingFetch(DEFAULT_RETRY_POLICY, () => {
  });
  const broker = new URL(state.broker);
  for (const each of tokens ?? (token === void 0 ? [] : [token])) {
    await revoke(each, { broker, env: process.env, fetch: fetch2 }).then(log, warnNotRevoked);
  }
}
function warnNotRevoked(error) {
  process.stdout.write(annotation("warning", `keyway: could not revoke the token: ${error.message}`));
}
try {
  await post();
} catch (error) {
  warnNotRevoked(error);
}
