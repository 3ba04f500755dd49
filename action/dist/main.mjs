// Built by `npm run build:action` from action/src; do not edit.
var __defProp = Object.defineProperty;
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};

// src/cli/pipeline/ci-token-sources.ts
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { text } from "node:stream/consumers";

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
      let retry2;
      const once = async (url, init = {}) => {
        const method = init.method ?? "GET";
        retry2 = void 0;
        let response;
        try {
          const signals = [AbortSignal.timeout(policy.attemptTimeoutMs), ...init.signal ? [init.signal] : []];
          response = await fetchImpl(url, { ...init, redirect: init.redirect ?? "manual", signal: AbortSignal.any(signals) });
        } catch (error) {
          if (!last && init.signal?.aborted !== true) {
            retry2 = { method, url, reason: describeNetworkError(error), retryAfter: null, ...neverSent(error) ? { unsent: true } : {} };
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
        retry2 = { method, url, reason: `answered ${response.status}`, retryAfter: response.headers.get("retry-after"), answer };
        return answer.clone();
      };
      let outcome;
      try {
        outcome = { value: await send(once, earlier) };
      } catch (error) {
        outcome = { error };
      }
      if (retry2 === void 0) {
        if ("error" in outcome) throw outcome.error;
        return outcome.value;
      }
      if (retry2.unsent === void 0) earlier = { reason: retry2.reason, answer: retry2.answer };
      await pause(policy, onRetry, { ...retry2, attempt });
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
  await new Promise((resolve2) => setTimeout(resolve2, delayMs));
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

// src/cli/pipeline/ci-token-sources.ts
var CiTokenError = class extends KeywayError {
  name = "CiTokenError";
  code = "ci_token_unavailable";
};
var KUBERNETES_TOKEN_FILE = "/var/run/secrets/keyway/token";
var GITLAB_DEFAULT_TOKEN_ENV = "KEYWAY_ID_TOKEN";
var MAX_TOKEN_BYTES = 64 * 1024;
var DETECTION = [
  ["github", (env) => env["GITHUB_ACTIONS"] === "true"],
  ["gitlab", (env) => env["GITLAB_CI"] === "true"],
  ["circleci", (env) => env["CIRCLECI"] === "true"],
  ["buildkite", (env) => env["BUILDKITE"] === "true"],
  ["kubernetes", (env) => Boolean(env["KUBERNETES_SERVICE_HOST"])],
  ["google", (env) => Boolean(env["GCE_METADATA_HOST"])]
];
function selectCiTokenSource(selection, context) {
  const { env } = context;
  if (selection.tokenFile !== void 0) return tokenFile(selection.tokenFile);
  if (selection.tokenEnv !== void 0) return environmentVariable(selection.tokenEnv, env, `set ${selection.tokenEnv} to the job's OIDC token`);
  const detected = selection.from ?? DETECTION.find(([, present]) => present(env))?.[0];
  switch (detected) {
    case "github":
      return githubActions(context);
    case "gitlab":
      return environmentVariable(
        GITLAB_DEFAULT_TOKEN_ENV,
        env,
        `declare it on the job: id_tokens: { ${GITLAB_DEFAULT_TOKEN_ENV}: { aud: <the broker's URL> } }, or name your own with --token-env`
      );
    case "circleci":
      return environmentVariable("CIRCLE_OIDC_TOKEN_V2", env, "CircleCI injects it into jobs of projects with OIDC tokens enabled");
    case "buildkite":
      return buildkiteAgent();
    case "kubernetes":
      return { ...tokenFile(KUBERNETES_TOKEN_FILE), name: `Kubernetes (${KUBERNETES_TOKEN_FILE})` };
    case "google":
      return googleMetadata(context);
    case void 0:
      throw new CiTokenError(
        "no CI OIDC token found: this does not look like GitHub Actions, GitLab CI, CircleCI, Buildkite, Kubernetes or Google Cloud; pass --subject-token-file, --token-env or --from"
      );
  }
}
var NO_GITHUB_ID_TOKEN = "GitHub Actions offers this job no OIDC token: give the job `permissions: id-token: write` (pull_request runs from forks never get one)";
function githubActions({ env, fetch: fetch2 }) {
  return {
    name: "GitHub Actions",
    renews: true,
    async read(audience) {
      const requestUrl = env["ACTIONS_ID_TOKEN_REQUEST_URL"];
      const requestToken = env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"];
      if (!requestUrl || !requestToken) {
        throw new CiTokenError(NO_GITHUB_ID_TOKEN);
      }
      const url = new URL(requestUrl);
      url.searchParams.set("audience", audience);
      const response = await ask("the GitHub Actions token service", fetch2, url.href, {
        headers: { authorization: `bearer ${requestToken}`, accept: "application/json" }
      });
      if (!response.ok) throw new CiTokenError(`the GitHub Actions token service answered ${response.status}`);
      const body = await response.json().catch(() => void 0);
      if (typeof body?.value !== "string") throw new CiTokenError("the GitHub Actions token service answered without a token");
      return checkJwtShape(body.value, "GitHub Actions");
    }
  };
}
async function ask(service, fetch2, url, init) {
  try {
    return await fetch2(url, init);
  } catch (error) {
    throw new CiTokenError(`${service}: ${describeNetworkError(error)}`, { cause: error });
  }
}
function googleMetadata({ env, fetch: fetch2 }) {
  const host = env["GCE_METADATA_HOST"] || "metadata.google.internal";
  return {
    name: `Google metadata server (${host})`,
    async read(audience) {
      const url = new URL(`http://${host}/computeMetadata/v1/instance/service-accounts/default/identity`);
      url.searchParams.set("audience", audience);
      url.searchParams.set("format", "full");
      const response = await ask("the Google metadata server", fetch2, url.href, { headers: { "metadata-flavor": "Google" } });
      if (!response.ok) throw new CiTokenError(`the Google metadata server answered ${response.status}`);
      if (response.headers.get("metadata-flavor") !== "Google") throw new CiTokenError(`${host} is not a Google metadata server`);
      return checkJwtShape(await response.text(), "the Google metadata server");
    }
  };
}
function buildkiteAgent() {
  return {
    name: "Buildkite",
    read: (audience) => new Promise((resolve2, reject) => {
      execFile(
        "buildkite-agent",
        ["oidc", "request-token", "--audience", audience],
        { timeout: 3e4, maxBuffer: MAX_TOKEN_BYTES },
        (error, stdout, stderr) => {
          if (error === null) return resolve2(checkJwtShape(stdout, "buildkite-agent"));
          if (error.code === "ENOENT") return reject(new CiTokenError("buildkite-agent is not on PATH"));
          reject(new CiTokenError(`buildkite-agent oidc request-token failed: ${stderr.trim() || error.message}`));
        }
      );
    })
  };
}
function environmentVariable(name, env, hint) {
  return {
    name: `$${name}`,
    async read() {
      const value = env[name];
      if (!value) throw new CiTokenError(`$${name} is not set: ${hint}`);
      return checkJwtShape(value, `$${name}`);
    }
  };
}
function tokenFile(path) {
  const stdin = path === "-";
  return {
    name: stdin ? "standard input" : path,
    async read() {
      let content;
      try {
        content = stdin ? await text(process.stdin) : await readFile(path, "utf8");
      } catch (error) {
        throw new CiTokenError(`cannot read the token from ${path}: ${error.message}`);
      }
      if (content.length > MAX_TOKEN_BYTES) throw new CiTokenError(`${stdin ? "standard input" : path} holds more than a token`);
      return checkJwtShape(content, stdin ? "standard input" : path);
    }
  };
}
function checkJwtShape(value, from) {
  const token = value.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) throw new CiTokenError(`what ${from} gave is not a JWT`);
  return token;
}

// node_modules/jose/dist/webapi/lib/buffer_utils.js
var encoder = new TextEncoder();
var decoder = new TextDecoder();
var strictDecoder = new TextDecoder("utf-8", { fatal: true });
var UINT32_RANGE = 2 ** 32;
function concat(...buffers) {
  const size = buffers.reduce((acc, { length }) => acc + length, 0), buf2 = new Uint8Array(size);
  let i = 0;
  for (const buffer of buffers)
    buf2.set(buffer, i), i += buffer.length;
  return buf2;
}
var NON_ASCII = /[^\x00-\x7f]/;
function encode(string2) {
  if (typeof string2 == "string" && string2.length >= 128) {
    if (NON_ASCII.test(string2))
      throw new TypeError("non-ASCII string encountered in encode()");
    return encoder.encode(string2);
  }
  const bytes = new Uint8Array(string2.length);
  for (let i = 0; i < string2.length; i++) {
    const code = string2.charCodeAt(i);
    if (code > 127)
      throw new TypeError("non-ASCII string encountered in encode()");
    bytes[i] = code;
  }
  return bytes;
}
function encodeBase64(input, url = false) {
  if (Uint8Array.prototype.toBase64)
    return input.toBase64({ alphabet: url ? "base64url" : "base64", omitPadding: url });
  const CHUNK_SIZE = 32768, arr = [];
  for (let i = 0; i < input.length; i += CHUNK_SIZE)
    arr.push(String.fromCharCode.apply(null, input.subarray(i, i + CHUNK_SIZE)));
  const encoded = btoa(arr.join(""));
  return url ? encoded.replace(/=/g, "").replace(/\+/g, "-").replace(/\//g, "_") : encoded;
}
function decodeBase64(encoded, url = false) {
  if (Uint8Array.fromBase64)
    return Uint8Array.fromBase64(encoded, { alphabet: url ? "base64url" : "base64" });
  if (url) {
    if (encoded.includes("+") || encoded.includes("/"))
      throw new TypeError("Invalid base64url");
    encoded = encoded.replace(/-/g, "+").replace(/_/g, "/");
  }
  const binary = atob(encoded), bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++)
    bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// node_modules/jose/dist/webapi/util/errors.js
var JOSEError = class extends Error {
  static code = "ERR_JOSE_GENERIC";
  code = "ERR_JOSE_GENERIC";
  constructor(message2, options) {
    super(message2, options), this.name = this.constructor.name, Error.captureStackTrace?.(this, this.constructor);
  }
};
var JOSENotSupported = class extends JOSEError {
  static code = "ERR_JOSE_NOT_SUPPORTED";
  code = "ERR_JOSE_NOT_SUPPORTED";
};
var JWSInvalid = class extends JOSEError {
  static code = "ERR_JWS_INVALID";
  code = "ERR_JWS_INVALID";
};
var JWTInvalid = class extends JOSEError {
  static code = "ERR_JWT_INVALID";
  code = "ERR_JWT_INVALID";
};

// node_modules/jose/dist/webapi/util/base64url.js
var base64url_exports = {};
__export(base64url_exports, {
  decode: () => decode,
  encode: () => encode2
});
var invalid = "The input to be decoded is not correctly encoded.";
function decode(input) {
  try {
    return decodeBase64(typeof input == "string" ? input : decoder.decode(input), true);
  } catch (cause) {
    throw new TypeError(invalid, { cause });
  }
}
function encode2(input) {
  return encodeBase64(typeof input == "string" ? encoder.encode(input) : input, true);
}

// node_modules/jose/dist/webapi/lib/validate.js
function isObject(input) {
  if (typeof input != "object" || input === null || Object.prototype.toString.call(input) !== "[object Object]")
    return false;
  const prototype = Object.getPrototypeOf(input);
  return prototype === null || Object.getPrototypeOf(prototype) === null;
}
function isDisjoint(...headers2) {
  const parameters = /* @__PURE__ */ new Set();
  for (const header of headers2)
    if (header)
      for (const parameter of Object.keys(header)) {
        if (parameters.has(parameter))
          return false;
        parameters.add(parameter);
      }
  return true;
}
function assertNotSet(value, name) {
  if (value !== void 0)
    throw new TypeError(`${name} can only be called once`);
}
var JWS_RECOGNIZED = { __proto__: null, b64: true };
function validateCritDuplicates(Err, protectedHeader) {
  const { crit } = protectedHeader ?? {};
  if (Array.isArray(crit) && new Set(crit).size !== crit.length)
    throw new Err('"crit" (Critical) Header Parameter MUST NOT contain duplicate values');
}
function validateCrit(Err, recognizedDefault, recognizedOption, protectedHeader, joseHeader) {
  if (joseHeader.crit !== void 0 && protectedHeader?.crit === void 0)
    throw new Err('"crit" (Critical) Header Parameter MUST be integrity protected');
  if (!protectedHeader || protectedHeader.crit === void 0)
    return [];
  if (!Array.isArray(protectedHeader.crit) || protectedHeader.crit.length === 0 || protectedHeader.crit.some((input) => typeof input != "string" || input.length === 0))
    throw new Err('"crit" (Critical) Header Parameter MUST be an array of non-empty strings when present');
  const recognized = recognizedOption === void 0 ? recognizedDefault : { __proto__: null, ...recognizedOption, ...recognizedDefault };
  for (const parameter of protectedHeader.crit) {
    if (!(parameter in recognized))
      throw new JOSENotSupported(`Extension Header Parameter "${parameter}" is not recognized`);
    if (!Object.hasOwn(joseHeader, parameter) || joseHeader[parameter] === void 0)
      throw new Err(`Extension Header Parameter "${parameter}" is missing`);
    if (recognized[parameter] && (!Object.hasOwn(protectedHeader, parameter) || protectedHeader[parameter] === void 0))
      throw new Err(`Extension Header Parameter "${parameter}" MUST be integrity protected`);
  }
  return protectedHeader.crit;
}
function validateB64(protectedHeader, extensions) {
  if (extensions.includes("b64")) {
    const b64 = protectedHeader.b64;
    if (typeof b64 != "boolean")
      throw new JWSInvalid('The "b64" (base64url-encode payload) Header Parameter must be a boolean');
    return b64;
  }
  return true;
}
function serializeJoseHeader(Err, header) {
  let serialized, parsed;
  try {
    serialized = JSON.stringify(header), parsed = JSON.parse(serialized);
  } catch (cause) {
    throw new Err("JOSE Header is not valid JSON", { cause });
  }
  if (!isObject(parsed))
    throw new Err("JOSE Header is not a JSON object");
  return [parsed, serialized];
}

// node_modules/jose/dist/webapi/lib/key.js
var tag = (key) => key[Symbol.toStringTag];
var jwkMatchesOp = (entry, key, usage) => {
  const { alg } = entry;
  if (key.use !== void 0) {
    const expected = usage === "sign" || usage === "verify" ? "sig" : "enc";
    if (key.use !== expected)
      throw new TypeError(`Invalid key for this operation, its "use" must be "${expected}" when present`);
  }
  if (key.alg !== void 0 && key.alg !== alg)
    throw new TypeError(`Invalid key for this operation, its "alg" must be "${alg}" when present`);
  if (Array.isArray(key.key_ops)) {
    const expectedKeyOp = usage === "encrypt" || usage === "decrypt" ? entry.ops?.[usage === "encrypt" ? 0 : 1] : usage;
    if (expectedKeyOp && !key.key_ops.includes(expectedKeyOp))
      throw new TypeError(`Invalid key for this operation, its "key_ops" must include "${expectedKeyOp}" when present`);
  }
};
async function prepareKey(entry, key, usage) {
  const { alg, secret } = entry, requiresPrivateKey = usage === "decrypt" || usage === "sign";
  if (secret && key instanceof Uint8Array)
    return key;
  let normalized, keyObject;
  if (isObject(key)) {
    if (normalized = normalizeJwk(key), typeof normalized.kty != "string")
      throw invalidKeyType(alg, key, secret);
    if (!(secret ? normalized.kty === "oct" && typeof normalized.k == "string" : normalized.kty !== "oct" && (requiresPrivateKey ? normalized.kty === "AKP" && typeof normalized.priv == "string" || typeof normalized.d == "string" : normalized.d === void 0 && normalized.priv === void 0)))
      throw new TypeError(secret ? 'JSON Web Key for symmetric algorithms must have JWK "kty" (Key Type) equal to "oct" and the JWK "k" (Key Value) present' : `JSON Web Key for this operation must be a ${requiresPrivateKey ? "private" : "public"} JWK`);
    if (jwkMatchesOp(entry, normalized, usage), normalized.kty === "oct")
      return decode(normalized.k);
    if (!Object.isFrozen(key)) {
      const { key_ops } = key;
      Array.isArray(key_ops) && Object.freeze(key_ops), Object.freeze(key);
    }
  } else {
    if (!isKeyLike(key))
      throw invalidKeyType(alg, key, secret);
    const expectedType = secret ? "secret" : requiresPrivateKey ? "private" : "public";
    if (key.type !== expectedType && (secret || ["secret", "public", "private"].includes(key.type)))
      throw new TypeError(`${tag(key)} instances must be of type "${expectedType}" for the ${alg} algorithm`);
    if (isCryptoKey(key))
      return key;
    if (keyObject = key, keyObject.type === "secret")
      return keyObject.export();
  }
  cache ||= /* @__PURE__ */ new WeakMap();
  const cacheKey = key;
  let cached = cache.get(cacheKey);
  if (cached?.[alg])
    return cached[alg];
  if (cached || cache.set(cacheKey, cached = {}), keyObject && typeof keyObject.toCryptoKey == "function") {
    const isPublic = keyObject.type === "public", crv = nist[keyObject.asymmetricKeyDetails?.namedCurve], params = entry.resolve?.({ crv, asymmetricKeyType: keyObject.asymmetricKeyType }) ?? entry.subtle;
    return cached[alg] = keyObject.toCryptoKey(params, isPublic, entry.usages[isPublic ? 0 : 1]);
  }
  return normalized ??= keyObject.export({ format: "jwk" }), normalized.alg = alg, cached[alg] = await jwkToKey(entry, normalized);
}
var cache;
var nist = {
  __proto__: null,
  prime256v1: "P-256",
  secp384r1: "P-384",
  secp521r1: "P-521"
};
var isCryptoKey = (key) => {
  if (key?.[Symbol.toStringTag] === "CryptoKey")
    return true;
  try {
    return key instanceof CryptoKey;
  } catch {
    return false;
  }
};
var isKeyObject = (key) => key?.[Symbol.toStringTag] === "KeyObject";
var isKeyLike = (key) => isCryptoKey(key) || isKeyObject(key);
function message(msg, actual, ...types) {
  if (types.length > 2) {
    const last = types.pop();
    msg += `one of type ${types.join(", ")}, or ${last}.`;
  } else types.length === 2 ? msg += `one of type ${types[0]} or ${types[1]}.` : msg += `of type ${types[0]}.`;
  return actual == null ? msg += ` Received ${actual}` : typeof actual == "function" && actual.name ? msg += ` Received function ${actual.name}` : typeof actual == "object" && actual != null && actual.constructor?.name && (msg += ` Received an instance of ${actual.constructor.name}`), msg;
}
function invalidKeyType(alg, actual, secret) {
  const types = ["CryptoKey", "KeyObject", "JSON Web Key"];
  return secret && types.push("Uint8Array"), new TypeError(message(`Key for the ${alg} algorithm must be `, actual, ...types));
}
var unusable = (name, prop = "algorithm.name") => new TypeError(`CryptoKey does not support this operation, its ${prop} must be ${name}`);
function checkUsage(key, usage) {
  if (usage && !key.usages.includes(usage))
    throw new TypeError(`CryptoKey does not support this operation, its usages must include ${usage}.`);
}
function checkModulusLength(alg, key) {
  const { modulusLength } = key.algorithm;
  if (typeof modulusLength != "number" || modulusLength < 2048)
    throw new TypeError(`${alg} requires key modulusLength to be 2048 bits or larger`);
}
function checkCryptoKey(key, expected, usage) {
  const algorithm = key.algorithm;
  if (algorithm.name !== expected.name)
    throw unusable(expected.name);
  if (expected.hash && algorithm.hash?.name !== expected.hash)
    throw unusable(expected.hash, "algorithm.hash");
  if (expected.namedCurve && algorithm.namedCurve !== expected.namedCurve)
    throw unusable(expected.namedCurve, "algorithm.namedCurve");
  if (expected.length !== void 0 && algorithm.length !== expected.length)
    throw unusable(expected.length, "algorithm.length");
  checkUsage(key, usage);
}
function snapshotJwk(jwk) {
  return { __proto__: null, ...jwk };
}
function normalizeJwk(jwk) {
  const normalized = snapshotJwk(jwk);
  if (normalized.ext !== void 0 && typeof normalized.ext != "boolean")
    throw new TypeError('"ext" (Extractable) Parameter must be a boolean');
  if (normalized.key_ops !== void 0) {
    const value = normalized.key_ops, keyOps = Array.isArray(value) ? [...value] : void 0;
    if (!keyOps || keyOps.some((operation) => typeof operation != "string") || new Set(keyOps).size !== keyOps.length)
      throw new TypeError('"key_ops" (Key Operations) Parameter must be an array of unique strings');
    normalized.key_ops = keyOps;
  }
  return normalized;
}
async function jwkToKey(entry, jwk, extractable) {
  if (!entry.kty.includes(jwk.kty))
    throw new JOSENotSupported('Invalid or unsupported JWK "alg" (Algorithm) Parameter value');
  const algorithm = entry.resolve?.({ kty: jwk.kty, crv: jwk.crv }) ?? entry.subtle, isPrivate = !!(jwk.d || jwk.priv), keyData = { ...jwk, ext: extractable ?? jwk.ext };
  return keyData.kty !== "AKP" && delete keyData.alg, delete keyData.use, crypto.subtle.importKey("jwk", keyData, algorithm, keyData.ext ?? !isPrivate, jwk.key_ops ?? entry.usages[isPrivate ? 1 : 0]);
}
async function rawKey(key, expected, usage, extractable = false) {
  return key instanceof Uint8Array && (key = await crypto.subtle.importKey("raw", key, expected, extractable, [usage])), checkCryptoKey(key, expected, usage), key;
}

// node_modules/jose/dist/webapi/lib/key_descriptor.js
function table(entries) {
  const out = { __proto__: null };
  for (const alg in entries)
    out[alg] = { ...entries[alg], alg };
  return out;
}

// node_modules/jose/dist/webapi/lib/jws_algorithms.js
var sig = [["verify"], ["sign"]];
function hmac(bits) {
  const subtle = { name: "HMAC", hash: `SHA-${bits}` };
  return { kty: ["oct"], secret: true, subtle, signing: subtle, usages: sig };
}
function rsa(bits, saltLength) {
  const subtle = { name: saltLength ? "RSA-PSS" : "RSASSA-PKCS1-v1_5", hash: `SHA-${bits}` };
  return {
    kty: ["RSA"],
    subtle,
    signing: saltLength ? { ...subtle, saltLength } : subtle,
    usages: sig,
    minRsaBits: 2048
  };
}
function ecdsa(crv, bits) {
  return {
    kty: ["EC"],
    crv,
    subtle: { name: "ECDSA", namedCurve: crv },
    signing: { name: "ECDSA", hash: `SHA-${bits}` },
    usages: sig
  };
}
function eddsa() {
  const subtle = { name: "Ed25519" };
  return {
    kty: ["OKP"],
    crv: "Ed25519",
    subtle,
    signing: subtle,
    usages: sig
  };
}
function mldsa(parameterSet) {
  const subtle = { name: `ML-DSA-${parameterSet}` };
  return {
    kty: ["AKP"],
    subtle,
    signing: subtle,
    usages: sig
  };
}
var JWS = table({
  HS256: hmac(256),
  HS384: hmac(384),
  HS512: hmac(512),
  RS256: rsa(256),
  RS384: rsa(384),
  RS512: rsa(512),
  PS256: rsa(256, 32),
  PS384: rsa(384, 48),
  PS512: rsa(512, 64),
  ES256: ecdsa("P-256", 256),
  ES384: ecdsa("P-384", 384),
  ES512: ecdsa("P-521", 512),
  EdDSA: eddsa(),
  Ed25519: eddsa(),
  "ML-DSA-44": mldsa(44),
  "ML-DSA-65": mldsa(65),
  "ML-DSA-87": mldsa(87)
});
function jwsAlgorithm(alg) {
  const entry = typeof alg == "string" ? JWS[alg] : void 0;
  if (!entry)
    throw new JOSENotSupported(`alg ${alg} is not supported either by JOSE or your javascript runtime`);
  return entry;
}

// node_modules/jose/dist/webapi/lib/jwt_claims_set.js
var epoch = (date) => Math.floor(date.getTime() / 1e3);
var multipliers = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
  w: 604800,
  y: 31557600
};
var REGEX = /^(\+|\-)? ?(\d+|\d+\.\d+) ?(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w|years?|yrs?|y)(?: (ago|from now))?$/i;
function invalidDuration() {
  throw new TypeError("Invalid time period format");
}
function secs(str) {
  typeof str != "string" && invalidDuration();
  const matched = REGEX.exec(str);
  (!matched || matched[4] && matched[1]) && invalidDuration();
  const value = parseFloat(matched[2]), durationSeconds = Math.round(value * multipliers[matched[3][0].toLowerCase()]);
  return Number.isFinite(durationSeconds) || invalidDuration(), matched[1] === "-" || matched[4] === "ago" ? -durationSeconds : durationSeconds;
}
function validateInput(label, input) {
  if (!Number.isFinite(input))
    throw new TypeError(`Invalid ${label} input`);
  return input;
}
function validateStringClaim(claim, value) {
  if (typeof value != "string")
    throw new TypeError(`"${claim}" claim must be a string`);
}
function validateAudienceClaim(value) {
  if (typeof value != "string" && (!Array.isArray(value) || Array.from(value).some((member) => typeof member != "string")))
    throw new TypeError('"aud" claim must be a string or an array of strings');
}
function numericDate(value, label) {
  return typeof value == "number" ? validateInput(label, value) : value instanceof Date ? validateInput(label, epoch(value)) : epoch(/* @__PURE__ */ new Date()) + secs(value);
}
var producerClaimsSets;
function producerClaimsSet(producer) {
  return producerClaimsSets.get(producer);
}
function jwtClaimsSetBytes(producer) {
  const claimsSet = producerClaimsSet(producer);
  for (const claim of ["iat", "nbf", "exp"]) {
    const value = claimsSet[claim];
    if (typeof value == "number" && !Number.isFinite(value))
      throw new TypeError(`"${claim}" claim must be a finite number`);
  }
  return encoder.encode(JSON.stringify(claimsSet));
}
var JWTClaimsBuilder = class {
  constructor(claimsSet = {}) {
    if (!isObject(claimsSet))
      throw new TypeError("JWT Claims Set MUST be an object");
    (producerClaimsSets ||= /* @__PURE__ */ new WeakMap()).set(this, structuredClone(claimsSet));
  }
  setIssuer(value) {
    return validateStringClaim("iss", value), producerClaimsSet(this).iss = value, this;
  }
  setSubject(value) {
    return validateStringClaim("sub", value), producerClaimsSet(this).sub = value, this;
  }
  setAudience(value) {
    return validateAudienceClaim(value), producerClaimsSet(this).aud = value, this;
  }
  setJti(value) {
    return validateStringClaim("jti", value), producerClaimsSet(this).jti = value, this;
  }
  setNotBefore(value) {
    return producerClaimsSet(this).nbf = numericDate(value, "setNotBefore"), this;
  }
  setExpirationTime(value) {
    return producerClaimsSet(this).exp = numericDate(value, "setExpirationTime"), this;
  }
  setIssuedAt(value) {
    const claimsSet = producerClaimsSet(this);
    return value === void 0 ? claimsSet.iat = epoch(/* @__PURE__ */ new Date()) : typeof value == "string" ? claimsSet.iat = validateInput("setIssuedAt", epoch(/* @__PURE__ */ new Date()) + secs(value)) : claimsSet.iat = numericDate(value, "setIssuedAt"), this;
  }
};

// node_modules/jose/dist/webapi/lib/jws_sign.js
async function createSignature(input, key, rejectUnencoded) {
  let [payload, protectedHeader, unprotectedHeader, crit] = input, encodedProtectedHeader = "";
  if (protectedHeader !== void 0) {
    const normalized = serializeJoseHeader(JWSInvalid, protectedHeader);
    protectedHeader = normalized[0], encodedProtectedHeader = encode2(normalized[1]);
  }
  if (unprotectedHeader !== void 0 && (unprotectedHeader = serializeJoseHeader(JWSInvalid, unprotectedHeader)[0]), !protectedHeader && !unprotectedHeader)
    throw new JWSInvalid("either setProtectedHeader or setUnprotectedHeader must be called before #sign()");
  if (!isDisjoint(protectedHeader, unprotectedHeader))
    throw new JWSInvalid("JWS Protected and JWS Unprotected Header Parameter names must be disjoint");
  const joseHeader = { ...protectedHeader, ...unprotectedHeader };
  validateCritDuplicates(JWSInvalid, protectedHeader);
  const b64 = validateB64(protectedHeader, validateCrit(JWSInvalid, JWS_RECOGNIZED, crit, protectedHeader, joseHeader));
  b64 || rejectUnencoded?.();
  const { alg } = joseHeader;
  if (typeof alg != "string" || !alg)
    throw new JWSInvalid('JWS "alg" (Algorithm) Header Parameter missing or invalid');
  const entry = jwsAlgorithm(alg);
  let encodedPayload = "", signingPayload = payload, signingInput;
  if (b64) {
    const encodedPayloadCache = input[4];
    encodedPayloadCache ? (encodedPayload = encodedPayloadCache[0] ??= encode2(payload), signingPayload = encodedPayloadCache[1] ??= encode(encodedPayload)) : (encodedPayload = encode2(payload), signingInput = encoder.encode(`${encodedProtectedHeader}.${encodedPayload}`));
  }
  signingInput ??= concat(encode(encodedProtectedHeader), encode("."), signingPayload);
  const signingKey = await rawKey(await prepareKey(entry, key, "sign"), entry.subtle, "sign");
  entry.minRsaBits && checkModulusLength(entry.alg, signingKey);
  const jws = {
    signature: encode2(new Uint8Array(await crypto.subtle.sign(entry.signing, signingKey, signingInput))),
    payload: encodedPayload
  };
  return protectedHeader && (jws.protected = encodedProtectedHeader), unprotectedHeader && (jws.header = unprotectedHeader), [jws, b64];
}
async function createCompactSignature(payload, protectedHeader, crit, key, rejectUnencoded) {
  const [jws] = await createSignature([payload, protectedHeader, void 0, crit], key, rejectUnencoded);
  return `${jws.protected}.${jws.payload}.${jws.signature}`;
}

// node_modules/jose/dist/webapi/jwt/sign.js
var SignJWT_base = JWTClaimsBuilder;
var SignJWT = class extends SignJWT_base {
  #protectedHeader;
  setProtectedHeader(protectedHeader) {
    return assertNotSet(this.#protectedHeader, "setProtectedHeader"), this.#protectedHeader = protectedHeader, this;
  }
  async sign(key, options) {
    return createCompactSignature(jwtClaimsSetBytes(this), this.#protectedHeader, options?.crit, key, () => {
      throw new JWTInvalid("JWTs MUST NOT use unencoded payload");
    });
  }
};

// node_modules/jose/dist/webapi/util/decode_jwt.js
function decodeJwt(jwt) {
  if (typeof jwt != "string")
    throw new JWTInvalid("JWTs must use Compact JWS serialization, JWT must be a string");
  const { 1: encodedPayload, length } = jwt.split(".");
  if (length === 5)
    throw new JWTInvalid("Only JWTs using Compact JWS serialization can be decoded");
  if (length !== 3)
    throw new JWTInvalid("Invalid JWT");
  if (!encodedPayload)
    throw new JWTInvalid("JWTs must contain a payload");
  let claimsSetBytes;
  try {
    claimsSetBytes = decode(encodedPayload);
  } catch (cause) {
    throw new JWTInvalid("Failed to base64url decode the payload", { cause });
  }
  let claimsSet;
  try {
    claimsSet = JSON.parse(strictDecoder.decode(claimsSetBytes));
  } catch (cause) {
    throw new JWTInvalid("Failed to parse the decoded payload as JSON", { cause });
  }
  if (!isObject(claimsSet))
    throw new JWTInvalid("Invalid JWT Claims Set");
  return claimsSet;
}

// node_modules/oauth4webapi/build/index.js
var USER_AGENT;
if (typeof navigator === "undefined" || !navigator.userAgent?.startsWith?.("Mozilla/5.0 ")) {
  const NAME = "oauth4webapi";
  const VERSION = "v3.8.8";
  USER_AGENT = `${NAME}/${VERSION}`;
}
function looseInstanceOf(input, expected) {
  if (input == null) {
    return false;
  }
  try {
    return input instanceof expected || Object.getPrototypeOf(input)[Symbol.toStringTag] === expected.prototype[Symbol.toStringTag];
  } catch {
    return false;
  }
}
var ERR_INVALID_ARG_VALUE = "ERR_INVALID_ARG_VALUE";
var ERR_INVALID_ARG_TYPE = "ERR_INVALID_ARG_TYPE";
function CodedTypeError(message2, code, cause) {
  const err = new TypeError(message2, { cause });
  Object.assign(err, { code });
  return err;
}
var allowInsecureRequests = /* @__PURE__ */ Symbol();
var clockSkew = /* @__PURE__ */ Symbol();
var clockTolerance = /* @__PURE__ */ Symbol();
var customFetch = /* @__PURE__ */ Symbol();
var modifyAssertion = /* @__PURE__ */ Symbol();
var jweDecrypt = /* @__PURE__ */ Symbol();
var encoder2 = new TextEncoder();
var decoder2 = new TextDecoder();
function buf(input) {
  if (typeof input === "string") {
    return encoder2.encode(input);
  }
  return decoder2.decode(input);
}
var encodeBase64Url;
if (Uint8Array.prototype.toBase64) {
  encodeBase64Url = (input) => {
    if (input instanceof ArrayBuffer) {
      input = new Uint8Array(input);
    }
    return input.toBase64({ alphabet: "base64url", omitPadding: true });
  };
} else {
  const CHUNK_SIZE = 32768;
  encodeBase64Url = (input) => {
    if (input instanceof ArrayBuffer) {
      input = new Uint8Array(input);
    }
    const arr = [];
    for (let i = 0; i < input.byteLength; i += CHUNK_SIZE) {
      arr.push(String.fromCharCode.apply(null, input.subarray(i, i + CHUNK_SIZE)));
    }
    return btoa(arr.join("")).replace(/=/g, "").replace(/\+/g, "-").replace(/\//g, "_");
  };
}
var decodeBase64Url;
if (Uint8Array.fromBase64) {
  decodeBase64Url = (input) => {
    try {
      return Uint8Array.fromBase64(input, { alphabet: "base64url" });
    } catch (cause) {
      throw CodedTypeError("The input to be decoded is not correctly encoded.", ERR_INVALID_ARG_VALUE, cause);
    }
  };
} else {
  decodeBase64Url = (input) => {
    try {
      const binary = atob(input.replace(/-/g, "+").replace(/_/g, "/").replace(/\s/g, ""));
      const bytes = new Uint8Array(binary.length);
      for (let i = 0; i < binary.length; i++) {
        bytes[i] = binary.charCodeAt(i);
      }
      return bytes;
    } catch (cause) {
      throw CodedTypeError("The input to be decoded is not correctly encoded.", ERR_INVALID_ARG_VALUE, cause);
    }
  };
}
function b64u(input) {
  if (typeof input === "string") {
    return decodeBase64Url(input);
  }
  return encodeBase64Url(input);
}
var UnsupportedOperationError = class extends Error {
  code;
  constructor(message2, options) {
    super(message2, options);
    this.name = this.constructor.name;
    this.code = UNSUPPORTED_OPERATION;
    Error.captureStackTrace?.(this, this.constructor);
  }
};
var OperationProcessingError = class extends Error {
  code;
  constructor(message2, options) {
    super(message2, options);
    this.name = this.constructor.name;
    if (options?.code) {
      this.code = options?.code;
    }
    Error.captureStackTrace?.(this, this.constructor);
  }
};
function OPE(message2, code, cause) {
  return new OperationProcessingError(message2, { code, cause });
}
async function calculateJwkThumbprint(jwk) {
  let components;
  switch (jwk.kty) {
    case "EC":
      components = {
        crv: jwk.crv,
        kty: jwk.kty,
        x: jwk.x,
        y: jwk.y
      };
      break;
    case "OKP":
      components = {
        crv: jwk.crv,
        kty: jwk.kty,
        x: jwk.x
      };
      break;
    case "AKP":
      components = {
        alg: jwk.alg,
        kty: jwk.kty,
        pub: jwk.pub
      };
      break;
    case "RSA":
      components = {
        e: jwk.e,
        kty: jwk.kty,
        n: jwk.n
      };
      break;
    default:
      throw new UnsupportedOperationError("unsupported JWK key type", { cause: jwk });
  }
  return b64u(await crypto.subtle.digest("SHA-256", buf(JSON.stringify(components))));
}
function assertCryptoKey(key, it) {
  if (!(key instanceof CryptoKey)) {
    throw CodedTypeError(`${it} must be a CryptoKey`, ERR_INVALID_ARG_TYPE);
  }
}
function assertPrivateKey(key, it) {
  assertCryptoKey(key, it);
  if (key.type !== "private") {
    throw CodedTypeError(`${it} must be a private CryptoKey`, ERR_INVALID_ARG_VALUE);
  }
}
function assertPublicKey(key, it) {
  assertCryptoKey(key, it);
  if (key.type !== "public") {
    throw CodedTypeError(`${it} must be a public CryptoKey`, ERR_INVALID_ARG_VALUE);
  }
}
function isJsonObject(input) {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    return false;
  }
  return true;
}
function prepareHeaders(input) {
  if (looseInstanceOf(input, Headers)) {
    input = Object.fromEntries(input.entries());
  }
  const headers2 = new Headers(input ?? {});
  if (USER_AGENT && !headers2.has("user-agent")) {
    headers2.set("user-agent", USER_AGENT);
  }
  if (headers2.has("authorization")) {
    throw CodedTypeError('"options.headers" must not include the "authorization" header name', ERR_INVALID_ARG_VALUE);
  }
  return headers2;
}
function signal(url, value) {
  if (value !== void 0) {
    if (typeof value === "function") {
      value = value(url.href);
    }
    if (!(value instanceof AbortSignal)) {
      throw CodedTypeError('"options.signal" must return or be an instance of AbortSignal', ERR_INVALID_ARG_TYPE);
    }
    return value;
  }
  return void 0;
}
function replaceDoubleSlash(pathname) {
  if (pathname.includes("//")) {
    return pathname.replace("//", "/");
  }
  return pathname;
}
function prependWellKnown(url, wellKnown, allowTerminatingSlash = false) {
  if (url.pathname === "/") {
    url.pathname = wellKnown;
  } else {
    url.pathname = replaceDoubleSlash(`${wellKnown}/${allowTerminatingSlash ? url.pathname : url.pathname.replace(/(\/)$/, "")}`);
  }
  return url;
}
function appendWellKnown(url, wellKnown) {
  url.pathname = replaceDoubleSlash(`${url.pathname}/${wellKnown}`);
  return url;
}
async function performDiscovery(input, urlName, transform2, options) {
  if (!(input instanceof URL)) {
    throw CodedTypeError(`"${urlName}" must be an instance of URL`, ERR_INVALID_ARG_TYPE);
  }
  checkProtocol(input, options?.[allowInsecureRequests] !== true);
  const url = transform2(new URL(input.href));
  const headers2 = prepareHeaders(options?.headers);
  headers2.set("accept", "application/json");
  return (options?.[customFetch] || fetch)(url.href, {
    body: void 0,
    headers: Object.fromEntries(headers2.entries()),
    method: "GET",
    redirect: "manual",
    signal: signal(url, options?.signal)
  });
}
async function discoveryRequest(issuerIdentifier, options) {
  return performDiscovery(issuerIdentifier, "issuerIdentifier", (url) => {
    switch (options?.algorithm) {
      case void 0:
      case "oidc":
        appendWellKnown(url, ".well-known/openid-configuration");
        break;
      case "oauth2":
        prependWellKnown(url, ".well-known/oauth-authorization-server");
        break;
      default:
        throw CodedTypeError('"options.algorithm" must be "oidc" (default), or "oauth2"', ERR_INVALID_ARG_VALUE);
    }
    return url;
  }, options);
}
function assertNumber(input, allow0, it, code, cause) {
  try {
    if (typeof input !== "number" || !Number.isFinite(input)) {
      throw CodedTypeError(`${it} must be a number`, ERR_INVALID_ARG_TYPE, cause);
    }
    if (input > 0)
      return;
    if (allow0) {
      if (input !== 0) {
        throw CodedTypeError(`${it} must be a non-negative number`, ERR_INVALID_ARG_VALUE, cause);
      }
      return;
    }
    throw CodedTypeError(`${it} must be a positive number`, ERR_INVALID_ARG_VALUE, cause);
  } catch (err) {
    if (code) {
      throw OPE(err.message, code, cause);
    }
    throw err;
  }
}
function assertString(input, it, code, cause) {
  try {
    if (typeof input !== "string") {
      throw CodedTypeError(`${it} must be a string`, ERR_INVALID_ARG_TYPE, cause);
    }
    if (input.length === 0) {
      throw CodedTypeError(`${it} must not be empty`, ERR_INVALID_ARG_VALUE, cause);
    }
  } catch (err) {
    if (code) {
      throw OPE(err.message, code, cause);
    }
    throw err;
  }
}
async function processDiscoveryResponse(expectedIssuerIdentifier, response) {
  const expected = expectedIssuerIdentifier;
  if (!(expected instanceof URL) && expected !== _nodiscoverycheck) {
    throw CodedTypeError('"expectedIssuerIdentifier" must be an instance of URL', ERR_INVALID_ARG_TYPE);
  }
  if (!looseInstanceOf(response, Response)) {
    throw CodedTypeError('"response" must be an instance of Response', ERR_INVALID_ARG_TYPE);
  }
  if (response.status !== 200) {
    throw OPE('"response" is not a conform Authorization Server Metadata response (unexpected HTTP status code)', RESPONSE_IS_NOT_CONFORM, response);
  }
  assertReadableResponse(response);
  const json = await getResponseJsonBody(response);
  assertString(json.issuer, '"response" body "issuer" property', INVALID_RESPONSE, { body: json });
  if (expected !== _nodiscoverycheck && new URL(json.issuer).href !== expected.href) {
    throw OPE('"response" body "issuer" property does not match the expected value', JSON_ATTRIBUTE_COMPARISON, { expected: expected.href, body: json, attribute: "issuer" });
  }
  return json;
}
function assertApplicationJson(response) {
  assertContentType(response, "application/json");
}
function notJson(response, ...types) {
  let msg = '"response" content-type must be ';
  if (types.length > 2) {
    const last = types.pop();
    msg += `${types.join(", ")}, or ${last}`;
  } else if (types.length === 2) {
    msg += `${types[0]} or ${types[1]}`;
  } else {
    msg += types[0];
  }
  return OPE(msg, RESPONSE_IS_NOT_JSON, response);
}
function assertContentType(response, contentType) {
  if (getContentType(response) !== contentType) {
    throw notJson(response, contentType);
  }
}
function randomBytes() {
  return b64u(crypto.getRandomValues(new Uint8Array(32)));
}
function psAlg(key) {
  switch (key.algorithm.hash.name) {
    case "SHA-256":
      return "PS256";
    case "SHA-384":
      return "PS384";
    case "SHA-512":
      return "PS512";
    default:
      throw new UnsupportedOperationError("unsupported RsaHashedKeyAlgorithm hash name", {
        cause: key
      });
  }
}
function rsAlg(key) {
  switch (key.algorithm.hash.name) {
    case "SHA-256":
      return "RS256";
    case "SHA-384":
      return "RS384";
    case "SHA-512":
      return "RS512";
    default:
      throw new UnsupportedOperationError("unsupported RsaHashedKeyAlgorithm hash name", {
        cause: key
      });
  }
}
function esAlg(key) {
  switch (key.algorithm.namedCurve) {
    case "P-256":
      return "ES256";
    case "P-384":
      return "ES384";
    case "P-521":
      return "ES512";
    default:
      throw new UnsupportedOperationError("unsupported EcKeyAlgorithm namedCurve", { cause: key });
  }
}
function keyToJws(key) {
  switch (key.algorithm.name) {
    case "RSA-PSS":
      return psAlg(key);
    case "RSASSA-PKCS1-v1_5":
      return rsAlg(key);
    case "ECDSA":
      return esAlg(key);
    case "Ed25519":
    case "ML-DSA-44":
    case "ML-DSA-65":
    case "ML-DSA-87":
      return key.algorithm.name;
    case "EdDSA":
      return "Ed25519";
    default:
      throw new UnsupportedOperationError("unsupported CryptoKey algorithm name", { cause: key });
  }
}
function getClockSkew(client) {
  const skew = client?.[clockSkew];
  return typeof skew === "number" && Number.isFinite(skew) ? skew : 0;
}
function getClockTolerance(client) {
  const tolerance = client?.[clockTolerance];
  return typeof tolerance === "number" && Number.isFinite(tolerance) && Math.sign(tolerance) !== -1 ? tolerance : 30;
}
function epochTime() {
  return Math.floor(Date.now() / 1e3);
}
function assertAs(as) {
  if (typeof as !== "object" || as === null) {
    throw CodedTypeError('"as" must be an object', ERR_INVALID_ARG_TYPE);
  }
  assertString(as.issuer, '"as.issuer"');
}
function assertClient(client) {
  if (typeof client !== "object" || client === null) {
    throw CodedTypeError('"client" must be an object', ERR_INVALID_ARG_TYPE);
  }
  assertString(client.client_id, '"client.client_id"');
}
function ClientSecretPost(clientSecret) {
  assertString(clientSecret, '"clientSecret"');
  return (_as, client, body, _headers) => {
    body.set("client_id", client.client_id);
    body.set("client_secret", clientSecret);
  };
}
function None() {
  return (_as, client, body, _headers) => {
    body.set("client_id", client.client_id);
  };
}
async function signJwt(header, payload, key) {
  if (!key.usages.includes("sign")) {
    throw CodedTypeError('CryptoKey instances used for signing assertions must include "sign" in their "usages"', ERR_INVALID_ARG_VALUE);
  }
  const input = `${b64u(buf(JSON.stringify(header)))}.${b64u(buf(JSON.stringify(payload)))}`;
  const signature = b64u(await crypto.subtle.sign(keyToSubtle(key), key, buf(input)));
  return `${input}.${signature}`;
}
var jwkCache;
async function getSetPublicJwkCache(key, alg) {
  const { kty, e: e2, n, x, y, crv, pub } = await crypto.subtle.exportKey("jwk", key);
  const jwk = { kty, e: e2, n, x, y, crv, pub };
  if (kty === "AKP")
    jwk.alg = alg;
  jwkCache.set(key, jwk);
  return jwk;
}
async function publicJwk(key, alg) {
  jwkCache ||= /* @__PURE__ */ new WeakMap();
  return jwkCache.get(key) || getSetPublicJwkCache(key, alg);
}
var URLParse = URL.parse ? (url, base) => URL.parse(url, base) : (url, base) => {
  try {
    return new URL(url, base);
  } catch {
    return null;
  }
};
function checkProtocol(url, enforceHttps) {
  if (enforceHttps && url.protocol !== "https:") {
    throw OPE("only requests to HTTPS are allowed", HTTP_REQUEST_FORBIDDEN, url);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw OPE("only HTTP and HTTPS requests are allowed", REQUEST_PROTOCOL_FORBIDDEN, url);
  }
}
function validateEndpoint(value, endpoint2, useMtlsAlias, enforceHttps) {
  let url;
  if (typeof value !== "string" || !(url = URLParse(value))) {
    throw OPE(`authorization server metadata does not contain a valid ${useMtlsAlias ? `"as.mtls_endpoint_aliases.${endpoint2}"` : `"as.${endpoint2}"`}`, value === void 0 ? MISSING_SERVER_METADATA : INVALID_SERVER_METADATA, { attribute: useMtlsAlias ? `mtls_endpoint_aliases.${endpoint2}` : endpoint2 });
  }
  checkProtocol(url, enforceHttps);
  return url;
}
function resolveEndpoint(as, endpoint2, useMtlsAlias, enforceHttps) {
  if (useMtlsAlias && as.mtls_endpoint_aliases && endpoint2 in as.mtls_endpoint_aliases) {
    return validateEndpoint(as.mtls_endpoint_aliases[endpoint2], endpoint2, useMtlsAlias, enforceHttps);
  }
  return validateEndpoint(as[endpoint2], endpoint2, useMtlsAlias, enforceHttps);
}
var DPoPHandler = class {
  #header;
  #privateKey;
  #publicKey;
  #clockSkew;
  #modifyAssertion;
  #map;
  #jkt;
  constructor(client, keyPair, options) {
    assertPrivateKey(keyPair?.privateKey, '"DPoP.privateKey"');
    assertPublicKey(keyPair?.publicKey, '"DPoP.publicKey"');
    if (!keyPair.publicKey.extractable) {
      throw CodedTypeError('"DPoP.publicKey.extractable" must be true', ERR_INVALID_ARG_VALUE);
    }
    this.#modifyAssertion = options?.[modifyAssertion];
    this.#clockSkew = getClockSkew(client);
    this.#privateKey = keyPair.privateKey;
    this.#publicKey = keyPair.publicKey;
    branded.add(this);
  }
  #get(key) {
    this.#map ||= /* @__PURE__ */ new Map();
    let item = this.#map.get(key);
    if (item) {
      this.#map.delete(key);
      this.#map.set(key, item);
    }
    return item;
  }
  #set(key, val) {
    this.#map ||= /* @__PURE__ */ new Map();
    this.#map.delete(key);
    if (this.#map.size === 100) {
      this.#map.delete(this.#map.keys().next().value);
    }
    this.#map.set(key, val);
  }
  async calculateThumbprint() {
    if (!this.#jkt) {
      const jwk = await crypto.subtle.exportKey("jwk", this.#publicKey);
      this.#jkt ||= await calculateJwkThumbprint(jwk);
    }
    return this.#jkt;
  }
  async addProof(url, headers2, htm, accessToken) {
    const alg = keyToJws(this.#privateKey);
    this.#header ||= {
      alg,
      typ: "dpop+jwt",
      jwk: await publicJwk(this.#publicKey, alg)
    };
    const nonce = this.#get(url.origin);
    const now = epochTime() + this.#clockSkew;
    const payload = {
      iat: now,
      jti: randomBytes(),
      htm,
      nonce,
      htu: `${url.origin}${url.pathname}`,
      ath: accessToken ? b64u(await crypto.subtle.digest("SHA-256", buf(accessToken))) : void 0
    };
    this.#modifyAssertion?.(this.#header, payload);
    headers2.set("dpop", await signJwt(this.#header, payload, this.#privateKey));
  }
  cacheNonce(response, url) {
    try {
      const nonce = response.headers.get("dpop-nonce");
      if (nonce) {
        this.#set(url.origin, nonce);
      }
    } catch {
    }
  }
};
function isDPoPNonceError(err) {
  if (err instanceof WWWAuthenticateChallengeError) {
    return err.cause.some((challenge) => challenge.scheme === "dpop" && challenge.parameters.error === "use_dpop_nonce");
  }
  if (err instanceof ResponseBodyError) {
    return err.error === "use_dpop_nonce";
  }
  return false;
}
function DPoP(client, keyPair, options) {
  return new DPoPHandler(client, keyPair, options);
}
var ResponseBodyError = class extends Error {
  cause;
  code;
  error;
  status;
  error_description;
  response;
  constructor(message2, options) {
    super(message2, options);
    this.name = this.constructor.name;
    this.code = RESPONSE_BODY_ERROR;
    this.cause = options.cause;
    this.error = options.cause.error;
    this.status = options.response.status;
    this.error_description = options.cause.error_description;
    Object.defineProperty(this, "response", { enumerable: false, value: options.response });
    Error.captureStackTrace?.(this, this.constructor);
  }
};
var AuthorizationResponseError = class extends Error {
  cause;
  code;
  error;
  error_description;
  constructor(message2, options) {
    super(message2, options);
    this.name = this.constructor.name;
    this.code = AUTHORIZATION_RESPONSE_ERROR;
    this.cause = options.cause;
    this.error = options.cause.get("error");
    this.error_description = options.cause.get("error_description") ?? void 0;
    Error.captureStackTrace?.(this, this.constructor);
  }
};
var WWWAuthenticateChallengeError = class extends Error {
  cause;
  code;
  response;
  status;
  constructor(message2, options) {
    super(message2, options);
    this.name = this.constructor.name;
    this.code = WWW_AUTHENTICATE_CHALLENGE;
    this.cause = options.cause;
    this.status = options.response.status;
    this.response = options.response;
    Object.defineProperty(this, "response", { enumerable: false });
    Error.captureStackTrace?.(this, this.constructor);
  }
};
var tokenMatch = "[a-zA-Z0-9!#$%&\\'\\*\\+\\-\\.\\^_`\\|~]+";
var token68Match = "[a-zA-Z0-9\\-\\._\\~\\+\\/]+={0,2}";
var quotedMatch = '"((?:[^"\\\\]|\\\\[\\s\\S])*)"';
var quotedParamMatcher = "(" + tokenMatch + ")\\s*=\\s*" + quotedMatch;
var paramMatcher = "(" + tokenMatch + ")\\s*=\\s*(" + tokenMatch + ")";
var schemeRE = new RegExp("^[,\\s]*(" + tokenMatch + ")");
var quotedParamRE = new RegExp("^[,\\s]*" + quotedParamMatcher + "[,\\s]*(.*)");
var unquotedParamRE = new RegExp("^[,\\s]*" + paramMatcher + "[,\\s]*(.*)");
var token68ParamRE = new RegExp("^(" + token68Match + ")(?:$|[,\\s])(.*)");
function parseWwwAuthenticateChallenges(response) {
  if (!looseInstanceOf(response, Response)) {
    throw CodedTypeError('"response" must be an instance of Response', ERR_INVALID_ARG_TYPE);
  }
  const header = response.headers.get("www-authenticate");
  if (header === null) {
    return void 0;
  }
  const challenges = [];
  let rest = header;
  while (rest) {
    let match = rest.match(schemeRE);
    const scheme = match?.["1"].toLowerCase();
    if (!scheme) {
      return void 0;
    }
    const afterScheme = rest.substring(match[0].length);
    if (afterScheme && !afterScheme.match(/^[\s,]/)) {
      return void 0;
    }
    const spaceMatch = afterScheme.match(/^\s+(.*)$/);
    const hasParameters = !!spaceMatch;
    rest = spaceMatch ? spaceMatch[1] : void 0;
    const parameters = {};
    let token68;
    if (hasParameters) {
      while (rest) {
        let key;
        let value;
        if (match = rest.match(quotedParamRE)) {
          ;
          [, key, value, rest] = match;
          if (value.includes("\\")) {
            value = value.replace(/\\([\s\S])/g, "$1");
          }
          parameters[key.toLowerCase()] = value;
          continue;
        }
        if (match = rest.match(unquotedParamRE)) {
          ;
          [, key, value, rest] = match;
          parameters[key.toLowerCase()] = value;
          continue;
        }
        if (match = rest.match(token68ParamRE)) {
          if (Object.keys(parameters).length) {
            break;
          }
          ;
          [, token68, rest] = match;
          break;
        }
        return void 0;
      }
    } else {
      rest = afterScheme || void 0;
    }
    const challenge = { scheme, parameters };
    if (token68) {
      challenge.token68 = token68;
    }
    challenges.push(challenge);
  }
  if (!challenges.length) {
    return void 0;
  }
  return challenges;
}
async function parseOAuthResponseErrorBody(response) {
  if (response.status > 399 && response.status < 500) {
    assertReadableResponse(response);
    assertApplicationJson(response);
    try {
      const json = await response.clone().json();
      if (isJsonObject(json) && typeof json.error === "string" && json.error.length) {
        return json;
      }
    } catch {
    }
  }
  return void 0;
}
async function checkOAuthBodyError(response, expected, label) {
  if (response.status !== expected) {
    checkAuthenticationChallenges(response);
    let err;
    if (err = await parseOAuthResponseErrorBody(response)) {
      await response.body?.cancel();
      throw new ResponseBodyError("server responded with an error in the response body", {
        cause: err,
        response
      });
    }
    throw OPE(`"response" is not a conform ${label} response (unexpected HTTP status code)`, RESPONSE_IS_NOT_CONFORM, response);
  }
}
function assertDPoP(option) {
  if (!branded.has(option)) {
    throw CodedTypeError('"options.DPoP" is not a valid DPoPHandle', ERR_INVALID_ARG_VALUE);
  }
}
function getContentType(input) {
  return input.headers.get("content-type")?.split(";")[0];
}
async function authenticatedRequest(as, client, clientAuthentication, url, body, headers2, options) {
  await clientAuthentication(as, client, body, headers2);
  headers2.set("content-type", "application/x-www-form-urlencoded;charset=UTF-8");
  return (options?.[customFetch] || fetch)(url.href, {
    body,
    headers: Object.fromEntries(headers2.entries()),
    method: "POST",
    redirect: "manual",
    signal: signal(url, options?.signal)
  });
}
async function tokenEndpointRequest(as, client, clientAuthentication, grantType, parameters, options) {
  const url = resolveEndpoint(as, "token_endpoint", client.use_mtls_endpoint_aliases, options?.[allowInsecureRequests] !== true);
  parameters.set("grant_type", grantType);
  const headers2 = prepareHeaders(options?.headers);
  headers2.set("accept", "application/json");
  if (options?.DPoP !== void 0) {
    assertDPoP(options.DPoP);
    await options.DPoP.addProof(url, headers2, "POST");
  }
  const response = await authenticatedRequest(as, client, clientAuthentication, url, parameters, headers2, options);
  options?.DPoP?.cacheNonce(response, url);
  return response;
}
var idTokenClaims = /* @__PURE__ */ new WeakMap();
var jwtRefs = /* @__PURE__ */ new WeakMap();
function getValidatedIdTokenClaims(ref) {
  if (!ref.id_token) {
    return void 0;
  }
  const claims = idTokenClaims.get(ref);
  if (!claims) {
    throw CodedTypeError('"ref" was already garbage collected or did not resolve from the proper sources', ERR_INVALID_ARG_VALUE);
  }
  return claims;
}
async function processGenericAccessTokenResponse(as, client, response, additionalRequiredIdTokenClaims, decryptFn, recognizedTokenTypes) {
  assertAs(as);
  assertClient(client);
  if (!looseInstanceOf(response, Response)) {
    throw CodedTypeError('"response" must be an instance of Response', ERR_INVALID_ARG_TYPE);
  }
  await checkOAuthBodyError(response, 200, "Token Endpoint");
  assertReadableResponse(response);
  const json = await getResponseJsonBody(response);
  assertString(json.access_token, '"response" body "access_token" property', INVALID_RESPONSE, {
    body: json
  });
  assertString(json.token_type, '"response" body "token_type" property', INVALID_RESPONSE, {
    body: json
  });
  json.token_type = json.token_type.toLowerCase();
  if (json.expires_in !== void 0) {
    let expiresIn = typeof json.expires_in !== "number" ? parseFloat(json.expires_in) : json.expires_in;
    assertNumber(expiresIn, true, '"response" body "expires_in" property', INVALID_RESPONSE, {
      body: json
    });
    json.expires_in = expiresIn;
  }
  if (json.refresh_token !== void 0) {
    assertString(json.refresh_token, '"response" body "refresh_token" property', INVALID_RESPONSE, {
      body: json
    });
  }
  if (json.scope !== void 0 && typeof json.scope !== "string") {
    throw OPE('"response" body "scope" property must be a string', INVALID_RESPONSE, { body: json });
  }
  if (json.id_token !== void 0) {
    assertString(json.id_token, '"response" body "id_token" property', INVALID_RESPONSE, {
      body: json
    });
    const requiredClaims = [];
    if (client.require_auth_time === true) {
      requiredClaims.push("auth_time");
    }
    if (client.default_max_age !== void 0) {
      assertNumber(client.default_max_age, true, '"client.default_max_age"');
      requiredClaims.push("auth_time");
    }
    if (additionalRequiredIdTokenClaims?.length) {
      requiredClaims.push(...additionalRequiredIdTokenClaims);
    }
    const { claims, jwt } = await validateIdTokenClaims(as, client, json.id_token, requiredClaims, decryptFn);
    validateIdTokenAuthorizedParty(client, claims);
    validateIdTokenAuthTimeClaim(claims);
    jwtRefs.set(response, jwt);
    idTokenClaims.set(json, claims);
  }
  if (recognizedTokenTypes?.[json.token_type] !== void 0) {
    recognizedTokenTypes[json.token_type](response, json);
  } else if (json.token_type !== "dpop" && json.token_type !== "bearer") {
    throw new UnsupportedOperationError("unsupported `token_type` value", { cause: { body: json } });
  }
  return json;
}
function checkAuthenticationChallenges(response) {
  let challenges;
  if (challenges = parseWwwAuthenticateChallenges(response)) {
    throw new WWWAuthenticateChallengeError("server responded with a challenge in the WWW-Authenticate HTTP Header", { cause: challenges, response });
  }
}
function validateAudience(expected, result) {
  if (Array.isArray(result.claims.aud)) {
    if (!result.claims.aud.includes(expected)) {
      throw OPE('unexpected JWT "aud" (audience) claim value', JWT_CLAIM_COMPARISON, {
        expected,
        claims: result.claims,
        claim: "aud"
      });
    }
  } else if (result.claims.aud !== expected) {
    throw OPE('unexpected JWT "aud" (audience) claim value', JWT_CLAIM_COMPARISON, {
      expected,
      claims: result.claims,
      claim: "aud"
    });
  }
  return result;
}
function validateIssuer(as, result) {
  const expected = as[_expectedIssuer]?.(result) ?? as.issuer;
  if (result.claims.iss !== expected) {
    throw OPE('unexpected JWT "iss" (issuer) claim value', JWT_CLAIM_COMPARISON, {
      expected,
      claims: result.claims,
      claim: "iss"
    });
  }
  return result;
}
var branded = /* @__PURE__ */ new WeakSet();
var jwtClaimNames = {
  aud: "audience",
  c_hash: "code hash",
  client_id: "client id",
  exp: "expiration time",
  iat: "issued at",
  iss: "issuer",
  jti: "jwt id",
  nonce: "nonce",
  s_hash: "state hash",
  sub: "subject",
  ath: "access token hash",
  htm: "http method",
  htu: "http uri",
  cnf: "confirmation",
  auth_time: "authentication time"
};
function validatePresence(required, result) {
  for (const claim of required) {
    if (result.claims[claim] === void 0) {
      throw OPE(`JWT "${claim}" (${jwtClaimNames[claim]}) claim missing`, INVALID_RESPONSE, {
        claims: result.claims
      });
    }
  }
  return result;
}
function validateStringClaim2(claim, result) {
  if (typeof result.claims[claim] !== "string") {
    throw OPE(`unexpected JWT "${claim}" (${jwtClaimNames[claim]}) claim type`, INVALID_RESPONSE, {
      claims: result.claims
    });
  }
  return result;
}
function validateIdTokenClaims(as, client, idToken, requiredClaims, decryptFn) {
  return validateJwt(idToken, checkSigningAlgorithm.bind(void 0, client.id_token_signed_response_alg, as.id_token_signing_alg_values_supported, "RS256"), getClockSkew(client), getClockTolerance(client), decryptFn).then(validatePresence.bind(void 0, ["aud", "exp", "iat", "iss", "sub", ...requiredClaims])).then(validateIssuer.bind(void 0, as)).then(validateAudience.bind(void 0, client.client_id)).then(validateStringClaim2.bind(void 0, "sub"));
}
function validateIdTokenAuthTimeClaim(claims) {
  if (claims.auth_time !== void 0) {
    assertNumber(claims.auth_time, true, 'ID Token "auth_time" (authentication time)', INVALID_RESPONSE, { claims });
  }
}
function validateIdTokenAuthorizedParty(client, claims) {
  if (Array.isArray(claims.aud) && claims.aud.length !== 1) {
    if (claims.azp === void 0) {
      throw OPE('ID Token "aud" (audience) claim includes additional untrusted audiences', JWT_CLAIM_COMPARISON, { claims, claim: "aud" });
    }
    if (claims.azp !== client.client_id) {
      throw OPE('unexpected ID Token "azp" (authorized party) claim value', JWT_CLAIM_COMPARISON, {
        expected: client.client_id,
        claims,
        claim: "azp"
      });
    }
  }
}
var WWW_AUTHENTICATE_CHALLENGE = "OAUTH_WWW_AUTHENTICATE_CHALLENGE";
var RESPONSE_BODY_ERROR = "OAUTH_RESPONSE_BODY_ERROR";
var UNSUPPORTED_OPERATION = "OAUTH_UNSUPPORTED_OPERATION";
var AUTHORIZATION_RESPONSE_ERROR = "OAUTH_AUTHORIZATION_RESPONSE_ERROR";
var PARSE_ERROR = "OAUTH_PARSE_ERROR";
var INVALID_RESPONSE = "OAUTH_INVALID_RESPONSE";
var RESPONSE_IS_NOT_JSON = "OAUTH_RESPONSE_IS_NOT_JSON";
var RESPONSE_IS_NOT_CONFORM = "OAUTH_RESPONSE_IS_NOT_CONFORM";
var HTTP_REQUEST_FORBIDDEN = "OAUTH_HTTP_REQUEST_FORBIDDEN";
var REQUEST_PROTOCOL_FORBIDDEN = "OAUTH_REQUEST_PROTOCOL_FORBIDDEN";
var JWT_TIMESTAMP_CHECK = "OAUTH_JWT_TIMESTAMP_CHECK_FAILED";
var JWT_CLAIM_COMPARISON = "OAUTH_JWT_CLAIM_COMPARISON_FAILED";
var JSON_ATTRIBUTE_COMPARISON = "OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED";
var MISSING_SERVER_METADATA = "OAUTH_MISSING_SERVER_METADATA";
var INVALID_SERVER_METADATA = "OAUTH_INVALID_SERVER_METADATA";
async function genericTokenEndpointRequest(as, client, clientAuthentication, grantType, parameters, options) {
  assertAs(as);
  assertClient(client);
  assertString(grantType, '"grantType"');
  return tokenEndpointRequest(as, client, clientAuthentication, grantType, new URLSearchParams(parameters), options);
}
async function processGenericTokenEndpointResponse(as, client, response, options) {
  return processGenericAccessTokenResponse(as, client, response, void 0, options?.[jweDecrypt], options?.recognizedTokenTypes);
}
function assertReadableResponse(response) {
  if (response.bodyUsed) {
    throw CodedTypeError('"response" body has been used already', ERR_INVALID_ARG_VALUE);
  }
}
function checkRsaKeyAlgorithm(key) {
  const { algorithm } = key;
  if (typeof algorithm.modulusLength !== "number" || algorithm.modulusLength < 2048) {
    throw new UnsupportedOperationError(`unsupported ${algorithm.name} modulusLength`, {
      cause: key
    });
  }
}
function ecdsaHashName(key) {
  const { algorithm } = key;
  switch (algorithm.namedCurve) {
    case "P-256":
      return "SHA-256";
    case "P-384":
      return "SHA-384";
    case "P-521":
      return "SHA-512";
    default:
      throw new UnsupportedOperationError("unsupported ECDSA namedCurve", { cause: key });
  }
}
function keyToSubtle(key) {
  switch (key.algorithm.name) {
    case "ECDSA":
      return {
        name: key.algorithm.name,
        hash: ecdsaHashName(key)
      };
    case "RSA-PSS": {
      checkRsaKeyAlgorithm(key);
      switch (key.algorithm.hash.name) {
        case "SHA-256":
        case "SHA-384":
        case "SHA-512":
          return {
            name: key.algorithm.name,
            saltLength: parseInt(key.algorithm.hash.name.slice(-3), 10) >> 3
          };
        default:
          throw new UnsupportedOperationError("unsupported RSA-PSS hash name", { cause: key });
      }
    }
    case "RSASSA-PKCS1-v1_5":
      checkRsaKeyAlgorithm(key);
      return key.algorithm.name;
    case "ML-DSA-44":
    case "ML-DSA-65":
    case "ML-DSA-87":
    case "Ed25519":
      return key.algorithm.name;
  }
  throw new UnsupportedOperationError("unsupported CryptoKey algorithm name", { cause: key });
}
async function validateJwt(jws, checkAlg, clockSkew2, clockTolerance2, decryptJwt) {
  let { 0: protectedHeader, 1: payload, length } = jws.split(".");
  if (length === 5) {
    if (decryptJwt !== void 0) {
      jws = await decryptJwt(jws);
      ({ 0: protectedHeader, 1: payload, length } = jws.split("."));
    } else {
      throw new UnsupportedOperationError("JWE decryption is not configured", { cause: jws });
    }
  }
  if (length !== 3) {
    throw OPE("Invalid JWT", INVALID_RESPONSE, jws);
  }
  let header;
  try {
    header = JSON.parse(buf(b64u(protectedHeader)));
  } catch (cause) {
    throw OPE("failed to parse JWT Header body as base64url encoded JSON", PARSE_ERROR, cause);
  }
  if (!isJsonObject(header)) {
    throw OPE("JWT Header must be a top level object", INVALID_RESPONSE, jws);
  }
  checkAlg(header);
  if (header.crit !== void 0) {
    throw new UnsupportedOperationError('no JWT "crit" header parameter extensions are supported', {
      cause: { header }
    });
  }
  let claims;
  try {
    claims = JSON.parse(buf(b64u(payload)));
  } catch (cause) {
    throw OPE("failed to parse JWT Payload body as base64url encoded JSON", PARSE_ERROR, cause);
  }
  if (!isJsonObject(claims)) {
    throw OPE("JWT Payload must be a top level object", INVALID_RESPONSE, jws);
  }
  const now = epochTime() + clockSkew2;
  if (claims.exp !== void 0) {
    if (typeof claims.exp !== "number") {
      throw OPE('unexpected JWT "exp" (expiration time) claim type', INVALID_RESPONSE, { claims });
    }
    if (claims.exp <= now - clockTolerance2) {
      throw OPE('unexpected JWT "exp" (expiration time) claim value, expiration is past current timestamp', JWT_TIMESTAMP_CHECK, { claims, now, tolerance: clockTolerance2, claim: "exp" });
    }
  }
  if (claims.iat !== void 0) {
    if (typeof claims.iat !== "number") {
      throw OPE('unexpected JWT "iat" (issued at) claim type', INVALID_RESPONSE, { claims });
    }
  }
  if (claims.iss !== void 0) {
    if (typeof claims.iss !== "string") {
      throw OPE('unexpected JWT "iss" (issuer) claim type', INVALID_RESPONSE, { claims });
    }
  }
  if (claims.nbf !== void 0) {
    if (typeof claims.nbf !== "number") {
      throw OPE('unexpected JWT "nbf" (not before) claim type', INVALID_RESPONSE, { claims });
    }
    if (claims.nbf > now + clockTolerance2) {
      throw OPE('unexpected JWT "nbf" (not before) claim value', JWT_TIMESTAMP_CHECK, {
        claims,
        now,
        tolerance: clockTolerance2,
        claim: "nbf"
      });
    }
  }
  if (claims.aud !== void 0) {
    if (typeof claims.aud !== "string" && !Array.isArray(claims.aud)) {
      throw OPE('unexpected JWT "aud" (audience) claim type', INVALID_RESPONSE, { claims });
    }
  }
  return { header, claims, jwt: jws };
}
function checkSigningAlgorithm(client, issuer, fallback, header) {
  if (client !== void 0) {
    if (typeof client === "string" ? header.alg !== client : !client.includes(header.alg)) {
      throw OPE('unexpected JWT "alg" header parameter', INVALID_RESPONSE, {
        header,
        expected: client,
        reason: "client configuration"
      });
    }
    return;
  }
  if (Array.isArray(issuer)) {
    if (!issuer.includes(header.alg)) {
      throw OPE('unexpected JWT "alg" header parameter', INVALID_RESPONSE, {
        header,
        expected: issuer,
        reason: "authorization server metadata"
      });
    }
    return;
  }
  if (fallback !== void 0) {
    if (typeof fallback === "string" ? header.alg !== fallback : typeof fallback === "function" ? !fallback(header.alg) : !fallback.includes(header.alg)) {
      throw OPE('unexpected JWT "alg" header parameter', INVALID_RESPONSE, {
        header,
        expected: fallback,
        reason: "default value"
      });
    }
    return;
  }
  throw OPE('missing client or server configuration to verify used JWT "alg" header parameter', void 0, { client, issuer, fallback });
}
async function getResponseJsonBody(response, check = assertApplicationJson) {
  let json;
  try {
    json = await response.json();
  } catch (cause) {
    check(response);
    throw OPE('failed to parse "response" body as JSON', PARSE_ERROR, cause);
  }
  if (!isJsonObject(json)) {
    throw OPE('"response" body must be a top level object', INVALID_RESPONSE, { body: json });
  }
  return json;
}
var _nodiscoverycheck = /* @__PURE__ */ Symbol();
var _expectedIssuer = /* @__PURE__ */ Symbol();

// node_modules/openid-client/build/index.js
var headers;
var USER_AGENT2;
if (typeof navigator === "undefined" || !navigator.userAgent?.startsWith?.("Mozilla/5.0 ")) {
  const NAME = "openid-client";
  const VERSION = "v6.8.9";
  USER_AGENT2 = `${NAME}/${VERSION}`;
  headers = { "user-agent": USER_AGENT2 };
}
var int = (config) => {
  return props.get(config);
};
var props;
function ClientSecretPost2(clientSecret) {
  if (clientSecret !== void 0) {
    return ClientSecretPost(clientSecret);
  }
  const cache2 = /* @__PURE__ */ new WeakMap();
  return (as, client, body, headers2) => {
    let auth;
    if (!(auth = cache2.get(client))) {
      assertString2(client.client_secret, '"metadata.client_secret"');
      auth = ClientSecretPost(client.client_secret);
      cache2.set(client, auth);
    }
    return auth(as, client, body, headers2);
  };
}
function assertString2(input, it) {
  if (typeof input !== "string") {
    throw CodedTypeError2(`${it} must be a string`, ERR_INVALID_ARG_TYPE2);
  }
  if (input.length === 0) {
    throw CodedTypeError2(`${it} must not be empty`, ERR_INVALID_ARG_VALUE2);
  }
}
function None2() {
  return None();
}
var customFetch2 = customFetch;
var ERR_INVALID_ARG_VALUE2 = "ERR_INVALID_ARG_VALUE";
var ERR_INVALID_ARG_TYPE2 = "ERR_INVALID_ARG_TYPE";
function CodedTypeError2(message2, code, cause) {
  const err = new TypeError(message2, { cause });
  Object.assign(err, { code });
  return err;
}
var ClientError = class extends Error {
  code;
  constructor(message2, options) {
    super(message2, options);
    this.name = this.constructor.name;
    this.code = options?.code;
    Error.captureStackTrace?.(this, this.constructor);
  }
};
var decoder3 = new TextDecoder();
function e(msg, cause, code) {
  return new ClientError(msg, { cause, code });
}
function errorHandler(err) {
  if (err instanceof TypeError || err instanceof ClientError || err instanceof ResponseBodyError || err instanceof AuthorizationResponseError || err instanceof WWWAuthenticateChallengeError) {
    throw err;
  }
  if (err instanceof OperationProcessingError) {
    switch (err.code) {
      case HTTP_REQUEST_FORBIDDEN:
        throw e("only requests to HTTPS are allowed", err, err.code);
      case REQUEST_PROTOCOL_FORBIDDEN:
        throw e("only requests to HTTP or HTTPS are allowed", err, err.code);
      case RESPONSE_IS_NOT_CONFORM:
        throw e("unexpected HTTP response status code", err.cause, err.code);
      case RESPONSE_IS_NOT_JSON:
        throw e("unexpected response content-type", err.cause, err.code);
      case PARSE_ERROR:
        throw e("parsing error occured", err, err.code);
      case INVALID_RESPONSE:
        throw e("invalid response encountered", err, err.code);
      case JWT_CLAIM_COMPARISON:
        throw e("unexpected JWT claim value encountered", err, err.code);
      case JSON_ATTRIBUTE_COMPARISON:
        throw e("unexpected JSON attribute value encountered", err, err.code);
      case JWT_TIMESTAMP_CHECK:
        throw e("JWT timestamp claim value failed validation", err, err.code);
      default:
        throw e(err.message, err, err.code);
    }
  }
  if (err instanceof UnsupportedOperationError) {
    throw e("unsupported operation", err, err.code);
  }
  if (err instanceof DOMException) {
    switch (err.name) {
      case "OperationError":
        throw e("runtime operation error", err, UNSUPPORTED_OPERATION);
      case "NotSupportedError":
        throw e("runtime unsupported operation", err, UNSUPPORTED_OPERATION);
      case "TimeoutError":
        throw e("operation timed out", err, "OAUTH_TIMEOUT");
      case "AbortError":
        throw e("operation aborted", err, "OAUTH_ABORT");
    }
  }
  throw new ClientError("something went wrong", { cause: err });
}
function handleEntraId(server, as, options) {
  if (server.origin === "https://login.microsoftonline.com" && (!options?.algorithm || options.algorithm === "oidc")) {
    as[kEntraId] = true;
    return true;
  }
  return false;
}
function handleB2Clogin(server, options) {
  if (server.hostname.endsWith(".b2clogin.com") && (!options?.algorithm || options.algorithm === "oidc")) {
    return true;
  }
  return false;
}
async function discovery(server, clientId, metadata, clientAuthentication, options) {
  const as = await performDiscovery2(server, options);
  const instance2 = new Configuration(as, clientId, metadata, clientAuthentication);
  let internals = int(instance2);
  if (options?.[customFetch2]) {
    internals.fetch = options[customFetch2];
  }
  if (options?.timeout !== void 0) {
    internals.timeout = options.timeout;
  }
  if (options?.execute) {
    for (const extension of options.execute) {
      extension(instance2);
    }
  }
  return instance2;
}
async function performDiscovery2(server, options) {
  if (!(server instanceof URL)) {
    throw CodedTypeError2('"server" must be an instance of URL', ERR_INVALID_ARG_TYPE2);
  }
  const resolve2 = !server.href.includes("/.well-known/");
  const timeout = options?.timeout ?? 30;
  const signal3 = AbortSignal.timeout(timeout * 1e3);
  const as = await (resolve2 ? discoveryRequest(server, {
    algorithm: options?.algorithm,
    [customFetch]: options?.[customFetch2],
    [allowInsecureRequests]: options?.execute?.includes(allowInsecureRequests2),
    signal: signal3,
    headers: new Headers(headers)
  }) : (options?.[customFetch2] || fetch)((() => {
    checkProtocol(server, options?.execute?.includes(allowInsecureRequests2) ? false : true);
    return server.href;
  })(), {
    headers: Object.fromEntries(new Headers({ accept: "application/json", ...headers }).entries()),
    body: void 0,
    method: "GET",
    redirect: "manual",
    signal: signal3
  })).then((response) => processDiscoveryResponse(_nodiscoverycheck, response)).catch(errorHandler);
  if (resolve2 && new URL(as.issuer).href !== server.href) {
    handleEntraId(server, as, options) || handleB2Clogin(server, options) || (() => {
      throw new ClientError("discovered metadata issuer does not match the expected issuer", {
        code: JSON_ATTRIBUTE_COMPARISON,
        cause: {
          expected: server.href,
          body: as,
          attribute: "issuer"
        }
      });
    })();
  }
  return as;
}
function getServerHelpers(metadata) {
  return {
    supportsPKCE: {
      __proto__: null,
      value(method = "S256") {
        return metadata.code_challenge_methods_supported?.includes(method) === true;
      }
    }
  };
}
function addServerHelpers(metadata) {
  Object.defineProperties(metadata, getServerHelpers(metadata));
}
var kEntraId = /* @__PURE__ */ Symbol();
var Configuration = class {
  constructor(server, clientId, metadata, clientAuthentication) {
    if (typeof clientId !== "string" || !clientId.length) {
      throw CodedTypeError2('"clientId" must be a non-empty string', ERR_INVALID_ARG_TYPE2);
    }
    if (typeof metadata === "string") {
      metadata = { client_secret: metadata };
    }
    if (metadata?.client_id !== void 0 && clientId !== metadata.client_id) {
      throw CodedTypeError2('"clientId" and "metadata.client_id" must be the same', ERR_INVALID_ARG_VALUE2);
    }
    const client = {
      ...structuredClone(metadata),
      client_id: clientId
    };
    client[clockSkew] = metadata?.[clockSkew] ?? 0;
    client[clockTolerance] = metadata?.[clockTolerance] ?? 30;
    let auth;
    if (clientAuthentication) {
      auth = clientAuthentication;
    } else {
      if (typeof client.client_secret === "string" && client.client_secret.length) {
        auth = ClientSecretPost2(client.client_secret);
      } else {
        auth = None2();
      }
    }
    let c = Object.freeze(client);
    const clone = structuredClone(server);
    if (kEntraId in server) {
      clone[_expectedIssuer] = ({ claims: { tid } }) => server.issuer.replace("{tenantid}", tid);
    }
    let as = Object.freeze(clone);
    props ||= /* @__PURE__ */ new WeakMap();
    props.set(this, {
      __proto__: null,
      as,
      c,
      auth,
      tlsOnly: true,
      timeout: 30,
      jwksCache: {}
    });
  }
  serverMetadata() {
    const metadata = structuredClone(int(this).as);
    addServerHelpers(metadata);
    return metadata;
  }
  clientMetadata() {
    const metadata = structuredClone(int(this).c);
    return metadata;
  }
  get timeout() {
    return int(this).timeout;
  }
  set timeout(value) {
    int(this).timeout = value;
  }
  get [customFetch2]() {
    return int(this).fetch;
  }
  set [customFetch2](value) {
    int(this).fetch = value;
  }
};
Object.freeze(Configuration.prototype);
function getHelpers(response) {
  let exp = void 0;
  if (response.expires_in !== void 0) {
    exp = Date.now() + response.expires_in * 1e3;
  }
  return {
    expiresIn: {
      __proto__: null,
      value() {
        if (exp) {
          const now = Date.now();
          if (exp > now) {
            return Math.floor((exp - now) / 1e3);
          }
          return 0;
        }
        return void 0;
      }
    },
    claims: {
      __proto__: null,
      value() {
        return getValidatedIdTokenClaims(response);
      }
    }
  };
}
function addHelpers(response) {
  Object.defineProperties(response, getHelpers(response));
}
function getDPoPHandle(config, keyPair, options) {
  checkConfig(config);
  return DPoP(int(config).c, keyPair, options);
}
function allowInsecureRequests2(config) {
  int(config).tlsOnly = false;
}
function checkConfig(input) {
  if (!(input instanceof Configuration)) {
    throw CodedTypeError2('"config" must be an instance of Configuration', ERR_INVALID_ARG_TYPE2);
  }
  if (Object.getPrototypeOf(input) !== Configuration.prototype) {
    throw CodedTypeError2("subclassing Configuration is not allowed", ERR_INVALID_ARG_VALUE2);
  }
}
function signal2(timeout) {
  return timeout ? AbortSignal.timeout(timeout * 1e3) : void 0;
}
function retryable(err, options) {
  if (options?.DPoP && options.flag !== retry) {
    return isDPoPNonceError(err);
  }
  return false;
}
var retry = /* @__PURE__ */ Symbol();
async function genericGrantRequest(config, grantType, parameters, options) {
  checkConfig(config);
  const { as, c, auth, fetch: fetch2, tlsOnly, timeout, decrypt, nonRepudiation } = int(config);
  const response = await genericTokenEndpointRequest(as, c, auth, grantType, new URLSearchParams(parameters), {
    [customFetch]: fetch2,
    [allowInsecureRequests]: !tlsOnly,
    DPoP: options?.DPoP,
    headers: new Headers(headers),
    signal: signal2(timeout)
  }).catch(errorHandler);
  let recognizedTokenTypes;
  if (grantType === "urn:ietf:params:oauth:grant-type:token-exchange") {
    recognizedTokenTypes = { n_a: () => {
    } };
  }
  const p = processGenericTokenEndpointResponse(as, c, response, {
    [jweDecrypt]: decrypt,
    recognizedTokenTypes
  });
  let result;
  try {
    result = await p;
  } catch (err) {
    if (retryable(err, options)) {
      return genericGrantRequest(config, grantType, parameters, {
        ...options,
        flag: retry
      });
    }
    errorHandler(err);
  }
  result.id_token && await nonRepudiation?.(response);
  addHelpers(result);
  return result;
}

// node_modules/valibot/dist/index.mjs
var store$4;
var DEFAULT_CONFIG = {
  lang: void 0,
  message: void 0,
  abortEarly: void 0,
  abortPipeEarly: void 0
};
// @__NO_SIDE_EFFECTS__
function getGlobalConfig(config$1) {
  if (!config$1 && !store$4) return DEFAULT_CONFIG;
  return {
    lang: config$1?.lang ?? store$4?.lang,
    message: config$1?.message,
    abortEarly: config$1?.abortEarly ?? store$4?.abortEarly,
    abortPipeEarly: config$1?.abortPipeEarly ?? store$4?.abortPipeEarly
  };
}
var store$3;
// @__NO_SIDE_EFFECTS__
function getGlobalMessage(lang) {
  return store$3?.get(lang);
}
var store$2;
// @__NO_SIDE_EFFECTS__
function getSchemaMessage(lang) {
  return store$2?.get(lang);
}
var store$1;
// @__NO_SIDE_EFFECTS__
function getSpecificMessage(reference, lang) {
  return store$1?.get(reference)?.get(lang);
}
// @__NO_SIDE_EFFECTS__
function _stringify(input) {
  const type = typeof input;
  if (type === "string") return `"${input}"`;
  if (type === "number" || type === "bigint" || type === "boolean") return `${input}`;
  if (type === "object" || type === "function") return (input && Object.getPrototypeOf(input)?.constructor?.name) ?? "null";
  return type;
}
function _addIssue(context, label, dataset, config$1, other) {
  const input = other && "input" in other ? other.input : dataset.value;
  const expected = other?.expected ?? context.expects ?? null;
  const received = other?.received ?? /* @__PURE__ */ _stringify(input);
  const issue = {
    kind: context.kind,
    type: context.type,
    input,
    expected,
    received,
    message: `Invalid ${label}: ${expected ? `Expected ${expected} but r` : "R"}eceived ${received}`,
    requirement: context.requirement,
    path: other?.path,
    issues: other?.issues,
    lang: config$1.lang,
    abortEarly: config$1.abortEarly,
    abortPipeEarly: config$1.abortPipeEarly
  };
  const isSchema = context.kind === "schema";
  const message$1 = other?.message ?? context.message ?? /* @__PURE__ */ getSpecificMessage(context.reference, issue.lang) ?? (isSchema ? /* @__PURE__ */ getSchemaMessage(issue.lang) : null) ?? config$1.message ?? /* @__PURE__ */ getGlobalMessage(issue.lang);
  if (message$1 !== void 0) issue.message = typeof message$1 === "function" ? message$1(issue) : message$1;
  if (isSchema) dataset.typed = false;
  if (dataset.issues) dataset.issues.push(issue);
  else dataset.issues = [issue];
}
// @__NO_SIDE_EFFECTS__
function _isSameValueZero(value1, value2) {
  return value1 === value2 || Number.isNaN(value1) && Number.isNaN(value2);
}
function _standardSchema(schema) {
  schema["~standard"] = {
    version: 1,
    vendor: "valibot",
    validate: (value$1) => schema["~run"]({ value: value$1 }, /* @__PURE__ */ getGlobalConfig())
  };
  return schema;
}
// @__NO_SIDE_EFFECTS__
function getDotPath(issue) {
  if (issue.path) {
    let key = "";
    for (const item of issue.path) if (typeof item.key === "string" || typeof item.key === "number") if (key) key += `.${item.key}`;
    else key += item.key;
    else return null;
    return key;
  }
  return null;
}
var EMOJI_REGEX = new RegExp("^(?:[\\u{1F1E6}-\\u{1F1FF}]{2}|\\u{1F3F4}[\\u{E0061}-\\u{E007A}]{2}[\\u{E0030}-\\u{E0039}\\u{E0061}-\\u{E007A}]{1,3}\\u{E007F}|(?:\\p{Emoji}\\uFE0F\\u20E3?|\\p{Emoji_Modifier_Base}\\p{Emoji_Modifier}?|(?![\\p{Emoji_Modifier_Base}\\u{1F1E6}-\\u{1F1FF}])\\p{Emoji_Presentation})(?:\\u200D(?:\\p{Emoji}\\uFE0F\\u20E3?|\\p{Emoji_Modifier_Base}\\p{Emoji_Modifier}?|(?![\\p{Emoji_Modifier_Base}\\u{1F1E6}-\\u{1F1FF}])\\p{Emoji_Presentation}))*)+$", "u");
// @__NO_SIDE_EFFECTS__
function integer(message$1) {
  return {
    kind: "validation",
    type: "integer",
    reference: integer,
    async: false,
    expects: null,
    requirement: Number.isInteger,
    message: message$1,
    "~run"(dataset, config$1) {
      if (dataset.typed && !this.requirement(dataset.value)) _addIssue(this, "integer", dataset, config$1);
      return dataset;
    }
  };
}
// @__NO_SIDE_EFFECTS__
function minSize(requirement, message$1) {
  return {
    kind: "validation",
    type: "min_size",
    reference: minSize,
    async: false,
    expects: `>=${requirement}`,
    requirement,
    message: message$1,
    "~run"(dataset, config$1) {
      if (dataset.typed && dataset.value.size < this.requirement) _addIssue(this, "size", dataset, config$1, { received: `${dataset.value.size}` });
      return dataset;
    }
  };
}
// @__NO_SIDE_EFFECTS__
function minValue(requirement, message$1) {
  return {
    kind: "validation",
    type: "min_value",
    reference: minValue,
    async: false,
    expects: `>=${requirement instanceof Date ? requirement.toJSON() : /* @__PURE__ */ _stringify(requirement)}`,
    requirement,
    message: message$1,
    "~run"(dataset, config$1) {
      if (dataset.typed && !(dataset.value >= this.requirement)) _addIssue(this, "value", dataset, config$1, { received: dataset.value instanceof Date ? dataset.value.toJSON() : /* @__PURE__ */ _stringify(dataset.value) });
      return dataset;
    }
  };
}
// @__NO_SIDE_EFFECTS__
function regex(requirement, message$1) {
  return {
    kind: "validation",
    type: "regex",
    reference: regex,
    async: false,
    expects: `${requirement}`,
    requirement,
    message: message$1,
    "~run"(dataset, config$1) {
      if (dataset.typed && !this.requirement.test(dataset.value)) _addIssue(this, "format", dataset, config$1);
      return dataset;
    }
  };
}
// @__NO_SIDE_EFFECTS__
function transform(operation) {
  return {
    kind: "transformation",
    type: "transform",
    reference: transform,
    async: false,
    operation,
    "~run"(dataset) {
      dataset.value = this.operation(dataset.value);
      return dataset;
    }
  };
}
// @__NO_SIDE_EFFECTS__
function getFallback(schema, dataset, config$1) {
  return typeof schema.fallback === "function" ? schema.fallback(dataset, config$1) : schema.fallback;
}
// @__NO_SIDE_EFFECTS__
function getDefault(schema, dataset, config$1) {
  return typeof schema.default === "function" ? schema.default(dataset, config$1) : schema.default;
}
// @__NO_SIDE_EFFECTS__
function array(item, message$1) {
  return _standardSchema({
    kind: "schema",
    type: "array",
    reference: array,
    expects: "Array",
    async: false,
    item,
    message: message$1,
    "~run"(dataset, config$1) {
      const input = dataset.value;
      if (Array.isArray(input)) {
        dataset.typed = true;
        dataset.value = [];
        for (let key = 0; key < input.length; key++) {
          const value$1 = input[key];
          const itemDataset = this.item["~run"]({ value: value$1 }, config$1);
          if (itemDataset.issues) {
            const pathItem = {
              type: "array",
              origin: "value",
              input,
              key,
              value: value$1
            };
            for (const issue of itemDataset.issues) {
              if (issue.path) issue.path.unshift(pathItem);
              else issue.path = [pathItem];
              dataset.issues?.push(issue);
            }
            if (!dataset.issues) dataset.issues = itemDataset.issues;
            if (config$1.abortEarly) {
              dataset.typed = false;
              break;
            }
          }
          if (!itemDataset.typed) dataset.typed = false;
          dataset.value.push(itemDataset.value);
        }
      } else _addIssue(this, "type", dataset, config$1);
      return dataset;
    }
  });
}
// @__NO_SIDE_EFFECTS__
function instance(class_, message$1) {
  return _standardSchema({
    kind: "schema",
    type: "instance",
    reference: instance,
    expects: class_.name,
    async: false,
    class: class_,
    message: message$1,
    "~run"(dataset, config$1) {
      if (dataset.value instanceof this.class) dataset.typed = true;
      else _addIssue(this, "type", dataset, config$1);
      return dataset;
    }
  });
}
// @__NO_SIDE_EFFECTS__
function literal(literal_, message$1) {
  return _standardSchema({
    kind: "schema",
    type: "literal",
    reference: literal,
    expects: /* @__PURE__ */ _stringify(literal_),
    async: false,
    literal: literal_,
    message: message$1,
    "~run"(dataset, config$1) {
      if (/* @__PURE__ */ _isSameValueZero(dataset.value, this.literal)) dataset.typed = true;
      else _addIssue(this, "type", dataset, config$1);
      return dataset;
    }
  });
}
// @__NO_SIDE_EFFECTS__
function map(key, value$1, message$1) {
  return _standardSchema({
    kind: "schema",
    type: "map",
    reference: map,
    expects: "Map",
    async: false,
    key,
    value: value$1,
    message: message$1,
    "~run"(dataset, config$1) {
      const input = dataset.value;
      if (input instanceof Map) {
        dataset.typed = true;
        dataset.value = /* @__PURE__ */ new Map();
        for (const [inputKey, inputValue] of input) {
          const keyDataset = this.key["~run"]({ value: inputKey }, config$1);
          if (keyDataset.issues) {
            const pathItem = {
              type: "map",
              origin: "key",
              input,
              key: inputKey,
              value: inputValue
            };
            for (const issue of keyDataset.issues) {
              if (issue.path) issue.path.unshift(pathItem);
              else issue.path = [pathItem];
              dataset.issues?.push(issue);
            }
            if (!dataset.issues) dataset.issues = keyDataset.issues;
            if (config$1.abortEarly) {
              dataset.typed = false;
              break;
            }
          }
          const valueDataset = this.value["~run"]({ value: inputValue }, config$1);
          if (valueDataset.issues) {
            const pathItem = {
              type: "map",
              origin: "value",
              input,
              key: inputKey,
              value: inputValue
            };
            for (const issue of valueDataset.issues) {
              if (issue.path) issue.path.unshift(pathItem);
              else issue.path = [pathItem];
              dataset.issues?.push(issue);
            }
            if (!dataset.issues) dataset.issues = valueDataset.issues;
            if (config$1.abortEarly) {
              dataset.typed = false;
              break;
            }
          }
          if (!keyDataset.typed || !valueDataset.typed) dataset.typed = false;
          dataset.value.set(keyDataset.value, valueDataset.value);
        }
      } else _addIssue(this, "type", dataset, config$1);
      return dataset;
    }
  });
}
// @__NO_SIDE_EFFECTS__
function number(message$1) {
  return _standardSchema({
    kind: "schema",
    type: "number",
    reference: number,
    expects: "number",
    async: false,
    message: message$1,
    "~run"(dataset, config$1) {
      if (typeof dataset.value === "number" && !isNaN(dataset.value)) dataset.typed = true;
      else _addIssue(this, "type", dataset, config$1);
      return dataset;
    }
  });
}
// @__NO_SIDE_EFFECTS__
function object(entries$1, message$1) {
  return _standardSchema({
    kind: "schema",
    type: "object",
    reference: object,
    expects: "Object",
    async: false,
    entries: entries$1,
    message: message$1,
    "~run"(dataset, config$1) {
      const input = dataset.value;
      if (input && typeof input === "object") {
        dataset.typed = true;
        dataset.value = {};
        for (const key in this.entries) {
          const valueSchema = this.entries[key];
          if (key in input || (valueSchema.type === "exact_optional" || valueSchema.type === "optional" || valueSchema.type === "nullish") && valueSchema.default !== void 0) {
            const value$1 = key in input ? input[key] : /* @__PURE__ */ getDefault(valueSchema);
            const valueDataset = valueSchema["~run"]({ value: value$1 }, config$1);
            if (valueDataset.issues) {
              const pathItem = {
                type: "object",
                origin: "value",
                input,
                key,
                value: value$1
              };
              for (const issue of valueDataset.issues) {
                if (issue.path) issue.path.unshift(pathItem);
                else issue.path = [pathItem];
                dataset.issues?.push(issue);
              }
              if (!dataset.issues) dataset.issues = valueDataset.issues;
              if (config$1.abortEarly) {
                dataset.typed = false;
                break;
              }
            }
            if (!valueDataset.typed) dataset.typed = false;
            dataset.value[key] = valueDataset.value;
          } else if (valueSchema.fallback !== void 0) dataset.value[key] = /* @__PURE__ */ getFallback(valueSchema);
          else if (valueSchema.type !== "exact_optional" && valueSchema.type !== "optional" && valueSchema.type !== "nullish") {
            _addIssue(this, "key", dataset, config$1, {
              input: void 0,
              expected: `"${key}"`,
              path: [{
                type: "object",
                origin: "key",
                input,
                key,
                value: input[key]
              }]
            });
            if (config$1.abortEarly) break;
          }
        }
      } else _addIssue(this, "type", dataset, config$1);
      return dataset;
    }
  });
}
// @__NO_SIDE_EFFECTS__
function optional(wrapped, default_) {
  return _standardSchema({
    kind: "schema",
    type: "optional",
    reference: optional,
    expects: `(${wrapped.expects} | undefined)`,
    async: false,
    wrapped,
    default: default_,
    "~run"(dataset, config$1) {
      if (dataset.value === void 0) {
        if (this.default !== void 0) dataset.value = /* @__PURE__ */ getDefault(this, dataset, config$1);
        if (dataset.value === void 0) {
          dataset.typed = true;
          return dataset;
        }
      }
      return this.wrapped["~run"](dataset, config$1);
    }
  });
}
// @__NO_SIDE_EFFECTS__
function string(message$1) {
  return _standardSchema({
    kind: "schema",
    type: "string",
    reference: string,
    expects: "string",
    async: false,
    message: message$1,
    "~run"(dataset, config$1) {
      if (typeof dataset.value === "string") dataset.typed = true;
      else _addIssue(this, "type", dataset, config$1);
      return dataset;
    }
  });
}
// @__NO_SIDE_EFFECTS__
function pipe(...pipe$1) {
  return _standardSchema({
    ...pipe$1[0],
    pipe: pipe$1,
    "~run"(dataset, config$1) {
      for (const item of pipe$1) if (item.kind !== "metadata") {
        if (dataset.issues && (item.kind === "schema" || item.kind === "transformation")) {
          dataset.typed = false;
          break;
        }
        if (!dataset.issues || !config$1.abortEarly && !config$1.abortPipeEarly) dataset = item["~run"](dataset, config$1);
      }
      return dataset;
    }
  });
}
// @__NO_SIDE_EFFECTS__
function safeParse(schema, input, config$1) {
  const dataset = schema["~run"]({ value: input }, /* @__PURE__ */ getGlobalConfig(config$1));
  return {
    typed: dataset.typed,
    success: !dataset.issues,
    output: dataset.value,
    issues: dataset.issues
  };
}

// src/core/errors/reasons.ts
var UNVERIFIED = "the subject token could not be verified: its issuer is not one a policy trusts, or it is not signed with that issuer's keys and algorithms";
var REASONS = {
  granted: { decision: "granted", description: "token issued" },
  malformed_request: { decision: "malformed", description: "the request is malformed" },
  method_not_allowed: { decision: "malformed", description: "the token endpoint only accepts POST" },
  unsupported_media_type: { decision: "malformed", description: "the request body must be application/x-www-form-urlencoded" },
  request_too_large: { decision: "malformed", description: "the request body is too large" },
  unsupported_grant_type: {
    decision: "malformed",
    description: "grant_type must be urn:ietf:params:oauth:grant-type:token-exchange, urn:ietf:params:oauth:grant-type:jwt-bearer or client_credentials"
  },
  target_malformed: { decision: "malformed", description: "resource must be an absolute URI without a fragment" },
  token_malformed: { decision: "malformed", description: "the subject token is not a well-formed signed JWT" },
  header_forbidden: { decision: "denied", description: "the subject token header names a key location (jku, x5u, x5c or jwk), which is never accepted" },
  // One answer for the three: a stranger's forgery must not tell which issuers the policies trust (the record says which).
  algorithm_not_allowed: { decision: "denied", description: UNVERIFIED },
  issuer_untrusted: { decision: "denied", description: UNVERIFIED },
  signature_invalid: { decision: "denied", description: UNVERIFIED },
  token_expired: { decision: "denied", description: "the subject token has expired" },
  token_not_yet_valid: { decision: "denied", description: "the subject token is not valid yet" },
  token_too_old: { decision: "denied", description: "the subject token was issued too long ago" },
  token_lifetime_too_long: { decision: "denied", description: "the subject token lives longer than its issuer's tokens may; request a short-lived one" },
  // As a token no policy matched: anyone can have a shared issuer mint a token for the audience they name.
  audience_mismatch: { decision: "denied", description: "no trust policy grants this request" },
  claims_invalid: { decision: "denied", description: "the subject token claims are missing or of the wrong type" },
  no_policy_matched: { decision: "denied", description: "no trust policy grants this request" },
  denied_by_policy: { decision: "denied", description: "no trust policy grants this request" },
  audience_not_granted: { decision: "denied", description: "the requested audience is not granted" },
  scope_not_granted: { decision: "denied", description: "the requested scope is not granted" },
  template_claim_missing: { decision: "denied", description: "no trust policy grants this request" },
  template_value_forbidden: { decision: "denied", description: "no trust policy grants this request" },
  github_repository_not_granted: { decision: "denied", description: "the requested GitHub repository is not granted" },
  github_permission_not_granted: { decision: "denied", description: "the requested GitHub permission is not granted" },
  replayed: { decision: "denied", description: "the subject token was already exchanged and is single use; request a new one from the CI system" },
  ci_work_ended: {
    decision: "denied",
    description: "the subject token's CI job, or its run's attempt, has completed: a finished job's token is not exchanged"
  },
  cloud_role_not_granted: { decision: "denied", description: "no trust policy grants a cloud token for the requested role, service account or application" },
  cloud_limit_exceeded: {
    decision: "denied",
    description: "a value the cloud token would carry breaks the cloud's limits (AWS session tags, subject length); keyway never truncates it"
  },
  rate_limited: { decision: "denied", description: "too many requests; retry after the number of seconds in Retry-After" },
  replay_guard_unavailable: {
    decision: "error",
    description: "single use of the subject token, or whether its CI job has completed, cannot be checked right now, so no token was issued; retry later"
  },
  issuer_unavailable: { decision: "error", description: "the subject token issuer's keys cannot be fetched right now; retry later" },
  github_unavailable: { decision: "error", description: "GitHub cannot mint the token right now, so none was issued; retry later" },
  github_refused: {
    decision: "error",
    description: "GitHub refused to mint the token: the App is not installed for the owner, or its installation lacks a granted repository or permission; the broker operator must fix the installation"
  },
  github_revocation_unavailable: {
    decision: "error",
    description: "the GitHub token's revocation could not be scheduled, so GitHub's token was taken back and none was issued; retry later"
  },
  internal_error: { decision: "error", description: "internal error" },
  github_permission_not_allowed: {
    decision: "denied",
    description: "the GitHub organization permission is not on the broker's allowlist (KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS)"
  },
  github_owner_mismatch: { decision: "denied", description: "the GitHub account is not the one the policy pins by id" },
  dpop_proof_invalid: { decision: "denied", description: "the DPoP proof is not valid for this request" },
  dpop_proof_replayed: { decision: "denied", description: "the DPoP proof was already used; make a new proof for every request" },
  dpop_nonce_required: { decision: "denied", description: "the DPoP proof must carry the nonce from the DPoP-Nonce header of this answer" },
  dpop_required: { decision: "denied", description: "the granting policy requires a DPoP proof" },
  dpop_not_supported: {
    decision: "denied",
    description: "a GitHub installation token or a cloud token cannot be bound to a DPoP key; send no DPoP proof for it"
  },
  token_revoked: { decision: "granted", description: "the keyway token was revoked, or a GitHub installation token handed back to be revoked (RFC 7009)" },
  token_introspected: { decision: "granted", description: "a keyway token was introspected (RFC 7662)" },
  signing_key_withdrawn: {
    decision: "granted",
    description: "an operator withdrew one of the broker's signing keys (compromised), or asked to withdraw one removed already"
  },
  signing_key_rotation_requested: { decision: "granted", description: "an operator asked for a rotation of the broker's signing keys" },
  audit_page_signed_in: { decision: "granted", description: "an operator signed in to the /audit page: a session token for the page alone was issued" },
  actor_not_permitted: { decision: "denied", description: "the subject token's may_act does not name the actor" },
  actor_chain_too_deep: { decision: "denied", description: "the chain of actors (act) is deeper than keyway accepts" },
  subject_token_bound: {
    decision: "denied",
    description: "the subject token is bound to a key (cnf); send a DPoP proof made with that key, or a subject token that is not bound"
  },
  actor_token_bound: {
    decision: "denied",
    description: "the actor token is bound to a key (cnf); send a DPoP proof made with that key, or an actor token that is not bound"
  },
  org_guardrails_unusable: {
    decision: "error",
    description: "the organisation's own guardrails cannot be read or do not load, so its repositories' own policies grant nothing; its owners or the broker operator must fix them"
  },
  proxy_completed: { decision: "granted", description: "a proxied request was answered by its upstream (the outcome record of an allowed request)" },
  proxy_unauthenticated: {
    decision: "denied",
    description: "a proxied request needs Authorization: Bearer with a CI OIDC token or a keyway access token (or DPoP with its proof)"
  },
  proxy_upstream_unknown: { decision: "malformed", description: "no upstream of that name is declared" },
  proxy_path_refused: {
    decision: "malformed",
    description: "the request path is ambiguous (dot segments, encoded slashes, double encoding, empty segments, path parameters or control characters)"
  },
  proxy_header_refused: {
    decision: "malformed",
    description: "the request carries what the proxy refuses: a method override (a header, or a _method field), a header or a sudo field naming whom the upstream should act as, conflicting Content-Length and Transfer-Encoding, or a body frameworks would read differently"
  },
  proxy_not_allowed: { decision: "denied", description: "no trust policy allows this request through the proxy" },
  proxy_upstream_unavailable: { decision: "error", description: "the upstream could not be reached, or its credential could not be had; retry later" },
  proxy_upstream_timeout: { decision: "error", description: "the upstream did not answer in time" },
  proxy_redirect_refused: { decision: "error", description: "the upstream redirected to another host, which the proxy never follows" },
  proxy_response_too_large: { decision: "error", description: "the upstream's answer is larger than the proxy passes on" },
  proxy_revocation_unavailable: {
    decision: "error",
    description: "whether the keyway token was revoked cannot be checked right now, so it was not used; retry later"
  },
  operator_token_invalid: {
    decision: "denied",
    description: "the operator credential (a keyway access token for this broker) is missing, not valid, expired or revoked"
  },
  operator_scope_missing: { decision: "denied", description: "the operator credential lacks a scope the request needs" },
  proxy_credential_late: {
    decision: "granted",
    description: "a GitHub installation token was minted for a proxied request after its deadline had answered it; it is on its revocation schedule"
  }
};

// src/core/exchange/token-exchange-request.ts
var TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
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

// node_modules/@noble/hashes/_u64.js
var fromNumH = (n) => n / 2 ** 32 | 0;
var fromNumL = (n) => n >>> 0;
function setU64FromNum(view, byteOffset, n, isLE) {
  const h = fromNumH(n);
  const l = fromNumL(n);
  view.setUint32(byteOffset, isLE ? l : h, isLE);
  view.setUint32(byteOffset + 4, isLE ? h : l, isLE);
}

// node_modules/@noble/hashes/utils.js
function isBytes(a) {
  return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array" && "BYTES_PER_ELEMENT" in a && a.BYTES_PER_ELEMENT === 1;
}
var atitle = (title) => title ? `"${title}" ` : "";
function anumber(n, title = "") {
  if (typeof n !== "number")
    throw new TypeError(atitle(title) + "expected number, got " + typeof n);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(atitle(title) + "expected integer >= 0, got " + n);
  return n;
}
function abytes(value, length, title = "") {
  if (isBytes(value) && (length === void 0 || value.length === length))
    return value;
  if (length !== void 0)
    anumber(length, "length");
  const bytes = isBytes(value);
  const ofLen = length !== void 0 ? ` of length ${length}` : "";
  const got = bytes ? `length=${value.length}` : `type=${typeof value}`;
  const message2 = atitle(title) + "expected Uint8Array" + ofLen + ", got " + got;
  if (!bytes)
    throw new TypeError(message2);
  throw new RangeError(message2);
}
var aobject = (value, label) => {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new TypeError((label === "object" ? "" : `"${label}" `) + "expected object, got type=" + typeof value);
};
var aopts = (value, label) => {
  aobject(value, label);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null)
    throw new TypeError(`"${label}" expected plain object`);
  if (Object.hasOwn(value, "__proto__"))
    throw new TypeError(`"${label}.__proto__" is not allowed`);
};
function aexists(instance2, checkFinished = true) {
  if (instance2.destroyed)
    throw new Error("hash was destroyed");
  if (checkFinished && instance2.finished)
    throw new Error("digest() was already called");
}
function aoutput(out, instance2) {
  abytes(out, void 0, "output");
  const min = instance2.outputLen;
  if (!(out.length >= min)) {
    throw new RangeError('"output" expected length >= ' + min);
  }
}
function clean(...arrays) {
  for (let i = 0; i < arrays.length; i++) {
    arrays[i].fill(0);
  }
}
function createView(arr) {
  return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
}
function rotr(word, shift) {
  return word << 32 - shift | word >>> shift;
}
var hasHexBuiltin = /* @__PURE__ */ (() => (
  // @ts-ignore
  typeof Uint8Array.from([]).toHex === "function" && typeof Uint8Array.fromHex === "function"
))();
var hexes = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
function bytesToHex(bytes) {
  abytes(bytes);
  if (hasHexBuiltin)
    return bytes.toHex();
  let hex = "";
  for (let i = 0; i < bytes.length; i++) {
    hex += hexes[bytes[i]];
  }
  return hex;
}
function utf8ToBytes(str) {
  if (typeof str !== "string")
    throw new TypeError("string expected");
  const encoded = new TextEncoder().encode(str);
  try {
    return new Uint8Array(encoded);
  } finally {
    clean(encoded);
  }
}
function checkOpts(defaults, opts, title = "opts") {
  aopts(defaults, "defaults");
  if (opts !== void 0)
    aopts(opts, title);
  const merged = Object.assign(/* @__PURE__ */ Object.create(null), defaults, opts);
  return merged;
}
function createHasher(hashCons, info = {}) {
  if (typeof hashCons !== "function")
    throw new TypeError('"hashCons" expected function, got type=' + typeof hashCons);
  info = checkOpts({}, info, "info");
  const hashC = (msg, opts) => hashCons(opts).update(msg).digest();
  const tmp = hashCons(void 0);
  hashC.outputLen = tmp.outputLen;
  hashC.blockLen = tmp.blockLen;
  hashC.canXOF = tmp.canXOF;
  hashC.create = (opts) => hashCons(opts);
  Object.assign(hashC, info);
  return Object.freeze(hashC);
}
var oidNist = (suffix) => ({
  // Current NIST hashAlgs suffixes used here fit in one DER subidentifier octet.
  // Larger suffix values would need base-128 OID encoding and a different length byte.
  oid: Uint8Array.from([6, 9, 96, 134, 72, 1, 101, 3, 4, 2, suffix])
});

// node_modules/@noble/hashes/_md.js
function Chi(a, b, c) {
  return a & b ^ ~a & c;
}
function Maj(a, b, c) {
  return a & b ^ a & c ^ b & c;
}
var HashMD = class {
  blockLen;
  outputLen;
  canXOF = false;
  padOffset;
  isLE;
  // For partial updates less than block size
  buffer;
  view;
  finished = false;
  length = 0;
  pos = 0;
  destroyed = false;
  constructor(blockLen, outputLen, padOffset, isLE) {
    this.blockLen = blockLen;
    this.outputLen = outputLen;
    this.padOffset = padOffset;
    this.isLE = isLE;
    this.buffer = new Uint8Array(blockLen);
    this.view = createView(this.buffer);
  }
  update(data) {
    aexists(this);
    abytes(data);
    const { view, buffer, blockLen } = this;
    const len = data.length;
    let processed = false;
    for (let pos = 0; pos < len; ) {
      const take = Math.min(blockLen - this.pos, len - pos);
      if (take === blockLen) {
        const dataView = createView(data);
        for (; blockLen <= len - pos; pos += blockLen)
          this.process(dataView, pos);
        processed = true;
        continue;
      }
      buffer.set(pos === 0 && take === len ? data : data.subarray(pos, pos + take), this.pos);
      this.pos += take;
      pos += take;
      if (this.pos === blockLen) {
        this.process(view, 0);
        this.pos = 0;
        processed = true;
      }
    }
    this.length += data.length;
    if (processed)
      this.roundClean();
    return this;
  }
  digestInto(out) {
    aexists(this);
    aoutput(out, this);
    this.finished = true;
    const { buffer, view, blockLen, isLE } = this;
    let { pos } = this;
    buffer[pos++] = 128;
    buffer.fill(0, pos);
    if (this.padOffset > blockLen - pos) {
      this.process(view, 0);
      buffer.fill(0);
    }
    setU64FromNum(view, blockLen - 8, this.length * 8, isLE);
    this.process(view, 0);
    this.roundClean();
    const oview = out === buffer ? view : createView(out);
    const len = this.outputLen;
    const outLen = len / 4;
    const state = this.get();
    if (len % 4 || outLen > state.length)
      throw new Error("invalid outputLen");
    for (let i = 0; i < outLen; i++)
      oview.setUint32(4 * i, state[i], isLE);
  }
  digest() {
    const { buffer, outputLen } = this;
    this.digestInto(buffer);
    const res = buffer.slice(0, outputLen);
    this.destroy();
    return res;
  }
  _cloneIntoMeta(to) {
    const { buffer, length, finished, destroyed, pos } = this;
    to.destroyed = destroyed;
    to.finished = finished;
    to.length = length;
    to.pos = pos;
    if (pos)
      to.buffer.set(buffer);
    return to;
  }
  clone() {
    return this._cloneInto();
  }
};
var SHA256_IV = /* @__PURE__ */ Uint32Array.from([
  1779033703,
  3144134277,
  1013904242,
  2773480762,
  1359893119,
  2600822924,
  528734635,
  1541459225
]);

// node_modules/@noble/hashes/sha2.js
var SHA256_K = /* @__PURE__ */ Uint32Array.from([
  1116352408,
  1899447441,
  3049323471,
  3921009573,
  961987163,
  1508970993,
  2453635748,
  2870763221,
  3624381080,
  310598401,
  607225278,
  1426881987,
  1925078388,
  2162078206,
  2614888103,
  3248222580,
  3835390401,
  4022224774,
  264347078,
  604807628,
  770255983,
  1249150122,
  1555081692,
  1996064986,
  2554220882,
  2821834349,
  2952996808,
  3210313671,
  3336571891,
  3584528711,
  113926993,
  338241895,
  666307205,
  773529912,
  1294757372,
  1396182291,
  1695183700,
  1986661051,
  2177026350,
  2456956037,
  2730485921,
  2820302411,
  3259730800,
  3345764771,
  3516065817,
  3600352804,
  4094571909,
  275423344,
  430227734,
  506948616,
  659060556,
  883997877,
  958139571,
  1322822218,
  1537002063,
  1747873779,
  1955562222,
  2024104815,
  2227730452,
  2361852424,
  2428436474,
  2756734187,
  3204031479,
  3329325298
]);
var SHA256_W = /* @__PURE__ */ new Uint32Array(64);
var SHA2_32B = class extends HashMD {
  // We cannot use array here since array allows indexing by variable
  // which means optimizer/compiler cannot use registers.
  // Numeric initializers matter: starting the fields as `undefined` changes
  // V8's field representation and makes sha256 3x slower (measured).
  A = 0;
  B = 0;
  C = 0;
  D = 0;
  E = 0;
  F = 0;
  G = 0;
  H = 0;
  constructor(outputLen, IV) {
    super(64, outputLen, 8, false);
    this.A = IV[0] | 0;
    this.B = IV[1] | 0;
    this.C = IV[2] | 0;
    this.D = IV[3] | 0;
    this.E = IV[4] | 0;
    this.F = IV[5] | 0;
    this.G = IV[6] | 0;
    this.H = IV[7] | 0;
  }
  get() {
    const { A, B, C, D, E, F, G, H } = this;
    return [A, B, C, D, E, F, G, H];
  }
  // prettier-ignore
  set(A, B, C, D, E, F, G, H) {
    this.A = A | 0;
    this.B = B | 0;
    this.C = C | 0;
    this.D = D | 0;
    this.E = E | 0;
    this.F = F | 0;
    this.G = G | 0;
    this.H = H | 0;
  }
  _cloneInto(to) {
    (to ||= new this.constructor()).set(...this.get());
    return this._cloneIntoMeta(to);
  }
  process(view, offset) {
    for (let i = 0; i < 16; i++, offset += 4)
      SHA256_W[i] = view.getUint32(offset, false);
    for (let i = 16; i < 64; i++) {
      const W15 = SHA256_W[i - 15];
      const W2 = SHA256_W[i - 2];
      const s0 = rotr(W15, 7) ^ rotr(W15, 18) ^ W15 >>> 3;
      const s1 = rotr(W2, 17) ^ rotr(W2, 19) ^ W2 >>> 10;
      SHA256_W[i] = s1 + SHA256_W[i - 7] + s0 + SHA256_W[i - 16] | 0;
    }
    let { A, B, C, D, E, F, G, H } = this;
    for (let i = 0; i < 64; i++) {
      const sigma1 = rotr(E, 6) ^ rotr(E, 11) ^ rotr(E, 25);
      const T1 = H + sigma1 + Chi(E, F, G) + SHA256_K[i] + SHA256_W[i] | 0;
      const sigma0 = rotr(A, 2) ^ rotr(A, 13) ^ rotr(A, 22);
      const T2 = sigma0 + Maj(A, B, C) | 0;
      H = G;
      G = F;
      F = E;
      E = D + T1 | 0;
      D = C;
      C = B;
      B = A;
      A = T1 + T2 | 0;
    }
    A = A + this.A | 0;
    B = B + this.B | 0;
    C = C + this.C | 0;
    D = D + this.D | 0;
    E = E + this.E | 0;
    F = F + this.F | 0;
    G = G + this.G | 0;
    H = H + this.H | 0;
    this.set(A, B, C, D, E, F, G, H);
  }
  roundClean() {
    clean(SHA256_W);
  }
  destroy() {
    this.destroyed = true;
    this.set(0, 0, 0, 0, 0, 0, 0, 0);
    clean(this.buffer);
  }
};
var _SHA256 = class extends SHA2_32B {
  constructor() {
    super(32, SHA256_IV);
  }
};
var sha256 = /* @__PURE__ */ createHasher(
  () => new _SHA256(),
  /* @__PURE__ */ oidNist(1)
);

// src/core/mint/sha256-hex.ts
var sha256Hex = (text3) => bytesToHex(sha256(utf8ToBytes(text3)));

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
function accessTokenHash(accessToken) {
  return base64url_exports.encode(sha256(utf8ToBytes(accessToken)));
}

// src/core/dpop/dpop-fetch.ts
function createDpopProof(key, request) {
  const url = new URL(request.url);
  const ath = request.accessToken === void 0 ? request.ath : accessTokenHash(request.accessToken);
  return new SignJWT({
    htm: request.method.toUpperCase(),
    htu: `${url.origin}${url.pathname}`,
    jti: crypto.randomUUID(),
    ...ath === void 0 ? {} : { ath },
    ...request.nonce === void 0 ? {} : { nonce: request.nonce }
  }).setProtectedHeader({ alg: key.alg, typ: "dpop+jwt", jwk: key.publicJwk }).setIssuedAt().sign(key.privateKey);
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
async function revokeKeywayToken(token, { broker, fetch: fetch2, dpop }) {
  const url = revocationEndpoint(broker);
  const proof = dpop === void 0 ? void 0 : await createDpopProof(dpop, { method: "POST", url, accessToken: token });
  await revokeAtBroker(token, { url, fetch: fetch2, ...proof === void 0 ? {} : { proof } });
  return "revoked the keyway token";
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

// src/core/claims/case-fold.ts
function asciiLowerCase(text3) {
  return text3.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

// src/cli/pipeline/exchange-with-broker.ts
var BrokerRefusedError = class extends KeywayError {
  name = "BrokerRefusedError";
  code = "broker_refused";
  status;
  error;
  description;
  auditEventId;
  /** The claims of the CI token that was sent, decoded here without verification: the job's own, for its log. */
  sentClaims;
  /** What the operator lets the pipeline learn (`diagnostics: claim-names`); undefined when the broker said nothing more. */
  diagnostics;
  constructor(status, body, sentToken) {
    const error = typeof body["error"] === "string" ? body["error"] : "invalid_response";
    const description = typeof body["error_description"] === "string" ? body["error_description"] : void 0;
    super(description === void 0 ? error : `${error}: ${description}`);
    this.status = status;
    this.error = error;
    this.description = description;
    this.auditEventId = typeof body["audit_event_id"] === "string" ? body["audit_event_id"] : void 0;
    this.sentClaims = sentToken === void 0 ? void 0 : decodedClaims(sentToken);
    this.diagnostics = readDiagnostics(body["diagnostics"]);
  }
};
function decodedClaims(token) {
  try {
    return decodeJwt(token);
  } catch {
    return void 0;
  }
}
var names = (value) => Array.isArray(value) && value.every((item) => typeof item === "string") ? value : void 0;
function readDiagnostics(value) {
  if (typeof value !== "object" || value === null) return void 0;
  const failedClaims = names(value["failed_claims"]);
  const deniedBy = names(value["denied_by"]);
  return failedClaims === void 0 || deniedBy === void 0 ? void 0 : { failedClaims, deniedBy };
}
var BrokerUnavailableError = class extends KeywayError {
  name = "BrokerUnavailableError";
  code = "broker_unavailable";
  auditEventId;
  constructor(message2, options = {}) {
    super(message2, { cause: options.cause });
    this.auditEventId = options.auditEventId;
  }
};
var CLIENT_ID = "keyway-cli";
async function exchangeWithBroker(request) {
  const { config, tokenEndpoint, subjectToken, parameters } = await prepareExchange(request);
  const options = request.dpop === void 0 ? void 0 : { DPoP: getDPoPHandle(config, request.dpop) };
  const response = await request.fetch.renewing(async (once, earlier) => {
    const sent = await subjectToken();
    config[customFetch2] = once;
    try {
      return await genericGrantRequest(config, TOKEN_EXCHANGE_GRANT, withSubjectToken(parameters, sent), options);
    } catch (error) {
      throw await classify(error, tokenEndpoint, sent, earlier);
    }
  });
  const body = response;
  const auditEventId = typeof body["audit_event_id"] === "string" ? body["audit_event_id"] : void 0;
  if (request.dpop !== void 0 && response.token_type !== "dpop") {
    throw await refuseUnbound(request, request.dpop, response.access_token, response.token_type, auditEventId);
  }
  if (!B64TOKEN.test(response.access_token)) {
    throw new BrokerUnavailableError(`${tokenEndpoint} answered an access_token that is not an RFC 6750 token (b64token characters): not used`, {
      auditEventId
    });
  }
  return {
    accessToken: response.access_token,
    issuedTokenType: typeof body["issued_token_type"] === "string" ? body["issued_token_type"] : void 0,
    tokenType: response.token_type,
    expiresAt: expiryOf(response.expires_in ?? 0, tokenEndpoint, auditEventId),
    scope: response.scope,
    auditEventId,
    sha256: sha256Hex(response.access_token)
  };
}
async function refuseUnbound(request, key, token, tokenType, auditEventId) {
  request.mask(token);
  const revoked = await revokeKeywayToken(token, { broker: request.url, fetch: request.fetch, dpop: key }).then(
    () => "it was revoked at the broker",
    (error) => `it could not be revoked at the broker (${describeNetworkError(error)}): it stays live until it expires`
  );
  const named = /^[A-Za-z0-9_-]{1,32}$/.test(tokenType) ? `a ${tokenType}` : "an unbound";
  return new BrokerUnavailableError(
    `the broker answered ${named} token to a DPoP request: it did not bind the token to the job's key; the token is not used nor printed (masked in GitHub Actions), and ${revoked}`,
    { auditEventId }
  );
}
var B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
function expiryDate(expiresIn) {
  const expiresAt = new Date(Date.now() + expiresIn * 1e3);
  return Number.isNaN(expiresAt.getTime()) ? void 0 : expiresAt;
}
function expiryOf(expiresIn, tokenEndpoint, auditEventId) {
  const expiresAt = expiryDate(expiresIn);
  if (expiresAt === void 0)
    throw new BrokerUnavailableError(`${tokenEndpoint} answered an expires_in of ${expiresIn} s: not a token's lifetime`, { auditEventId });
  return expiresAt;
}
var OWNER_KEY = /^[a-z0-9][a-z0-9-]{0,38}$/;
var OwnerTokenAnswer = object({
  // No quote, no space, no shell syntax, so it can go into an export line as it is.
  access_token: pipe(string(), regex(B64TOKEN)),
  expires_in: pipe(number(), integer(), minValue(1)),
  scope: optional(string()),
  repositories: optional(array(string()), [])
});
var TokenMapAnswer = object({
  issued_token_type: literal(TOKEN_TYPE.githubInstallationTokenMap),
  // Read as a Map of the object's own entries: valibot's record skips the keys `constructor` and `prototype` (and
  // `__proto__`), GitHub logins the broker keys like any other, and a map would lack that owner's token.
  github_tokens: pipe(
    instance(Object),
    transform((tokens) => new Map(Object.entries(tokens))),
    map(pipe(string(), regex(OWNER_KEY)), OwnerTokenAnswer),
    minSize(1)
  ),
  audit_event_id: optional(string())
});
async function exchangeForTokenMap(request) {
  const { tokenEndpoint, subjectToken, parameters } = await prepareExchange({ ...request, requestedTokenType: TOKEN_TYPE.githubInstallationTokenMap });
  parameters.set("grant_type", TOKEN_EXCHANGE_GRANT);
  parameters.set("client_id", CLIENT_ID);
  const { response, sent, earlier } = await request.fetch.renewing(async (once, earlier2) => {
    const sent2 = await subjectToken();
    try {
      const response2 = await once(tokenEndpoint, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: withSubjectToken(parameters, sent2).toString()
      });
      return { response: response2, sent: sent2, earlier: earlier2 };
    } catch (error) {
      throw await classify(error, tokenEndpoint, sent2, earlier2);
    }
  });
  const body = await response.json().catch(() => ({}));
  if (response.status >= 400 && response.status < 500) throw await refusalAfter(new BrokerRefusedError(response.status, body, sent), earlier, tokenEndpoint);
  const auditEventId = typeof body["audit_event_id"] === "string" ? body["audit_event_id"] : void 0;
  if (response.status !== 200) throw new BrokerUnavailableError(`${tokenEndpoint} answered ${response.status}${oauthErrorOf(body)}`, { auditEventId });
  const asked = new Set(request.audiences.map(askedOwner));
  const unused = (problem) => refuseTokenMap(request, body, asked, `${tokenEndpoint} answered ${problem}`, auditEventId);
  const parsed = safeParse(TokenMapAnswer, body);
  if (!parsed.success) throw await unused(`a token map keyway cannot read: ${unreadable(parsed.issues)}`);
  const owners = [...parsed.output.github_tokens.keys()];
  if (owners.length !== asked.size || owners.some((owner) => !asked.has(owner))) {
    throw await unused(`a token map for the owners ${owners.join(", ")}, not for those asked: ${[...asked].join(", ")}`);
  }
  const entries = [...parsed.output.github_tokens];
  const timeless = entries.find(([, token]) => expiryDate(token.expires_in) === void 0);
  if (timeless !== void 0) throw await unused(`a token map whose ${timeless[0]} token has an expires_in no date holds`);
  return {
    auditEventId,
    tokens: entries.map(([owner, token]) => ({
      owner,
      accessToken: token.access_token,
      expiresAt: expiryOf(token.expires_in, tokenEndpoint, auditEventId),
      scope: token.scope,
      repositories: token.repositories,
      sha256: sha256Hex(token.access_token)
    }))
  };
}
function askedOwner(repository) {
  const path = URL.canParse(repository) ? new URL(repository).pathname.replace(/^\//, "") : repository;
  return asciiLowerCase(path.split("/")[0] ?? "");
}
async function refuseTokenMap(request, body, asked, problem, auditEventId) {
  const map2 = body["github_tokens"];
  const tokens = [...asked].flatMap((owner) => {
    const entry = typeof map2 === "object" && map2 !== null && Object.hasOwn(map2, owner) ? map2[owner] : void 0;
    const token = typeof entry === "object" && entry !== null ? entry["access_token"] : void 0;
    return typeof token === "string" && B64TOKEN.test(token) ? [token] : [];
  });
  for (const token of tokens) request.mask(token);
  const handBack = REVOCATIONS.get(GITHUB_INSTALLATION_TOKEN_TYPE);
  const outcomes = await Promise.allSettled(tokens.map((token) => handBack(token, { broker: request.url, env: request.env, fetch: request.fetch })));
  const failures = outcomes.flatMap((outcome) => outcome.status === "rejected" ? [describeNetworkError(outcome.reason)] : []);
  const done = tokens.length === 0 ? "it holds no token of an owner asked for" : failures.length === 0 ? `its ${tokens.length} token(s) of owners asked for were not used, and were revoked` : `${failures.length} of its ${tokens.length} token(s) of owners asked for could not be revoked (${failures.join("; ")}): they stay live until they expire`;
  return new BrokerUnavailableError(`${problem}; ${done}`, { auditEventId });
}
function unreadable(issues) {
  return issues.map((issue) => `${getDotPath(issue) ?? "the answer"}: expected ${issue.expected ?? issue.type}`).join("; ");
}
async function prepareExchange(request) {
  const insecure = request.url.protocol === "http:" && isLoopbackHttpUrl(request.url);
  const config = await discover(request, insecure);
  const { issuer, token_endpoint: tokenEndpoint } = config.serverMetadata();
  if (tokenEndpoint === void 0) throw new BrokerUnavailableError(`${issuer} publishes no token_endpoint`);
  const endpoint2 = new URL(tokenEndpoint);
  if (endpoint2.protocol !== "https:" && !isLoopbackHttpUrl(endpoint2)) throw new BrokerUnavailableError(`the token endpoint ${tokenEndpoint} is not https`);
  const audience = request.subjectAudience ?? issuer;
  let held;
  const subjectToken = async () => {
    if (held !== void 0 && request.source.renews !== true) return held;
    held = await request.source.read(audience);
    request.mask(held);
    request.log(`CI token from ${request.source.name} (audience ${audience}), sha256 ${sha256Hex(held)}`);
    return held;
  };
  const parameters = new URLSearchParams({
    subject_token_type: TOKEN_TYPE.idToken,
    requested_token_type: request.requestedTokenType ?? TOKEN_TYPE.accessToken
  });
  for (const item of request.audiences) parameters.append("audience", item);
  if (request.scopes.length > 0) parameters.set("scope", request.scopes.join(" "));
  return { config, tokenEndpoint, subjectToken, parameters };
}
function withSubjectToken(parameters, subjectToken) {
  const sent = new URLSearchParams(parameters);
  sent.set("subject_token", subjectToken);
  return sent;
}
var USED_UP = /* @__PURE__ */ new Set([REASONS.replayed.description, REASONS.dpop_proof_replayed.description]);
async function refusalAfter(refusal, earlier, tokenEndpoint) {
  if (earlier === void 0 || !USED_UP.has(refusal.description ?? "")) return refusal;
  const retried = `the retry was then refused (HTTP ${refusal.status}): ${refusal.message}`;
  if (earlier.answer === void 0) {
    return new BrokerUnavailableError(`${tokenEndpoint}: ${earlier.reason}, perhaps after the broker used up what that try sent; ${retried}`, {
      cause: refusal
    });
  }
  const body = await earlier.answer.clone().json().catch(() => ({}));
  const auditEventId = typeof body["audit_event_id"] === "string" ? body["audit_event_id"] : void 0;
  return new BrokerUnavailableError(
    `${tokenEndpoint} answered ${earlier.answer.status}${oauthErrorOf(body)}${auditEventId === void 0 ? "" : ` in audit event ${auditEventId}`}, having used up what that try sent; ${retried}`,
    { cause: refusal, auditEventId }
  );
}
function oauthErrorOf(body) {
  return typeof body["error"] === "string" ? `: ${body["error"]}${typeof body["error_description"] === "string" ? ` (${body["error_description"]})` : ""}` : "";
}
async function discover(request, insecure) {
  try {
    return await discovery(request.url, CLIENT_ID, void 0, None2(), {
      algorithm: "oauth2",
      [customFetch2]: request.fetch,
      execute: insecure ? [allowInsecureRequests2] : [],
      // Covers every retry of one request; each try has its own shorter timeout.
      timeout: 120
    });
  } catch (error) {
    const reason = error instanceof ClientError || isNetworkError(error) ? describeNetworkError(error) : void 0;
    if (reason === void 0) throw error;
    throw new BrokerUnavailableError(`cannot discover the broker at ${request.url.href}: ${reason}`, { cause: error });
  }
}
async function classify(error, tokenEndpoint, subjectToken, earlier) {
  if (error instanceof ResponseBodyError) return refusalAfter(new BrokerRefusedError(error.status, error.cause, subjectToken), earlier, tokenEndpoint);
  if (error instanceof ClientError && error.cause instanceof Response) {
    const status = error.cause.status;
    const body = await error.cause.json().catch(() => ({}));
    const auditEventId = typeof body["audit_event_id"] === "string" ? body["audit_event_id"] : void 0;
    if (status >= 400 && status < 500) return refusalAfter(new BrokerRefusedError(status, body), earlier, tokenEndpoint);
    return new BrokerUnavailableError(`${tokenEndpoint} answered ${status}${oauthErrorOf(body)}`, { cause: error, auditEventId });
  }
  if (error instanceof ClientError || isNetworkError(error))
    return new BrokerUnavailableError(`${tokenEndpoint}: ${describeNetworkError(error)}`, { cause: error });
  if (error instanceof RedirectRefusedError || error instanceof FetchError) return new BrokerUnavailableError(error.message, { cause: error });
  return error instanceof Error ? error : new Error(String(error));
}
function isNetworkError(error) {
  return error instanceof TypeError && error.message === "fetch failed" || error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError");
}

// src/cli/pipeline/github-commands.ts
import { randomUUID } from "node:crypto";
import { appendFileSync } from "node:fs";

// src/core/inert-text.ts
var INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
var EVERY_INVISIBLE = new RegExp(INVISIBLE.source, "gu");
function inert(text3) {
  return text3.replace(
    EVERY_INVISIBLE,
    (char) => Array.from({ length: char.length }, (_, unit) => `\\u${char.charCodeAt(unit).toString(16).padStart(4, "0")}`).join("")
  );
}

// src/cli/pipeline/github-commands.ts
function addMask(value) {
  return `::add-mask::${escapeData(value)}
`;
}
function annotation(level, message2) {
  return `::${level}::${escapeData(inert(message2))}
`;
}
function escapeData(value) {
  return value.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}
function appendEnvironmentFile(path, variable, name, value) {
  if (!path) throw new Error(`$${variable} is not set: this is not a GitHub Actions step`);
  const delimiter = `ghadelimiter_${randomUUID()}`;
  if (name.includes(delimiter) || value.includes(delimiter)) throw new Error("the value contains its own delimiter");
  appendFileSync(path, `${name}<<${delimiter}
${value}
${delimiter}
`, "utf8");
}

// src/cli/pipeline/cloud-service-errors.ts
var CloudRefusedError = class extends KeywayError {
  name = "CloudRefusedError";
  code = "cloud_refused";
  status;
  service;
  constructor(service, status, message2) {
    super(message2);
    this.service = service;
    this.status = status;
  }
};
var CloudUnavailableError = class extends KeywayError {
  name = "CloudUnavailableError";
  code = "cloud_unavailable";
};
function withoutSecrets(text3, secrets) {
  let cleaned = text3;
  for (const secret of secrets) cleaned = cleaned.replaceAll(secret, "[token]");
  return cleaned.replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, "[a JWT]").slice(0, 1024);
}

// src/cli/pipeline/job-log.ts
var EXIT = { ok: 0, usage: 2, noCiToken: 3, refused: 4, unavailable: 5 };
function retryLine(notice) {
  return `${notice.method} ${notice.url.split("?")[0]} ${notice.reason}; try ${notice.attempt + 1} of ${notice.attempts} in ${(notice.delayMs / 1e3).toFixed(1)} s`;
}
function grantLine(issued) {
  return `granted: audit_event_id=${issued.auditEventId ?? "-"} access_token_sha256=${issued.sha256} expires_at=${issued.expiresAt.toISOString()} scope="${issued.scope ?? ""}"`;
}
var EMAIL_CLAIM = /e-?mail/i;
function sentClaimLines(error) {
  if (error.sentClaims === void 0) return ["the CI token sent is not a JWT: it has no claims to show"];
  return [
    "claims of the CI token sent (decoded here, not verified):",
    ...Object.entries(error.sentClaims).map(
      ([name, value]) => `  ${name}: ${EMAIL_CLAIM.test(name) ? "(withheld: an e-mail address)" : JSON.stringify(value)}`
    )
  ];
}
function learnedLines(error) {
  const explain = `an operator with audit:read sees the whole explanation: keyway audit explain ${error.auditEventId ?? "EVENT_ID"}`;
  const { diagnostics } = error;
  if (diagnostics === void 0) {
    return [`the broker's operators share nothing more with pipelines (diagnostics: none, the default); ${explain}`];
  }
  const failed = diagnostics.failedClaims.length === 0 ? "none" : diagnostics.failedClaims.join(", ");
  return [
    `the operator shares claim names (diagnostics: claim-names): claims that failed for the closest allow policy: ${failed}`,
    `deny guardrails that fired: ${diagnostics.deniedBy.length === 0 ? "none" : diagnostics.deniedBy.join(", ")}`,
    explain
  ];
}
function describeFailure(error) {
  if (error instanceof CiTokenError) return { exitCode: EXIT.noCiToken, lines: [`no CI token: ${error.message}`] };
  if (error instanceof BrokerRefusedError) {
    return {
      exitCode: EXIT.refused,
      lines: [
        `refused (HTTP ${error.status}): ${error.message}`,
        `audit_event_id=${error.auditEventId ?? "-"}`,
        ...sentClaimLines(error),
        ...learnedLines(error)
      ]
    };
  }
  if (error instanceof CloudRefusedError) return { exitCode: EXIT.refused, lines: [`${error.service} refused (HTTP ${error.status}): ${error.message}`] };
  if (error instanceof CloudUnavailableError) return { exitCode: EXIT.unavailable, lines: [`cloud unavailable: ${error.message}`] };
  if (error instanceof BrokerUnavailableError) {
    return {
      exitCode: EXIT.unavailable,
      lines: [`broker unavailable: ${error.message}`, ...error.auditEventId === void 0 ? [] : [`audit_event_id=${error.auditEventId}`]]
    };
  }
  return void 0;
}

// src/cli/pipeline/job-log-line.ts
function jobLogLine(line) {
  return `keyway: ${inert(line)}
`;
}

// src/cli/pipeline/aws-delivery.ts
import { homedir } from "node:os";
import { join as join2 } from "node:path";

// src/cli/pipeline/aws-sts.ts
import { randomBytes as randomBytes2 } from "node:crypto";
import {
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
var DEFAULT_AWS_STS_URL = "https://sts.amazonaws.com";
var STS = "AWS STS";
var ENTITIES = { "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&" };
function element(xml, name) {
  const found = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
  return found?.replace(/&(?:lt|gt|quot|apos|amp);/g, (entity) => ENTITIES[entity] ?? entity);
}
var CREDENTIAL_TEXT = /^[!-~]+$/;
async function assumeRoleWithWebIdentity(request) {
  const body = new URLSearchParams({
    Action: "AssumeRoleWithWebIdentity",
    Version: "2011-06-15",
    RoleArn: request.roleArn,
    RoleSessionName: request.roleSessionName,
    WebIdentityToken: request.webIdentityToken,
    ...request.durationSeconds === void 0 ? {} : { DurationSeconds: String(request.durationSeconds) }
  });
  let response;
  try {
    response = await request.fetch(request.stsUrl.href, {
      method: "POST",
      body: body.toString(),
      headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8", accept: "text/xml" }
    });
  } catch (error) {
    throw new CloudUnavailableError(`${STS} ${request.stsUrl.origin}: ${describeNetworkError(error)}`, { cause: error });
  }
  const xml = await response.text();
  if (!response.ok) {
    const code = element(xml, "Code");
    if (code === void 0 || response.status >= 500) {
      throw new CloudUnavailableError(`${STS} ${request.stsUrl.origin} answered ${response.status}${code === void 0 ? "" : ` ${code}`}`);
    }
    throw new CloudRefusedError(STS, response.status, withoutSecrets(`${code}: ${element(xml, "Message") ?? ""}`, [request.webIdentityToken]));
  }
  const credentials = {
    accessKeyId: element(xml, "AccessKeyId"),
    secretAccessKey: element(xml, "SecretAccessKey"),
    sessionToken: element(xml, "SessionToken"),
    expiration: element(xml, "Expiration")
  };
  if (Object.values(credentials).some((value) => value === void 0 || value === "")) {
    throw new CloudUnavailableError(`${STS} ${request.stsUrl.origin} answered 200 without the credentials AssumeRoleWithWebIdentityResult documents`);
  }
  const { accessKeyId, secretAccessKey, sessionToken } = credentials;
  const unfit = Object.entries({ AccessKeyId: accessKeyId, SecretAccessKey: secretAccessKey, SessionToken: sessionToken }).find(
    ([, value]) => !CREDENTIAL_TEXT.test(value ?? "")
  );
  if (unfit !== void 0) {
    throw new CloudUnavailableError(`${STS} ${request.stsUrl.origin} answered a ${unfit[0]} with spaces, line breaks or characters beyond ASCII: not used`);
  }
  return { ...credentials, assumedRoleArn: element(xml, "Arn") };
}
function awsEnvironment(credentials, region) {
  return [
    ["AWS_ACCESS_KEY_ID", credentials.accessKeyId],
    ["AWS_SECRET_ACCESS_KEY", credentials.secretAccessKey],
    ["AWS_SESSION_TOKEN", credentials.sessionToken],
    ...region === void 0 ? [] : [["AWS_REGION", region]]
  ];
}
function linkTarget(path) {
  if (existsSync(path)) return realpathSync(path);
  try {
    return lstatSync(path).isSymbolicLink() ? resolve(dirname(path), readlinkSync(path)) : path;
  } catch {
    return path;
  }
}
function writeCredentialsProfile(path, profile, credentials) {
  const target = linkTarget(path);
  const kept = [];
  let inProfile = false;
  for (const line of existsSync(path) ? readFileSync(path, "utf8").split("\n") : []) {
    const section2 = /^\s*\[([^\]]+)\]\s*$/.exec(line)?.[1];
    if (section2 !== void 0) inProfile = section2.trim() === profile;
    if (!inProfile) kept.push(line);
  }
  while (kept.length > 0 && kept.at(-1)?.trim() === "") kept.pop();
  const section = [
    `[${profile}]`,
    `aws_access_key_id = ${credentials.accessKeyId}`,
    `aws_secret_access_key = ${credentials.secretAccessKey}`,
    `aws_session_token = ${credentials.sessionToken}`
  ];
  mkdirSync(dirname(target), { recursive: true, mode: 448 });
  const temporary = join(dirname(target), `.${basename(target)}.keyway-${randomBytes2(8).toString("hex")}`);
  try {
    const fd = openSync(temporary, "wx", 384);
    try {
      fchmodSync(fd, 384);
      writeFileSync(fd, `${[...kept, ...kept.length > 0 ? [""] : [], ...section].join("\n")}
`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, target);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

// src/cli/pipeline/exec-with-token.ts
import { spawn } from "node:child_process";
import { constants } from "node:os";
function execWithEnvironment(command, variables, report) {
  return execInEnvironment(command, { ...process.env, ...variables }, report);
}
var FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"];
function execInEnvironment(command, env, report) {
  const [file, ...args] = command;
  if (file === void 0) return Promise.resolve(2);
  let child;
  const forward = (signal3) => child?.kill(signal3);
  const stopForwarding = () => {
    for (const signal3 of FORWARDED) process.off(signal3, forward);
  };
  for (const signal3 of FORWARDED) process.on(signal3, forward);
  try {
    child = spawn(file, args, { stdio: "inherit", env });
  } catch (error) {
    stopForwarding();
    throw error;
  }
  const started = child;
  return new Promise((resolve2) => {
    const done = (status) => {
      stopForwarding();
      resolve2(status);
    };
    started.once("error", (error) => {
      report(`cannot run ${file}: ${error.message}`);
      done(error.code === "ENOENT" ? 127 : 126);
    });
    started.once("exit", (code, signal3) => done(code ?? 128 + (signal3 === null ? 0 : constants.signals[signal3])));
  });
}

// src/cli/pipeline/hand-over-environment.ts
function maskInActions(secrets, env) {
  if (env["GITHUB_ACTIONS"] === "true") for (const secret of secrets) process.stderr.write(addMask(secret));
}
async function handOverEnvironment(variables, command, io) {
  if (command.length > 0) return execWithEnvironment(command, Object.fromEntries(variables), io.log);
  if (io.env["GITHUB_ACTIONS"] === "true" && io.env["GITHUB_ENV"]) {
    for (const [name, value] of variables) appendEnvironmentFile(io.env["GITHUB_ENV"], "GITHUB_ENV", name, value);
    io.log(`set for later steps: ${variables.map(([name]) => name).join(", ")}`);
    return EXIT.ok;
  }
  process.stdout.write(variables.map(([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'
`).join(""));
  return EXIT.ok;
}

// src/cli/pipeline/aws-delivery.ts
var CLOUD_TOKEN_TYPE = TOKEN_TYPE.idToken;
function awsStsUrl(flag, env, region) {
  return flag ?? env["AWS_ENDPOINT_URL_STS"] ?? (region === void 0 ? DEFAULT_AWS_STS_URL : `https://sts.${region}.amazonaws.com`);
}
function roleSessionName(auditEventId) {
  return `keyway-${(auditEventId ?? crypto.randomUUID()).replace(/[^\w+=,.@-]/g, "")}`.slice(0, 64);
}
async function deliverAwsCredentials(delivery, webIdentityToken, auditEventId, io) {
  const credentials = await assumeRoleWithWebIdentity({
    stsUrl: delivery.stsUrl,
    roleArn: delivery.roleArn,
    roleSessionName: roleSessionName(auditEventId),
    webIdentityToken,
    durationSeconds: delivery.durationSeconds,
    fetch: io.fetch
  });
  io.log(`assumed ${credentials.assumedRoleArn ?? delivery.roleArn} until ${credentials.expiration} (session ${roleSessionName(auditEventId)})`);
  maskInActions([credentials.accessKeyId, credentials.secretAccessKey, credentials.sessionToken], io.env);
  const variables = awsEnvironment(credentials, delivery.region);
  if (delivery.profile !== void 0) {
    const file = delivery.credentialsFile ?? io.env["AWS_SHARED_CREDENTIALS_FILE"] ?? join2(homedir(), ".aws", "credentials");
    writeCredentialsProfile(file, delivery.profile, credentials);
    io.log(`credentials written to profile ${delivery.profile} of ${file}`);
    return EXIT.ok;
  }
  return handOverEnvironment(variables, delivery.command, io);
}

// src/cli/pipeline/cloud-token-exchanges.ts
var DEFAULT_GOOGLE_STS_URL = "https://sts.googleapis.com/v1/token";
var DEFAULT_GOOGLE_IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com";
var DEFAULT_ENTRA_URL = "https://login.microsoftonline.com";
async function postForJson(service, url, init, fetch2, secrets, describeError) {
  let response;
  try {
    response = await fetch2(url, { method: "POST", ...init });
  } catch (error) {
    throw new CloudUnavailableError(`${service} ${new URL(url).origin}: ${describeNetworkError(error)}`, { cause: error });
  }
  const body = await response.json().catch(() => void 0);
  if (response.ok && body !== void 0) return body;
  const said = body === void 0 ? void 0 : describeError(body);
  if (response.status >= 500 || said === void 0) throw new CloudUnavailableError(`${service} answered ${response.status}`);
  throw new CloudRefusedError(service, response.status, withoutSecrets(said, secrets));
}
var oauthError = (body) => typeof body["error"] === "string" ? `${body["error"]}${typeof body["error_description"] === "string" ? `: ${body["error_description"]}` : ""}` : void 0;
var text2 = (value) => typeof value === "string" && value !== "" ? value : void 0;
function googleStsAudience(keywayToken) {
  const aud = decodeJwt(keywayToken).aud;
  const audience = typeof aud === "string" ? aud : void 0;
  if (audience === void 0 || !audience.startsWith("https://iam.googleapis.com/")) {
    throw new CloudUnavailableError("the keyway token is not for a Google Workload Identity provider");
  }
  return audience.slice("https:".length);
}
async function googleAccess(request) {
  const audience = googleStsAudience(request.keywayToken);
  const federated = await postForJson(
    "Google STS",
    request.stsUrl,
    {
      body: new URLSearchParams({
        grantType: "urn:ietf:params:oauth:grant-type:token-exchange",
        audience,
        scope: "https://www.googleapis.com/auth/cloud-platform",
        requestedTokenType: "urn:ietf:params:oauth:token-type:access_token",
        subjectTokenType: "urn:ietf:params:oauth:token-type:jwt",
        subjectToken: request.keywayToken
      }).toString(),
      headers: { "content-type": "application/x-www-form-urlencoded" }
    },
    request.fetch,
    [request.keywayToken],
    oauthError
  );
  const federatedToken = text2(federated["access_token"]);
  if (federatedToken === void 0) throw new CloudUnavailableError("Google STS answered without an access_token");
  const expiresIn = typeof federated["expires_in"] === "number" ? federated["expires_in"] : 3600;
  if (request.serviceAccount === void 0) {
    return { accessToken: federatedToken, expiresAt: new Date(Date.now() + expiresIn * 1e3).toISOString(), serviceAccount: void 0 };
  }
  const impersonated = await postForJson(
    "Google IAM Credentials",
    `${request.iamCredentialsUrl}/v1/projects/-/serviceAccounts/${encodeURIComponent(request.serviceAccount)}:generateAccessToken`,
    {
      body: JSON.stringify({ scope: ["https://www.googleapis.com/auth/cloud-platform"], lifetime: "3600s" }),
      headers: { "content-type": "application/json", authorization: `Bearer ${federatedToken}` }
    },
    request.fetch,
    [request.keywayToken, federatedToken],
    (body) => {
      const error = body["error"];
      return typeof error?.message === "string" ? `${String(error.status ?? "error")}: ${error.message}` : void 0;
    }
  );
  const accessToken = text2(impersonated["accessToken"]);
  const expiresAt = text2(impersonated["expireTime"]);
  if (accessToken === void 0 || expiresAt === void 0) throw new CloudUnavailableError("IAM Credentials answered without an accessToken");
  return { accessToken, expiresAt, serviceAccount: request.serviceAccount };
}
async function entraAccess(request) {
  const answer = await postForJson(
    "Entra ID",
    `${request.authorityUrl}/${encodeURIComponent(request.tenantId)}/oauth2/v2.0/token`,
    {
      body: new URLSearchParams({
        client_id: request.clientId,
        scope: request.scope,
        client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion: request.keywayToken,
        grant_type: "client_credentials"
      }).toString(),
      headers: { "content-type": "application/x-www-form-urlencoded" }
    },
    request.fetch,
    [request.keywayToken],
    oauthError
  );
  const accessToken = text2(answer["access_token"]);
  if (accessToken === void 0) throw new CloudUnavailableError("Entra ID answered without an access_token");
  return { accessToken, expiresIn: typeof answer["expires_in"] === "number" ? answer["expires_in"] : 3600 };
}

// src/cli/pipeline/google-azure-delivery.ts
import { chmodSync, mkdirSync as mkdirSync2, mkdtempSync, rmSync as rmSync2, writeFileSync as writeFileSync2 } from "node:fs";
import { tmpdir } from "node:os";
import { join as join3 } from "node:path";
function privateDirectory(directory, env, prefix) {
  const parent = directory ?? env["RUNNER_TEMP"] ?? tmpdir();
  mkdirSync2(parent, { recursive: true });
  const made = mkdtempSync(join3(parent, prefix));
  chmodSync(made, 448);
  return made;
}
function writePrivate(path, text3) {
  writeFileSync2(path, text3, { mode: 384 });
  chmodSync(path, 384);
}
async function handOverFiles(parent, prefix, write, command, io) {
  const directory = privateDirectory(parent, io.env, prefix);
  let kept = false;
  try {
    const status = await handOverEnvironment(write(directory), command, io);
    kept = command.length === 0;
    return status;
  } finally {
    if (!kept) rmSync2(directory, { recursive: true, force: true });
  }
}
async function deliverGoogleCredentials(delivery, keywayToken, io) {
  const access = await googleAccess({ keywayToken, ...delivery, fetch: io.fetch });
  maskInActions([access.accessToken], io.env);
  io.log(
    `Google accepted the token${access.serviceAccount === void 0 ? "" : ` and ${access.serviceAccount} was impersonated`} (access until ${access.expiresAt})`
  );
  return handOverFiles(
    delivery.directory,
    "keyway-gcp-",
    (directory) => {
      const tokenFile2 = join3(directory, "keyway-token.jwt");
      const credentialFile = join3(directory, "credentials.json");
      writePrivate(tokenFile2, keywayToken);
      const credential = {
        type: "external_account",
        audience: googleStsAudience(keywayToken),
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        token_url: delivery.stsUrl,
        credential_source: { file: tokenFile2 },
        ...access.serviceAccount === void 0 ? {} : {
          service_account_impersonation_url: `${delivery.iamCredentialsUrl}/v1/projects/-/serviceAccounts/${encodeURIComponent(access.serviceAccount)}:generateAccessToken`
        }
      };
      writePrivate(credentialFile, `${JSON.stringify(credential, null, 2)}
`);
      io.log(`external-account credential file ${credentialFile}`);
      return [
        ["GOOGLE_APPLICATION_CREDENTIALS", credentialFile],
        ["CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", credentialFile]
      ];
    },
    delivery.command,
    io
  );
}
async function deliverAzureCredentials(delivery, keywayToken, io) {
  const access = await entraAccess({ keywayToken, ...delivery, fetch: io.fetch });
  maskInActions([access.accessToken], io.env);
  io.log(`Entra ID accepted the token for ${delivery.clientId} (${delivery.scope}, ${access.expiresIn} s)`);
  return handOverFiles(
    delivery.directory,
    "keyway-azure-",
    (directory) => {
      const tokenFile2 = join3(directory, "keyway-token.jwt");
      writePrivate(tokenFile2, keywayToken);
      return [
        ["AZURE_CLIENT_ID", delivery.clientId],
        ["AZURE_TENANT_ID", delivery.tenantId],
        ["AZURE_FEDERATED_TOKEN_FILE", tokenFile2],
        ...delivery.authorityUrl === DEFAULT_ENTRA_URL ? [] : [["AZURE_AUTHORITY_HOST", delivery.authorityUrl]]
      ];
    },
    delivery.command,
    io
  );
}

// src/cli/pipeline/cloud-delivery-options.ts
var CloudOptionError = class extends KeywayError {
  name = "CloudOptionError";
  code = "cloud_option";
};
var OPTIONS_OF = {
  aws: ["role-arn", "aws-region", "aws-sts-url", "duration-seconds", "aws-profile", "aws-credentials-file"],
  gcp: ["service-account", "google-sts-url", "google-iam-credentials-url", "credentials-dir"],
  azure: ["client-id", "tenant-id", "azure-authority-url", "azure-scope", "credentials-dir"]
};
function endpoint(url, what) {
  if (!URL.canParse(url)) throw new CloudOptionError(`${what} ${url} is not a URL`);
  const parsed = new URL(url);
  if (parsed.protocol !== "https:" && !isLoopbackHttpUrl(parsed)) throw new CloudOptionError(`${what} must be https, unless it is on this machine`);
  return url.replace(/\/$/, "");
}
function cloudDeliveryOf(option, command, env) {
  const provider = option("cloud") ?? "";
  if (!Object.hasOwn(OPTIONS_OF, provider)) throw new CloudOptionError(`--cloud ${provider} is not a cloud keyway exchange supports: aws, gcp, azure`);
  const foreign = Object.entries(OPTIONS_OF).filter(([name]) => name !== provider).flatMap(([, names2]) => names2).filter((name) => !OPTIONS_OF[provider]?.includes(name) && option(name) !== void 0);
  if (foreign.length > 0) throw new CloudOptionError(`--cloud ${provider} does not take --${foreign.join(", --")}`);
  if (provider === "gcp") {
    const serviceAccount = option("service-account");
    if (serviceAccount !== void 0 && !/^[a-z0-9][a-z0-9-]{0,62}@[a-z0-9][a-z0-9.-]{0,200}\.gserviceaccount\.com$/.test(serviceAccount)) {
      throw new CloudOptionError(`--service-account ${serviceAccount} is not a service account email`);
    }
    return {
      provider,
      identity: serviceAccount,
      delivery: {
        serviceAccount,
        stsUrl: endpoint(option("google-sts-url") ?? DEFAULT_GOOGLE_STS_URL, "--google-sts-url"),
        iamCredentialsUrl: endpoint(option("google-iam-credentials-url") ?? DEFAULT_GOOGLE_IAM_CREDENTIALS_URL, "--google-iam-credentials-url"),
        directory: option("credentials-dir"),
        command
      }
    };
  }
  if (provider === "azure") {
    const uuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
    const clientId = option("client-id");
    const tenantId = option("tenant-id");
    if (clientId === void 0 || !uuid.test(clientId) || tenantId === void 0 || !uuid.test(tenantId)) {
      throw new CloudOptionError("--cloud azure needs --client-id and --tenant-id, each a GUID");
    }
    return {
      provider,
      identity: clientId,
      delivery: {
        clientId,
        tenantId,
        authorityUrl: endpoint(option("azure-authority-url") ?? DEFAULT_ENTRA_URL, "--azure-authority-url"),
        scope: option("azure-scope") ?? "https://management.azure.com/.default",
        directory: option("credentials-dir"),
        command
      }
    };
  }
  const roleArn = option("role-arn");
  if (roleArn === void 0 || !/^arn:aws(?:-[a-z]+)*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/.test(roleArn)) {
    throw new CloudOptionError("--cloud aws needs --role-arn arn:aws:iam::ACCOUNT:role/NAME");
  }
  const region = option("aws-region") ?? env["AWS_REGION"];
  if (region !== void 0 && !/^[a-z]{2}(?:-[a-z]+)+-\d$/.test(region)) throw new CloudOptionError(`--aws-region ${region} is not an AWS region`);
  const stsUrl = new URL(endpoint(awsStsUrl(option("aws-sts-url"), env, region), "the STS URL"));
  const duration = option("duration-seconds");
  const durationSeconds = duration === void 0 ? void 0 : Number(duration);
  if (durationSeconds !== void 0 && (!Number.isInteger(durationSeconds) || durationSeconds < 900 || durationSeconds > 43200)) {
    throw new CloudOptionError("--duration-seconds is a whole number from 900 to 43200");
  }
  const profile = option("aws-profile");
  if (profile !== void 0 && !/^[\w.+=,@-]{1,64}$/.test(profile)) throw new CloudOptionError(`--aws-profile ${profile} is not a profile name`);
  if (profile !== void 0 && command.length > 0) throw new CloudOptionError("--aws-profile writes a file; --exec keeps the credentials out of files");
  if (option("aws-credentials-file") !== void 0 && profile === void 0) throw new CloudOptionError("--aws-credentials-file needs --aws-profile");
  return {
    provider: "aws",
    identity: roleArn,
    delivery: { roleArn, stsUrl, region, durationSeconds, profile, credentialsFile: option("aws-credentials-file"), command }
  };
}
function deliverCloudCredentials(cloud, issued, io) {
  if (cloud.provider === "aws") return deliverAwsCredentials(cloud.delivery, issued.accessToken, issued.auditEventId, io);
  if (cloud.provider === "gcp") return deliverGoogleCredentials(cloud.delivery, issued.accessToken, io);
  return deliverAzureCredentials(cloud.delivery, issued.accessToken, io);
}

// src/cli/pipeline/token-map-delivery.ts
function ownerOutput(prefix, owner) {
  return `${prefix}-${owner}`;
}
function tokenMapGrantLines(map2) {
  return map2.tokens.map(
    (token) => `granted: audit_event_id=${map2.auditEventId ?? "-"} owner=${token.owner} access_token_sha256=${token.sha256} expires_at=${token.expiresAt.toISOString()} scope="${token.scope ?? ""}" repositories="${token.repositories.join(" ")}"`
  );
}

// action/src/install-proxy.ts
import { appendFileSync as appendFileSync2, mkdirSync as mkdirSync3, writeFileSync as writeFileSync3 } from "node:fs";
import { dirname as dirname2, join as join4 } from "node:path";
import { fileURLToPath } from "node:url";

// src/core/policy/proxy-upstream-name.ts
var PROXY_UPSTREAM_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62})$/;

// action/src/install-proxy.ts
var TOKEN_INPUTS = ["audience", "scope", "repositories", "cloud", "role-arn", "aws-region", "service-account", "client-id", "tenant-id"];
var quoted = (text3) => `'${text3.replaceAll("'", "'\\''")}'`;
function installProxy(url, upstream, input, log2) {
  if (!PROXY_UPSTREAM_NAME.test(upstream)) throw new Error("the `proxy` input names one of the broker\u2019s upstreams, e.g. github");
  const others = [
    ...TOKEN_INPUTS.filter((name) => input(name) !== ""),
    ...["github-token", "github-token-map"].filter((name) => input(name) === "true")
  ];
  if (others.length > 0) throw new Error(`proxy mode asks the broker for no token: it does not combine with ${others.join(", ")}`);
  if (!process.env["ACTIONS_ID_TOKEN_REQUEST_URL"] || !process.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]) {
    throw new CiTokenError(NO_GITHUB_ID_TOKEN);
  }
  const runnerTemp = process.env["RUNNER_TEMP"];
  if (!runnerTemp) throw new Error("$RUNNER_TEMP is not set: this is not a GitHub Actions step");
  const directory = join4(runnerTemp, "keyway-bin");
  const command = join4(directory, "keyway-proxy");
  const bundle = join4(dirname2(fileURLToPath(import.meta.url)), "proxy.mjs");
  mkdirSync3(directory, { recursive: true });
  writeFileSync3(
    command,
    `#!/bin/sh
# Written by the keyway action (proxy: ${upstream}): keyway proxy, run by the runner's Node.
exec ${quoted(process.execPath)} ${quoted(bundle)} --upstream ${quoted(upstream)} --url ${quoted(url)} "$@"
`,
    { mode: 493 }
  );
  appendFileSync2(requiredFile("GITHUB_PATH"), `${directory}
`, "utf8");
  appendEnvironmentFile(process.env["GITHUB_OUTPUT"], "GITHUB_OUTPUT", "proxy-command", command);
  log2(`proxy mode: later steps run \`keyway-proxy -- COMMAND\` (${command}); each run has its own forwarder, and no step gets a token`);
}
function requiredFile(variable) {
  const path = process.env[variable];
  if (!path) throw new Error(`$${variable} is not set: this is not a GitHub Actions step`);
  return path;
}

// action/src/runner.ts
function actionInput(name) {
  return (process.env[`INPUT_${name.replaceAll(" ", "_").toUpperCase()}`] ?? "").trim();
}
var REVOKE_STATE = "revoke";

// action/src/main.ts
var log = (line) => {
  process.stdout.write(jobLogLine(line));
};
var mask = (token) => {
  process.stdout.write(addMask(token));
};
async function main() {
  const url = actionInput("url");
  if (url === "" || !URL.canParse(url)) throw new Error("the `url` input must be the broker's URL");
  if (actionInput("proxy") !== "") return installProxy(url, actionInput("proxy"), actionInput, log);
  const fetch2 = retryingFetch(DEFAULT_RETRY_POLICY, (notice) => log(retryLine(notice)));
  if (actionInput("github-token-map") === "true") return tokenMap(url, fetch2);
  const cloud = actionInput("cloud") === "" ? void 0 : cloudDeliveryOf((name) => actionInput(name) || void 0, [], process.env);
  const issued = await exchangeWithBroker({
    url: new URL(url),
    source: selectCiTokenSource({ from: "github" }, { env: process.env, fetch: fetch2 }),
    audiences: cloud === void 0 ? [...actionInput("audience").split(/\s+/), ...actionInput("repositories").split(/\s+/)].filter(Boolean) : [cloud.identity].filter((identity) => identity !== void 0),
    scopes: cloud === void 0 ? actionInput("scope").split(/\s+/).filter(Boolean) : [],
    requestedTokenType: cloud !== void 0 ? CLOUD_TOKEN_TYPE : actionInput("github-token") === "true" ? GITHUB_INSTALLATION_TOKEN_TYPE : void 0,
    fetch: fetch2,
    log,
    mask
  });
  mask(issued.accessToken);
  if (cloud !== void 0) {
    log(grantLine(issued));
    if (await deliverCloudCredentials(cloud, issued, { env: process.env, fetch: fetch2, log }) !== 0) process.exitCode = 1;
    return;
  }
  if (issued.issuedTokenType !== void 0 && REVOCATIONS.has(issued.issuedTokenType)) {
    appendEnvironmentFile(
      process.env["GITHUB_STATE"],
      "GITHUB_STATE",
      REVOKE_STATE,
      JSON.stringify({ type: issued.issuedTokenType, token: issued.accessToken, broker: url })
    );
  }
  appendEnvironmentFile(process.env["GITHUB_OUTPUT"], "GITHUB_OUTPUT", "token", issued.accessToken);
  appendEnvironmentFile(process.env["GITHUB_OUTPUT"], "GITHUB_OUTPUT", "expires-at", issued.expiresAt.toISOString());
  log(grantLine(issued));
}
async function tokenMap(url, fetch2) {
  if (actionInput("cloud") !== "" || actionInput("github-token") === "true" || actionInput("audience") !== "") {
    throw new Error("github-token-map asks for the owners of `repositories`: not with cloud, github-token or audience");
  }
  const issued = await exchangeForTokenMap({
    url: new URL(url),
    source: selectCiTokenSource({ from: "github" }, { env: process.env, fetch: fetch2 }),
    audiences: actionInput("repositories").split(/\s+/).filter(Boolean),
    scopes: actionInput("scope").split(/\s+/).filter(Boolean),
    fetch: fetch2,
    log,
    mask,
    env: process.env
  });
  for (const token of issued.tokens) mask(token.accessToken);
  const tokens = issued.tokens.map((token) => token.accessToken);
  appendEnvironmentFile(
    process.env["GITHUB_STATE"],
    "GITHUB_STATE",
    REVOKE_STATE,
    JSON.stringify({ type: GITHUB_INSTALLATION_TOKEN_TYPE, tokens, broker: url })
  );
  for (const token of issued.tokens) {
    appendEnvironmentFile(process.env["GITHUB_OUTPUT"], "GITHUB_OUTPUT", ownerOutput("token", token.owner), token.accessToken);
    appendEnvironmentFile(process.env["GITHUB_OUTPUT"], "GITHUB_OUTPUT", ownerOutput("expires-at", token.owner), token.expiresAt.toISOString());
  }
  appendEnvironmentFile(process.env["GITHUB_OUTPUT"], "GITHUB_OUTPUT", "owners", issued.tokens.map((token) => token.owner).join(" "));
  for (const line of tokenMapGrantLines(issued)) log(line);
}
try {
  await main();
} catch (error) {
  const failure = describeFailure(error);
  for (const line of failure?.lines ?? []) log(line);
  process.stdout.write(annotation("error", `keyway: ${failure?.lines[0] ?? error.message}`));
  process.exitCode = 1;
}
