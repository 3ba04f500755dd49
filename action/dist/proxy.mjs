// Built by `npm run build:action` from action/src; do not edit.

// src/core/errors/keyway-error.ts
var KeywayError = class extends Error {
};

// src/cli/command.ts
function splitAtCommand(argv) {
  const split = argv.indexOf("--");
  return split === -1 ? { args: [...argv], command: [] } : { args: argv.slice(0, split), command: argv.slice(split + 1) };
}
var CliError = class extends KeywayError {
  name = "CliError";
  code = "cli_input";
  exitCode;
  constructor(message, exitCode = 2) {
    super(message);
    this.exitCode = exitCode;
  }
};

// src/cli/proxy.ts
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

// src/core/outbound/loopback-http-url.ts
var LOOPBACK_HOSTS = /* @__PURE__ */ new Set(["127.0.0.1", "localhost", "[::1]"]);
function isLoopbackHttpUrl(url) {
  return url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname);
}

// src/core/policy/proxy-upstream-name.ts
var PROXY_UPSTREAM_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62})$/;

// src/cli/pipeline/ci-token-sources.ts
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { text } from "node:stream/consumers";

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
  const renewing = async (send2) => {
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
        outcome = { value: await send2(once, earlier) };
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

// src/cli/pipeline/ci-token-sources.ts
var CiTokenError = class extends KeywayError {
  name = "CiTokenError";
  code = "ci_token_unavailable";
};
var SOURCE_NAMES = ["github", "gitlab", "circleci", "buildkite", "kubernetes", "google"];
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
    read: (audience) => new Promise((resolve, reject) => {
      execFile(
        "buildkite-agent",
        ["oidc", "request-token", "--audience", audience],
        { timeout: 3e4, maxBuffer: MAX_TOKEN_BYTES },
        (error, stdout, stderr) => {
          if (error === null) return resolve(checkJwtShape(stdout, "buildkite-agent"));
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

// src/cli/pipeline/exec-with-token.ts
import { spawn } from "node:child_process";
import { constants } from "node:os";
var FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"];
function execInEnvironment(command, env, report) {
  const [file, ...args] = command;
  if (file === void 0) return Promise.resolve(2);
  let child;
  const forward2 = (signal) => child?.kill(signal);
  const stopForwarding = () => {
    for (const signal of FORWARDED) process.off(signal, forward2);
  };
  for (const signal of FORWARDED) process.on(signal, forward2);
  try {
    child = spawn(file, args, { stdio: "inherit", env });
  } catch (error) {
    stopForwarding();
    throw error;
  }
  const started = child;
  return new Promise((resolve) => {
    const done = (status) => {
      stopForwarding();
      resolve(status);
    };
    started.once("error", (error) => {
      report(`cannot run ${file}: ${error.message}`);
      done(error.code === "ENOENT" ? 127 : 126);
    });
    started.once("exit", (code, signal) => done(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  });
}

// src/core/inert-text.ts
var INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
var EVERY_INVISIBLE = new RegExp(INVISIBLE.source, "gu");
function inert(text2) {
  return text2.replace(
    EVERY_INVISIBLE,
    (char) => Array.from({ length: char.length }, (_, unit) => `\\u${char.charCodeAt(unit).toString(16).padStart(4, "0")}`).join("")
  );
}

// src/cli/pipeline/github-commands.ts
function addMask(value) {
  return `::add-mask::${escapeData(value)}
`;
}
function escapeData(value) {
  return value.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

// node_modules/jose/dist/webapi/lib/buffer_utils.js
var encoder = new TextEncoder();
var decoder = new TextDecoder();
var strictDecoder = new TextDecoder("utf-8", { fatal: true });
var UINT32_RANGE = 2 ** 32;
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
  constructor(message, options) {
    super(message, options), this.name = this.constructor.name, Error.captureStackTrace?.(this, this.constructor);
  }
};
var JWTInvalid = class extends JOSEError {
  static code = "ERR_JWT_INVALID";
  code = "ERR_JWT_INVALID";
};

// node_modules/jose/dist/webapi/util/base64url.js
var invalid = "The input to be decoded is not correctly encoded.";
function decode(input) {
  try {
    return decodeBase64(typeof input == "string" ? input : decoder.decode(input), true);
  } catch (cause) {
    throw new TypeError(invalid, { cause });
  }
}

// node_modules/jose/dist/webapi/lib/validate.js
function isObject(input) {
  if (typeof input != "object" || input === null || Object.prototype.toString.call(input) !== "[object Object]")
    return false;
  const prototype = Object.getPrototypeOf(input);
  return prototype === null || Object.getPrototypeOf(prototype) === null;
}

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
  const message = atitle(title) + "expected Uint8Array" + ofLen + ", got " + got;
  if (!bytes)
    throw new TypeError(message);
  throw new RangeError(message);
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
var sha256Hex = (text2) => bytesToHex(sha256(utf8ToBytes(text2)));

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

// src/cli/pipeline/revoke-token.ts
var GITHUB_INSTALLATION_TOKEN_TYPE = TOKEN_TYPE.githubInstallationToken;

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
  constructor(message, options = {}) {
    super(message, { cause: options.cause });
    this.auditEventId = options.auditEventId;
  }
};
var B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
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
var USED_UP = /* @__PURE__ */ new Set([REASONS.replayed.description, REASONS.dpop_proof_replayed.description]);

// src/cli/pipeline/cloud-service-errors.ts
var CloudRefusedError = class extends KeywayError {
  name = "CloudRefusedError";
  code = "cloud_refused";
  status;
  service;
  constructor(service, status, message) {
    super(message);
    this.service = service;
    this.status = status;
  }
};
var CloudUnavailableError = class extends KeywayError {
  name = "CloudUnavailableError";
  code = "cloud_unavailable";
};

// src/cli/pipeline/job-log.ts
var EXIT = { ok: 0, usage: 2, noCiToken: 3, refused: 4, unavailable: 5 };
function retryLine(notice) {
  return `${notice.method} ${notice.url.split("?")[0]} ${notice.reason}; try ${notice.attempt + 1} of ${notice.attempts} in ${(notice.delayMs / 1e3).toFixed(1)} s`;
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
function reportFailure(error, log) {
  const failure = describeFailure(error);
  if (failure === void 0) throw error;
  for (const line of failure.lines) log(line);
  return failure.exitCode;
}

// src/cli/pipeline/hand-over-environment.ts
function maskInActions(secrets, env) {
  if (env["GITHUB_ACTIONS"] === "true") for (const secret of secrets) process.stderr.write(addMask(secret));
}

// src/cli/pipeline/job-log-line.ts
function jobLogLine(line) {
  return `keyway: ${inert(line)}
`;
}

// src/cli/pipeline/proxy-environment.ts
var GH_LOCALHOST_API = "api.github.localhost";
var WITHHELD_VARIABLES = [
  "GITHUB_TOKEN",
  "GH_TOKEN",
  "GH_ENTERPRISE_TOKEN",
  "GITHUB_ENTERPRISE_TOKEN",
  "ACTIONS_ID_TOKEN_REQUEST_URL",
  "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
  "ACTIONS_RUNTIME_TOKEN",
  "CIRCLE_OIDC_TOKEN",
  "CIRCLE_OIDC_TOKEN_V2"
];
function forwarderBypass(parent) {
  for (const name of ["NO_PROXY", "no_proxy"]) {
    for (const entry of (parent[name] ?? "").split(",").map((item) => item.trim().toLowerCase())) {
      const host = entry.replace(/^\*?\./, "").replace(/:80$/, "");
      if (entry === "*" || host !== "" && `.${GH_LOCALHOST_API}`.endsWith(`.${host}`)) return `${name}=${entry}`;
    }
  }
  return void 0;
}
function proxyEnvironment(parent, address, ciTokens, upstream) {
  const withheld = new Set(WITHHELD_VARIABLES);
  const kept = Object.entries(parent).filter(([name, value]) => !withheld.has(name) && (value === void 0 || !ciTokens.includes(value.trim())));
  const own = { ...Object.fromEntries(kept), KEYWAY_PROXY_URL: address.url, KEYWAY_PROXY_SECRET: address.secret };
  if (upstream !== "github") return own;
  return {
    ...own,
    GITHUB_API_URL: address.url,
    GITHUB_GRAPHQL_URL: `${address.url}/graphql`,
    GITHUB_TOKEN: address.secret,
    GH_TOKEN: address.secret,
    GH_HOST: GH_LOCALHOST_API.replace(/^api\./, ""),
    HTTP_PROXY: address.url
  };
}

// src/cli/pipeline/proxy-forwarder.ts
import { timingSafeEqual } from "node:crypto";
import { createServer, request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { pipeline } from "node:stream/promises";

// src/features/proxy/hop-by-hop.ts
var HOP_BY_HOP = /* @__PURE__ */ new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "http2-settings"
]);
function connectionNamed(connection) {
  return new Set(
    (connection ?? "").split(",").map((name) => name.trim().toLowerCase()).filter((name) => name !== "")
  );
}
function isHopByHop(lower, named) {
  return HOP_BY_HOP.has(lower) || lower.startsWith("proxy-") || named.has(lower);
}

// src/features/proxy/forward-headers.ts
function rewriteLinkTargets(link, rewrite) {
  return link.replace(/<([^>]*)>/g, (whole, url) => {
    const rewritten = rewrite(url);
    return rewritten === void 0 ? whole : `<${rewritten}>`;
  });
}

// src/cli/pipeline/proxy-forwarder.ts
var GH_LOCALHOST_AUTHORITY = /^api\.github\.localhost(:80)?$/i;
var REFUSALS = {
  forwarder_unauthenticated: [401, "invalid_client", "send the per-run secret of `keyway proxy` ($KEYWAY_PROXY_SECRET) as the bearer token"],
  forwarder_host_refused: [403, "access_denied", `this forwarder is not an open proxy: it serves ${GH_LOCALHOST_API} and its own address only`],
  forwarder_path_refused: [400, "invalid_request", "the path has dot segments or characters a URL parser would rewrite; send it as the upstream expects it"],
  ci_token_unavailable: [503, "temporarily_unavailable", "the job has no CI token to prove its identity with"],
  broker_unavailable: [502, "temporarily_unavailable", "the broker could not be reached"]
};
var CALLER_HEADERS = /* @__PURE__ */ new Set(["host", "authorization", "cookie", "forwarded", "via"]);
var MAX_LOGGED_ERROR_BYTES = 16 * 1024;
async function startForwarder(options) {
  const counts = { forwarded: 0, refusedByBroker: 0, refusedHere: 0 };
  const refuse = (response, what, code, detail) => {
    counts.refusedHere += 1;
    const [status, error, description] = REFUSALS[code];
    const text2 = detail === void 0 ? description : `${description}: ${detail}`;
    options.log(`refused here: ${what} \u2192 HTTP ${status} ${code}: ${text2}`);
    response.writeHead(status, { "content-type": "application/json", "keyway-error": code, "cache-control": "no-store" });
    response.end(JSON.stringify({ error, error_description: text2 }));
  };
  const server = createServer((request, response) => {
    const own = `http://127.0.0.1:${server.address().port}`;
    forward(request, response, { ...options, own }, counts, refuse).catch((error) => {
      if (!response.headersSent) return refuse(response, describe(request), "broker_unavailable", error.message);
      response.destroy();
    });
  });
  server.on("connect", (request, socket) => {
    counts.refusedHere += 1;
    options.log(`refused here: CONNECT ${request.url ?? ""} \u2192 HTTP 403 forwarder_host_refused`);
    socket.end("HTTP/1.1 403 Forbidden\r\nkeyway-error: forwarder_host_refused\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
  });
  await new Promise((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    })
  };
}
async function forward(request, response, options, counts, refuse) {
  const what = describe(request);
  const requested = requestedPath(request.url ?? "");
  if (requested === void 0) return refuse(response, what, "forwarder_host_refused");
  if (!presentsSecret(request.headers.authorization, options.secret)) return refuse(response, what, "forwarder_unauthenticated");
  const target = brokerTarget(options.broker, options.upstream, requested);
  if (target === void 0) return refuse(response, what, "forwarder_path_refused");
  let ciToken;
  try {
    ciToken = await options.ciToken();
  } catch (error) {
    return refuse(response, what, "ci_token_unavailable", error instanceof CiTokenError ? error.message : describeNetworkError(error));
  }
  const answer = await send(target, request, { ...outboundHeaders(request.headers), authorization: `Bearer ${ciToken}` }, options.idleTimeoutMs);
  counts.forwarded += 1;
  const calledAt = request.url?.startsWith("/") === true ? options.own : `http://${GH_LOCALHOST_API}`;
  response.writeHead(answer.statusCode ?? 502, passedBack(answer.headers, proxyBase(options.broker, options.upstream), calledAt));
  const keywayError = answer.headers["keyway-error"];
  if (typeof keywayError !== "string") return pipeline(answer, response);
  counts.refusedByBroker += 1;
  const start = [];
  let kept = 0;
  answer.on("data", (chunk) => {
    if (kept < MAX_LOGGED_ERROR_BYTES) start.push(chunk.subarray(0, MAX_LOGGED_ERROR_BYTES - kept));
    kept += chunk.length;
  });
  await pipeline(answer, response);
  options.log(`refused by the broker: ${what} \u2192 HTTP ${answer.statusCode} ${keywayError}${errorDetail(Buffer.concat(start).toString("utf8"))}`);
}
function describe(request) {
  const url = request.url ?? "";
  return `${request.method} ${url.split("?")[0].replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, "$1")}`;
}
function presentsSecret(authorization, secret) {
  if (authorization === void 0) return false;
  const [, scheme = "", value = ""] = /^(\S+)\s+(\S+)$/.exec(authorization.trim()) ?? [];
  let presented;
  if (/^(bearer|token)$/i.test(scheme)) presented = value;
  else if (/^basic$/i.test(scheme)) presented = Buffer.from(value, "base64").toString("utf8").split(":").slice(1).join(":");
  if (presented === void 0) return false;
  const given = Buffer.from(presented);
  const expected = Buffer.from(secret);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
function requestedPath(target) {
  if (target.startsWith("/")) return target;
  const absolute = /^http:\/\/([^/?#]+)(.*)$/i.exec(target);
  if (absolute === null) return void 0;
  const [, authority = "", rest = ""] = absolute;
  if (!GH_LOCALHOST_AUTHORITY.test(authority)) return void 0;
  return rest.startsWith("/") ? rest : `/${rest}`;
}
function brokerTarget(broker, upstream, requested) {
  const at = requested.indexOf("?");
  const path = at === -1 ? requested : requested.slice(0, at);
  const query = at === -1 || at === requested.length - 1 ? "" : requested.slice(at);
  const prefix = proxyPrefix(broker, upstream);
  const target = new URL(`${prefix}${path}${query}`, broker.origin);
  if (target.origin !== broker.origin || target.pathname !== `${prefix}${path}` || target.search !== query) return void 0;
  return target;
}
function outboundHeaders(headers) {
  const named = connectionNamed(headers.connection);
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !isHopByHop(name, named) && !CALLER_HEADERS.has(name) && !name.startsWith("x-forwarded-"))
  );
}
var proxyPrefix = (broker, upstream) => `${broker.pathname.replace(/\/$/, "")}/proxy/${upstream}`;
var proxyBase = (broker, upstream) => `${broker.origin}${proxyPrefix(broker, upstream)}`;
function passedBack(headers, brokerBase, calledAt) {
  const named = connectionNamed(headers.connection);
  const throughHere = (url) => url === brokerBase || url.startsWith(`${brokerBase}/`) || url.startsWith(`${brokerBase}?`) ? `${calledAt}${url.slice(brokerBase.length)}` : url;
  const passed = {};
  for (const [name, value] of Object.entries(headers)) {
    if (isHopByHop(name, named) || value === void 0) continue;
    if (name === "location" && typeof value === "string") passed[name] = throughHere(value);
    else if (name === "link" && typeof value === "string") passed[name] = rewriteLinkTargets(value, throughHere);
    else passed[name] = value;
  }
  return passed;
}
function send(target, body, headers, idleTimeoutMs) {
  const outbound = (target.protocol === "https:" ? httpsRequest : httpRequest)(target, { method: body.method, headers, timeout: idleTimeoutMs });
  return new Promise((resolve, reject) => {
    outbound.once("response", resolve).once("error", reject);
    outbound.once("timeout", () => outbound.destroy(new Error(`${target.origin} did not answer within ${idleTimeoutMs / 1e3} s`)));
    pipeline(body, outbound).catch(reject);
  });
}
function errorDetail(text2) {
  try {
    const body = JSON.parse(text2);
    const parts = [
      typeof body["error"] === "string" ? `${body["error"]}` : void 0,
      typeof body["error_description"] === "string" ? `: ${body["error_description"]}` : void 0,
      typeof body["audit_event_id"] === "string" ? ` (audit_event_id=${body["audit_event_id"]})` : void 0
    ].filter((part) => part !== void 0);
    return parts.length === 0 ? "" : ` ${parts.join("")}`;
  } catch {
    return "";
  }
}

// src/cli/pipeline/refreshing-ci-token.ts
function refreshingCiToken(source, audience, options) {
  const now = options.now ?? Date.now;
  let held;
  let reading;
  const fresh = () => held !== void 0 && held.expiresAtMs !== void 0 && held.expiresAtMs - options.refreshBeforeSeconds * 1e3 > now();
  return async () => {
    if (fresh()) return held.token;
    reading ??= source.read(audience).then((token) => {
      const exp = decodeJwt(token).exp;
      held = { token, expiresAtMs: exp === void 0 ? void 0 : exp * 1e3 };
      options.onRead?.({ sha256: sha256Hex(token), expiresAt: exp === void 0 ? void 0 : new Date(exp * 1e3) });
      return token;
    }).finally(() => {
      reading = void 0;
    });
    return reading;
  };
}

// src/cli/proxy.ts
var REFRESH_BEFORE_SECONDS = 60;
var IDLE_TIMEOUT_MS = 12e4;
var USAGE = `usage: keyway proxy --upstream NAME [options] -- COMMAND [ARG...]

Runs COMMAND with no token in its environment: its calls to the upstream go to a forwarder on
127.0.0.1, which sends each one to {broker}/proxy/NAME/... with this job's CI token; the broker
decides, calls the upstream with a credential that never leaves it, and the answer comes back.
The CI token is requested with the broker as its audience and read again before it expires.

options:
  --upstream NAME           the broker's upstream, e.g. github (required)
  --url URL                 the broker's URL (its KEYWAY_ISSUER); default $KEYWAY_URL
  --from SOURCE             take the CI token from ${SOURCE_NAMES.join(", ")} (default: detected)
  --token-env NAME          take the CI token from variable NAME (GitLab: the id_tokens name; default KEYWAY_ID_TOKEN)
  --subject-token-file PATH take the CI token from PATH
  --subject-audience AUD    request the CI token for AUD instead of the broker's URL
  --retries N               retries of the CI token service's network errors and 5xx answers (default ${DEFAULT_RETRY_POLICY.attempts - 1}, at most 10)

COMMAND's environment: KEYWAY_PROXY_URL (the forwarder, http://127.0.0.1:PORT) and
KEYWAY_PROXY_SECRET (this run's key to the forwarder, not a GitHub credential). With
--upstream github also GITHUB_API_URL and GITHUB_GRAPHQL_URL (the forwarder), GITHUB_TOKEN and
GH_TOKEN (the per-run secret), GH_HOST=github.localhost and HTTP_PROXY (the forwarder), so gh
and REST clients call through it. GITHUB_TOKEN, GH_TOKEN, GH_ENTERPRISE_TOKEN,
GITHUB_ENTERPRISE_TOKEN, the Actions token service (ACTIONS_ID_TOKEN_REQUEST_*,
ACTIONS_RUNTIME_TOKEN), CircleCI's CIRCLE_OIDC_TOKEN and CIRCLE_OIDC_TOKEN_V2 and any
variable holding the CI token are withheld.
The broker's refusals (answers with Keyway-Error) are logged on standard error with their code.

exit codes: COMMAND's status, 2 bad usage, 3 no CI token (COMMAND does not run)`;
var proxy = {
  summary: "run a command whose upstream calls go through the broker's proxy, with no token in its environment",
  usage: USAGE,
  async run(argv) {
    const { args, command } = splitAtCommand(argv);
    const { values } = parseArgs({
      args,
      options: {
        upstream: { type: "string" },
        url: { type: "string" },
        from: { type: "string" },
        "token-env": { type: "string" },
        "subject-token-file": { type: "string" },
        "subject-audience": { type: "string" },
        retries: { type: "string", default: String(DEFAULT_RETRY_POLICY.attempts - 1) }
      },
      strict: true
    });
    const upstream = values.upstream;
    if (upstream === void 0 || !PROXY_UPSTREAM_NAME.test(upstream)) throw new CliError("--upstream names one of the broker's upstreams, e.g. github");
    const url = values.url ?? process.env["KEYWAY_URL"];
    if (!url) throw new CliError("--url is required (or set KEYWAY_URL): the broker, e.g. https://keyway.example.com");
    if (!URL.canParse(url)) throw new CliError(`--url ${url} is not a URL`);
    const broker = new URL(url);
    if (broker.protocol !== "https:" && !isLoopbackHttpUrl(broker))
      throw new CliError("--url must be https, unless the broker is on this machine (127.0.0.1, localhost, [::1])");
    const from = values.from;
    if (from !== void 0 && !SOURCE_NAMES.includes(from)) throw new CliError(`--from is one of ${SOURCE_NAMES.join(", ")}`);
    if (values["subject-token-file"] === "-") throw new CliError("--subject-token-file - is not possible here: standard input is the command's");
    const retries = Number(values.retries);
    if (!Number.isInteger(retries) || retries < 0 || retries > 10) throw new CliError("--retries is a whole number from 0 to 10");
    if (command.length === 0) throw new CliError("a command to run is required after --");
    const log = (line) => process.stderr.write(jobLogLine(line));
    const fetch2 = retryingFetch({ ...DEFAULT_RETRY_POLICY, attempts: retries + 1 }, (notice) => log(retryLine(notice)));
    const audience = values["subject-audience"] ?? url.replace(/\/$/, "");
    let ciToken;
    let first;
    try {
      const selected = selectCiTokenSource(
        { from, tokenEnv: values["token-env"], tokenFile: values["subject-token-file"] },
        { env: process.env, fetch: fetch2 }
      );
      const source = {
        name: selected.name,
        read: async (wanted) => {
          const token = await selected.read(wanted);
          maskInActions([token], process.env);
          return token;
        }
      };
      ciToken = refreshingCiToken(source, audience, {
        refreshBeforeSeconds: REFRESH_BEFORE_SECONDS,
        onRead: ({ sha256: sha2562, expiresAt }) => log(
          `CI token from ${source.name} (audience ${audience}), sha256 ${sha2562}, expires ${expiresAt?.toISOString() ?? "never (read again for each request)"}`
        )
      });
      first = await ciToken();
    } catch (error) {
      return reportFailure(error, log);
    }
    const bypass = upstream === "github" ? forwarderBypass(process.env) : void 0;
    if (bypass !== void 0) {
      log(
        `${bypass} covers ${GH_LOCALHOST_API}: gh calls it itself, not through this forwarder, and fails or sends the per-run secret to whatever listens on port 80 here; leave that entry out of the command's environment`
      );
    }
    const secret = randomBytes(32).toString("base64url");
    const forwarder = await startForwarder({ broker, upstream, secret, ciToken, log, idleTimeoutMs: IDLE_TIMEOUT_MS });
    log(`proxy: ${forwarder.url} \u2192 ${broker.origin}${broker.pathname.replace(/\/$/, "")}/proxy/${upstream}/ for ${command[0]}`);
    try {
      return await execInEnvironment(command, proxyEnvironment(process.env, { url: forwarder.url, secret }, [first], upstream), log);
    } finally {
      await forwarder.close();
      const { forwarded, refusedByBroker, refusedHere } = forwarder.counts;
      log(`proxy: ${forwarded} request(s) forwarded (${refusedByBroker} answered with Keyway-Error), ${refusedHere} refused here`);
    }
  }
};

// action/src/proxy.ts
try {
  process.exitCode = await proxy.run(process.argv.slice(2));
} catch (error) {
  const usage = error instanceof CliError || String(error.code).startsWith("ERR_PARSE_ARGS");
  if (!usage) throw error;
  process.stderr.write(`keyway: ${error.message}
`);
  process.exitCode = error instanceof CliError ? error.exitCode : 2;
}
